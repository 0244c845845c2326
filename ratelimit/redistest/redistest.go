// Package redistest runs a real redis-server for tests and benchmarks: the
// Debian binary, on 127.0.0.1 and a free port, with no persistence, as a
// child process in its own process group, stopped by its PID.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the redis-server the helper runs.
var Binary = "/usr/bin/redis-server"

// InstallHint says how to get Binary on this project's machines.
const InstallHint = "apt-get install -y redis-server"

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Redis is one redis-server child process.
type Redis struct {
	port  int
	dir   string
	extra []string // more redis-server arguments

	mu   sync.Mutex
	proc *process // nil when stopped
}

type process struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed when the process has exited and been waited for
}

// Start runs a redis-server for the test and stops it at cleanup. It fails
// the test (never skips) when the binary is missing or does not start.
func Start(t testing.TB) *Redis {
	t.Helper()
	r, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Launch runs a redis-server whose working folder is dir (nothing is written
// there: persistence is off). The caller must Stop it.
func Launch(dir string) (*Redis, error) { return launch(dir, nil) }

func launch(dir string, extra []string) (*Redis, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("redis-server is needed at %s (%v): run `%s`", Binary, err, InstallHint)
	}
	var lastErr error
	for range 5 { // the free port may be taken before redis binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{port: port, dir: dir, extra: extra}
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Port is the server's port.
func (r *Redis) Port() int { return r.port }

// PID is the server's process ID, 0 when it is stopped.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

// Log returns what the server has written so far.
func (r *Redis) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return ""
	}
	return r.proc.log.String()
}

// start runs the server on r.port and waits until it answers PING.
func (r *Redis) start() error {
	log := new(lockedBuffer)
	args := append([]string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.port),
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", r.dir,
		"--logfile", "",
	}, r.extra...)
	cmd := exec.Command(Binary, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", Binary, err)
	}
	p := &process{cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		if ping(r.Addr(), 500*time.Millisecond) == nil {
			r.mu.Lock()
			r.proc = p
			r.mu.Unlock()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on port %d exited before answering PING (%v); its log:\n%s", r.port, cmd.ProcessState, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("redis-server on port %d did not answer PING within %s; its log:\n%s", r.port, startTimeout, log.String())
		}
	}
}

// Stop kills the server (SIGKILL to its PID) and waits for it to exit. It
// does nothing when the server is already stopped.
func (r *Redis) Stop() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGCONT) // in case it was paused
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-p.done
}

// Restart stops the server and starts a new, empty one on the same port.
func (r *Redis) Restart() error {
	r.Stop()
	var err error
	for range 50 { // the port can take a moment to be free again
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restarting redis-server on port %d: %w", r.port, err)
}

// Pause stops the server's process (SIGSTOP) without closing its
// connections: Redis then accepts connections and answers nothing, as a
// hung server does. Resume undoes it.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return errors.New("redis-server is not running")
	}
	return syscall.Kill(r.proc.cmd.Process.Pid, sig)
}

// ping sends PING on a fresh connection and expects PONG.
func ping(addr string, timeout time.Duration) error {
	got, err := Do(addr, timeout, "PING")
	if err != nil {
		return err
	}
	if got != "PONG" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

// Do sends one command to addr on a fresh connection and returns the reply:
// a simple string, an integer or a bulk string as text, an array as its
// elements one per line. An error reply is returned as an error.
func Do(addr string, timeout time.Duration, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// Ping reports whether the server answers PING within timeout.
func (r *Redis) Ping(timeout time.Duration) error { return ping(r.Addr(), timeout) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
