//go:build linux && !race

package h1

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Sock does a TCP connection's reads and writes itself, with raw read and
// write system calls on its non-blocking socket, waiting through the Go
// poller only when the socket is not ready. A raw call on a non-blocking
// socket never blocks, so it need not tell the scheduler it enters a system
// call: a proxy spends much of its time in short socket writes, and with the
// ordinary calls the runtime's monitor keeps finding processors "in a system
// call", hands them to other threads and wakes threads to take them back,
// which costs more than the calls themselves.
//
// One goroutine reads and one writes at a time (as with net.Conn).
type Sock struct {
	rc  syscall.RawConn
	nc  net.Conn
	rfn func(fd uintptr) bool
	wfn func(fd uintptr) bool
	xfn func(fd uintptr) bool

	rp   []byte // read into
	rn   int
	rerr error

	wp   []byte // left to write
	werr error

	xwrote, xpartial bool
}

// NewSock returns a Sock for c, or nil when c is not a TCP connection.
func NewSock(c net.Conn) *Sock {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Sock{rc: rc, nc: c}
	s.rfn, s.wfn, s.xfn = s.readStep, s.writeStep, s.xferStep
	return s
}

func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// readStep reads once; false: wait until the socket is readable.
func (s *Sock) readStep(fd uintptr) bool {
	for {
		n, e := rawRead(fd, s.rp)
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			s.rerr = os.NewSyscallError("read", e)
			return true
		}
		s.rn = n
		if n == 0 && len(s.rp) > 0 {
			s.rerr = io.EOF
		}
		return true
	}
}

// writeStep writes what is left; false: wait until the socket is writable.
func (s *Sock) writeStep(fd uintptr) bool {
	for len(s.wp) > 0 {
		n, e := rawWrite(fd, s.wp)
		if n > 0 {
			s.wp = s.wp[n:]
		}
		switch e {
		case 0, syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// xferStep writes (first call) and then reads: see WriteThenRead.
func (s *Sock) xferStep(fd uintptr) bool {
	if !s.xwrote {
		s.xwrote = true
		for len(s.wp) > 0 {
			n, e := rawWrite(fd, s.wp)
			if n > 0 {
				s.wp = s.wp[n:]
			}
			switch e {
			case 0, syscall.EINTR:
			case syscall.EAGAIN:
				s.xpartial = true
				return true
			default:
				s.werr = os.NewSyscallError("write", e)
				return true
			}
		}
		return false // wait for the answer
	}
	return s.readStep(fd)
}

func (s *Sock) Read(p []byte) (int, error) {
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.rfn)
	n, rerr := s.rn, s.rerr
	s.rp, s.rerr = nil, nil
	if err != nil {
		return 0, err
	}
	return n, rerr
}

func (s *Sock) Write(p []byte) (int, error) {
	s.wp, s.werr = p, nil
	err := s.rc.Write(s.wfn)
	left, werr := len(s.wp), s.werr
	s.wp, s.werr = nil, nil
	if err == nil {
		err = werr
	}
	return len(p) - left, err
}

// WriteThenRead writes out and reads the answer's first bytes into p with a
// single wait: read readiness is armed before out is written, so when the
// peer cannot answer before it has out (a request on a client connection),
// the goroutine waits straight after the write instead of first trying a
// read that cannot succeed yet. It must not be used when bytes may already be
// on their way (they would not wake it).
func (s *Sock) WriteThenRead(out, p []byte) (int, error) {
	s.wp, s.werr, s.xwrote, s.xpartial = out, nil, false, false
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.xfn)
	left, werr, partial, n, rerr := s.wp, s.werr, s.xpartial, s.rn, s.rerr
	s.wp, s.werr, s.rp, s.rerr = nil, nil, nil, nil
	switch {
	case err != nil:
		return 0, err
	case werr != nil:
		return 0, werr
	case partial:
		// The socket's buffer is full: the rest goes the ordinary way.
		if _, err := s.Write(left); err != nil {
			return 0, err
		}
		return s.Read(p)
	}
	return n, rerr
}
