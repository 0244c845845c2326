package unarygrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// ErrServerStopped is returned by Serve once Stop or GracefulStop has been
// called.
var ErrServerStopped = errors.New("unarygrpc: server stopped")

// Handler answers one unary call. req is the request message's bytes, with the
// gRPC length prefix removed and never compressed. It returns the response
// message's bytes, or an error: a status error from
// google.golang.org/grpc/status is sent with its code, message and details;
// a context error is sent as DEADLINE_EXCEEDED or CANCELED; any other error is
// sent as UNKNOWN with the error's text.
//
// ctx carries the deadline from the request's grpc-timeout header and is
// cancelled when the client resets the stream, the connection closes or the
// server is stopped. Each call runs on its own goroutine, so a handler may
// block. req belongs to the handler and may be retained; the response slice
// must not be modified after the handler returns.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// Options configures a Server. The zero value is usable.
type Options struct {
	// MaxRecvMsgSize is the largest request message accepted, in bytes.
	// Larger requests are answered with RESOURCE_EXHAUSTED. Default 4 MiB.
	MaxRecvMsgSize int

	// MaxConcurrentStreams limits the calls in progress on one connection.
	// It is advertised to clients in SETTINGS; streams beyond it are reset
	// with REFUSED_STREAM. A call counts until its handler has returned, even
	// if the client reset it earlier. Default 1024.
	MaxConcurrentStreams uint32

	// Logger receives connection errors (at debug level) and handler panics
	// (at error level). Optional.
	Logger *slog.Logger

	// Workers is how many goroutines wait for calls to run. A call that
	// finds none idle gets a goroutine of its own. Reused goroutines keep the
	// stack the handlers grew, where a new goroutine per call would grow
	// (copy) its stack on every call. Default 64.
	Workers int
}

const (
	defaultMaxRecvMsgSize       = 4 << 20
	defaultMaxConcurrentStreams = 1024
	defaultWorkers              = 64

	// workerCalls is how many calls a worker runs before it hands its place
	// to a fresh goroutine, so that a stack grown by one unusual call is not
	// kept for ever.
	workerCalls = 1 << 16

	// acceptBackoffMax caps the pause after temporary Accept errors.
	acceptBackoffMax = time.Second
)

// Server serves unary gRPC calls over HTTP/2 cleartext connections.
type Server struct {
	maxRecvMsgSize int
	maxStreams     uint32
	log            *slog.Logger

	// handlers is written by Handle before Serve and only read afterwards.
	handlers map[string]Handler

	workers     int
	work        chan func() // unbuffered: a send succeeds when a worker is idle
	workersOnce sync.Once

	mu        sync.Mutex
	started   bool // Serve has been called; Handle is no longer allowed
	stopped   bool // Stop or GracefulStop has been called
	quit      chan struct{}
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup // one per tracked connection
}

// NewServer returns a Server configured by o.
func NewServer(o Options) *Server {
	s := &Server{
		maxRecvMsgSize: o.MaxRecvMsgSize,
		maxStreams:     o.MaxConcurrentStreams,
		log:            o.Logger,
		handlers:       make(map[string]Handler),
		quit:           make(chan struct{}),
		listeners:      make(map[net.Listener]struct{}),
		conns:          make(map[*conn]struct{}),
		workers:        o.Workers,
		work:           make(chan func()),
	}
	if s.workers <= 0 {
		s.workers = defaultWorkers
	}
	if s.maxRecvMsgSize <= 0 {
		s.maxRecvMsgSize = defaultMaxRecvMsgSize
	}
	if s.maxStreams == 0 {
		s.maxStreams = defaultMaxConcurrentStreams
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Handle registers h for fullMethod, which has the form "/package.Service/Method",
// e.g. "/envoy.service.auth.v3.Authorization/Check". It must be called before
// Serve. It panics on a malformed name, a nil handler, a duplicate
// registration or a call after Serve, as these are programming errors.
func (s *Server) Handle(fullMethod string, h Handler) {
	if h == nil {
		panic("unarygrpc: nil handler for " + fullMethod)
	}
	if !validMethodName(fullMethod) {
		panic(fmt.Sprintf("unarygrpc: malformed method name %q, want /package.Service/Method", fullMethod))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("unarygrpc: Handle called after Serve")
	}
	if _, dup := s.handlers[fullMethod]; dup {
		panic("unarygrpc: duplicate handler for " + fullMethod)
	}
	s.handlers[fullMethod] = h
}

// validMethodName reports whether name looks like "/service/method".
func validMethodName(name string) bool {
	rest, ok := strings.CutPrefix(name, "/")
	if !ok {
		return false
	}
	svc, method, ok := strings.Cut(rest, "/")
	return ok && svc != "" && method != "" && !strings.Contains(method, "/")
}

// Serve accepts connections on l and serves them until Stop or GracefulStop
// is called, then returns ErrServerStopped. It may be called for several
// listeners. l is closed when Serve returns. Serve returns other errors from
// Accept that are not temporary.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.started = true
	if s.stopped {
		s.mu.Unlock()
		l.Close()
		return ErrServerStopped
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isStopped() {
				return ErrServerStopped
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
				s.log.Warn("unarygrpc: accept error, retrying", "error", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.quit:
					t.Stop()
					return ErrServerStopped
				}
				continue
			}
			return err
		}
		backoff = 0
		go s.serveConn(nc)
	}
}

// serveConn serves one accepted connection until it closes.
func (s *Server) serveConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()

	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connWG.Done()
	}()
	c.serve()
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// shutdown marks the server stopped, closes its listeners and returns the
// connections being served.
func (s *Server) shutdown() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.quit)
	}
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// GracefulStop stops accepting connections, sends GOAWAY on every connection,
// waits for the calls in progress to be answered and their handlers to
// return, and closes the connections. Streams the client opens after the
// GOAWAY are refused, so clients retry them elsewhere.
func (s *Server) GracefulStop() {
	for _, c := range s.shutdown() {
		c.drain()
	}
	s.connWG.Wait()
}

// Stop closes the listeners and all connections at once, and cancels the
// contexts of the calls in progress; their answers are dropped. It returns
// once every connection's reader has finished; handlers may still be running.
func (s *Server) Stop() {
	for _, c := range s.shutdown() {
		c.nc.Close()
	}
	s.connWG.Wait()
}

// dispatch runs f on an idle worker, or on a goroutine of its own when every
// worker is busy. The workers start with the first call and end with Stop or
// GracefulStop.
func (s *Server) dispatch(f func()) {
	s.workersOnce.Do(func() {
		for range s.workers {
			go s.worker()
		}
	})
	select {
	case s.work <- f:
	default:
		go f()
	}
}

// worker runs calls until the server stops; after workerCalls of them it
// starts its successor and ends.
func (s *Server) worker() {
	for range workerCalls {
		select {
		case f := <-s.work:
			f()
		case <-s.quit:
			return
		}
	}
	go s.worker()
}
