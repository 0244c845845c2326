package hcm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/proxy/h1"
)

// H1Server serves a plaintext listener's HTTP/1.1 connections itself: one
// goroutine per connection reads a request head, parses it strictly (the
// parser is the framing guard, see package h1), runs the handler with a
// request and a response writer reused from one request to the next, and
// writes the response through the connection's buffer. A connection that
// starts with the HTTP/2 preface is handed to net/http's server (h2c).
type H1Server struct {
	ln       net.Listener
	name     string // the listener's
	log      *slog.Logger
	maxHead  func() int
	h        *Handler
	h2       *handoffListener
	shutting atomic.Bool

	mu    sync.Mutex
	conns map[*h1Conn]struct{}
}

const (
	h1IdleTimeout       = 5 * time.Minute
	h1ReadHeaderTimeout = 30 * time.Second
	// h1MaxDrain is how much of a request body the handler left unread is
	// read and dropped to keep the connection; more, and it is closed.
	h1MaxDrain = 256 << 10
	// h1Linger bounds the wait for the client's close after a response on a
	// connection the proxy closes, so that unread bytes do not turn the
	// close into a reset that destroys the response.
	h1Linger = 500 * time.Millisecond
)

// Connection states.
const (
	connActive int32 = iota
	connIdle
	connClosed
)

// h2Preface is what an HTTP/2 connection with prior knowledge starts with.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// NewH1Server returns the server of a listener's socket ln; maxHead is the
// header limit of its current configuration.
func NewH1Server(ln net.Listener, name string, log *slog.Logger, maxHead func() int, h *Handler) *H1Server {
	return &H1Server{ln: ln, name: name, log: log, maxHead: maxHead, h: h, h2: newHandoffListener(ln.Addr()), conns: map[*h1Conn]struct{}{}}
}

// H2 is the listener on which the connections that start with the HTTP/2
// preface are handed over (to net/http's server).
func (hs *H1Server) H2() net.Listener { return hs.h2 }

// Serve accepts connections until Shutdown.
func (hs *H1Server) Serve() {
	for {
		c, err := hs.ln.Accept()
		if err != nil {
			if hs.shutting.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			hs.log.Error("accepting", "listener", hs.name, "error", err)
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		hc := hs.newConn(c)
		hs.mu.Lock()
		hs.conns[hc] = struct{}{}
		hs.mu.Unlock()
		go hc.serve()
	}
}

// Shutdown stops accepting, closes idle connections as they become idle,
// and returns once none is left (or ctx is done).
func (hs *H1Server) Shutdown(ctx context.Context) error {
	hs.shutting.Store(true)
	_ = hs.ln.Close()
	wait := time.Millisecond
	for {
		hs.mu.Lock()
		for c := range hs.conns {
			if c.state.CompareAndSwap(connIdle, connClosed) {
				_ = c.nc.Close()
			}
		}
		n := len(hs.conns)
		hs.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

func (hs *H1Server) forget(c *h1Conn) {
	hs.mu.Lock()
	delete(hs.conns, c)
	hs.mu.Unlock()
}

// h1Conn is one client connection and everything reused across its requests.
type h1Conn struct {
	hs      *H1Server
	nc      net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	state   atomic.Int32
	maxHead int
	rdl     time.Time // the read deadline set last (zero: none)

	req  *http.Request
	url  url.URL
	hdr  http.Header
	vals []string // backs the header values of the current request
	head h1.RequestHead
	// line is the current request's head: its fields (c.head) are offsets
	// into it, and the strings of c.req point into it.
	line string
	// hdrReady: c.req.Header was built from the fields. Until then it is
	// nil; see header.
	hdrReady bool
	ip       string // the client's address without its port
	fwd      []byte // the request's header lines as they go upstream
	up       attempt
	scratch  []byte
	w        respWriter
	body     reqBody
}

func (hs *H1Server) newConn(nc net.Conn) *h1Conn {
	// Reads and writes go through h1.Sock (raw non-blocking system calls)
	// where the connection allows it.
	var rw io.ReadWriter = nc
	if sock := h1.NewSock(nc); sock != nil {
		rw = sock
	}
	c := &h1Conn{
		hs:      hs,
		nc:      nc,
		br:      bufio.NewReaderSize(rw, 8<<10),
		bw:      bufio.NewWriterSize(rw, 8<<10),
		maxHead: hs.maxHead(),
		hdr:     make(http.Header, 16),
	}
	c.state.Store(connIdle)
	ctx := WithConnInfo(context.Background(), PlainConn)
	c.req = (&http.Request{}).WithContext(ctx)
	c.up.req = *c.req
	c.req.RemoteAddr = nc.RemoteAddr().String()
	c.ip = remoteIP(c.req.RemoteAddr)
	c.w.c = c
	c.w.hdr = make(http.Header, 16)
	c.body.c = c
	return c
}

func (c *h1Conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.hs.log.Error("panic serving connection", "listener", c.hs.name, "panic", v)
		}
		c.hs.forget(c)
		if !handedOff && c.state.Load() != connHijacked {
			c.state.Store(connClosed)
			_ = c.nc.Close()
		}
	}()
	first := true
	for {
		if c.br.Buffered() == 0 {
			c.state.Store(connIdle)
			if c.hs.shutting.Load() {
				return
			}
			c.setIdleDeadline()
			if _, err := c.br.Peek(1); err != nil {
				return
			}
			if !c.state.CompareAndSwap(connIdle, connActive) {
				return // closed by shutdown
			}
		} else {
			c.state.Store(connActive)
		}
		if first {
			first = false
			if c.isH2() {
				handedOff = true
				c.hs.forget(c)
				_ = c.nc.SetReadDeadline(time.Time{})
				c.hs.h2.handoff(&peekedConn{Conn: c.nc, r: c.br})
				return
			}
		}
		b, _ := c.br.Peek(c.br.Buffered())
		head, inBuf := b, true
		if n := h1.HeadEnd(b); n >= 0 && n <= c.maxHead {
			head = b[:n] // the head is buffered whole: as ReadHead gives it
		} else {
			if n < 0 {
				// A head in several pieces: it must be whole within the
				// header timeout.
				c.rdl = time.Now().Add(h1ReadHeaderTimeout)
				_ = c.nc.SetReadDeadline(c.rdl)
			}
			var err error
			if head, inBuf, _, err = h1.ReadHead(c.br, c.maxHead, &c.scratch); err != nil {
				var he *h1.Error
				if errors.As(err, &he) {
					c.refuse(he)
				}
				return
			}
		}
		perr := h1.ParseRequest(head, &c.head)
		if perr != nil {
			if inBuf {
				_, _ = c.br.Discard(len(head))
			}
			var he *h1.Error
			if !errors.As(perr, &he) {
				he = &h1.Error{Status: 400}
			}
			c.refuse(he)
			return
		}
		if rerr := c.buildRequest(head); rerr != nil {
			if inBuf {
				_, _ = c.br.Discard(len(head))
			}
			c.refuse(rerr)
			return
		}
		if inBuf {
			_, _ = c.br.Discard(len(head))
		}
		if !c.serveRequest() {
			return
		}
	}
}

const connHijacked int32 = 3

// serveRequest runs the handler for the request built in c.req and finishes
// its response; it reports whether the connection can carry another request.
func (c *h1Conn) serveRequest() bool {
	w := &c.w
	w.reset(c.req, &c.head)
	c.hs.h.ServeHTTP(w, c.req)
	if w.hijacked {
		return false
	}
	c.body.mu.Lock()
	c.body.closed = true
	c.body.mu.Unlock()
	w.finish()
	keep := !w.closeAfter && !c.body.broken
	if keep && !c.body.done() {
		keep = c.body.drain()
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if !keep {
		c.linger()
		return false
	}
	return true
}

// wantsClose reports whether the response must close the connection.
func (c *h1Conn) wantsClose() bool {
	h := &c.head
	return h.Close || (h.Minor == 0 && !h.KeepAlive) || c.hs.shutting.Load()
}

// setIdleDeadline makes sure the connection is closed once idle for about
// h1IdleTimeout: the read deadline is moved on when less than 10 seconds
// short of that are left (the coarse clock tells).
func (c *h1Conn) setIdleDeadline() {
	if c.rdl.IsZero() || c.rdl.Sub(clockBase)-coarseNow().mono < h1IdleTimeout-10*time.Second {
		c.rdl = time.Now().Add(h1IdleTimeout)
		_ = c.nc.SetReadDeadline(c.rdl)
	}
}

func (c *h1Conn) clearDeadline() {
	if !c.rdl.IsZero() {
		c.rdl = time.Time{}
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// isH2 reports whether the connection starts with the HTTP/2 preface.
func (c *h1Conn) isH2() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	n := min(len(b), len(h2Preface))
	if string(b[:n]) != h2Preface[:n] {
		return false
	}
	if n < len(h2Preface) {
		b, err := c.br.Peek(len(h2Preface))
		if err != nil {
			return false
		}
		return string(b) == h2Preface
	}
	return true
}

// refuse answers a request the parser refused and closes the connection.
func (c *h1Conn) refuse(e *h1.Error) {
	st := e.Status
	if st == 0 {
		st = 400
	}
	text := strconv.Itoa(st) + " " + http.StatusText(st)
	_, _ = c.bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(text)) + "\r\n\r\n" + text)
	_ = c.bw.Flush()
	c.linger()
}

// linger half-closes the connection and waits a little for the client to
// close its side, reading what it still sends.
func (c *h1Conn) linger() {
	_ = c.bw.Flush()
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	if cw.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(h1Linger))
	_, _ = io.CopyN(io.Discard, c.nc, 256<<10)
}

var chunkedTE = []string{"chunked"}

// method returns the method of a request line as a constant string when it
// is a common one.
func method(b []byte) (string, bool) {
	switch string(b) {
	case http.MethodGet:
		return http.MethodGet, true
	case http.MethodPost:
		return http.MethodPost, true
	case http.MethodPut:
		return http.MethodPut, true
	case http.MethodDelete:
		return http.MethodDelete, true
	case http.MethodHead:
		return http.MethodHead, true
	case http.MethodOptions:
		return http.MethodOptions, true
	case http.MethodPatch:
		return http.MethodPatch, true
	case http.MethodConnect:
		return http.MethodConnect, true
	case http.MethodTrace:
		return http.MethodTrace, true
	}
	return "", false
}

var errBadTarget = &h1.Error{Status: 400, Reason: "malformed request target"}

// buildRequest fills c.req from the parsed head: one string holds the
// target, the values and the unusual names.
func (c *h1Conn) buildRequest(head []byte) *h1.Error {
	h := &c.head
	r := c.req
	s := string(head)
	if m, ok := method(h.Method(head)); ok {
		r.Method = m
	} else {
		r.Method = s[h.MethodStart:h.MethodEnd]
	}
	target := s[h.TargetStart:h.TargetEnd]
	r.RequestURI = target
	if target[0] == '/' {
		c.url = url.URL{}
		if i := indexByteString(target, '?'); i >= 0 {
			c.url.RawQuery = target[i+1:]
		}
		r.URL = &c.url
	} else if target == "*" {
		c.url = url.URL{Path: "*"}
		r.URL = &c.url
	} else {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return errBadTarget
		}
		r.URL = u
	}
	if h.Minor == 1 {
		r.Proto, r.ProtoMinor = "HTTP/1.1", 1
	} else {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	r.ProtoMajor = 1
	c.line = s
	c.hdrReady = false
	r.Header = nil
	r.Host = ""
	if h.Host >= 0 {
		f := &h.Fields[h.Host]
		r.Host = s[f.ValueStart:f.ValueEnd]
	}
	if r.URL.Host != "" {
		r.Host = r.URL.Host
	}
	r.Close = c.wantsClose()
	r.Trailer = nil
	r.TransferEncoding = nil
	r.ContentLength = h.ContentLength
	b := &c.body
	b.reset(h)
	switch {
	case h.Chunked:
		r.TransferEncoding = chunkedTE
		r.Body = b
	case h.ContentLength > 0:
		r.Body = b
	default:
		r.Body = http.NoBody
	}
	return nil
}

// header builds the current request's header map from its fields, the
// first time something needs it: the handler reads the fields themselves on
// the fast path (see handler.ServeHTTP), and the request's Header is nil
// until this is called.
func (c *h1Conn) header() http.Header {
	r := c.req
	if c.hdrReady {
		return r.Header
	}
	c.hdrReady = true
	h := &c.head
	s := c.line
	hdr := c.hdr
	clear(hdr)
	if cap(c.vals) < len(h.Fields) {
		c.vals = make([]string, len(h.Fields)+8)
	}
	vals := c.vals[:len(h.Fields)]
	for i := range h.Fields {
		if i == h.Host {
			continue
		}
		f := &h.Fields[i]
		k := h1.CanonicalKey(s[f.NameStart:f.NameEnd])
		vals[i] = s[f.ValueStart:f.ValueEnd]
		if prev, ok := hdr[k]; ok {
			hdr[k] = append(prev, vals[i])
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
	}
	r.Header = hdr
	return hdr
}

// upstreamFields returns the request's header lines as forward sends them
// upstream when it edits req.Header: without the hop-by-hop fields and those
// a Connection field names, with "Te: trailers" when the client accepts
// trailers, X-Forwarded-For extended with the client's address and
// X-Forwarded-Proto set to proto; names in their canonical form. (Host and
// Content-Length come from the request itself.)
func (c *h1Conn) upstreamFields(proto string) []byte {
	h := &c.head
	s := c.line
	conn, xff, keepTE := false, false, false
	for i := range h.Fields {
		f := &h.Fields[i]
		name := s[f.NameStart:f.NameEnd]
		switch len(name) {
		case 2:
			if foldEqual(name, "te") && valueHasToken(s[f.ValueStart:f.ValueEnd], "trailers") {
				keepTE = true
			}
		case 10:
			conn = conn || foldEqual(name, "connection")
		case 15:
			xff = xff || foldEqual(name, "x-forwarded-for")
		}
	}
	b := c.fwd[:0]
	for i := range h.Fields {
		if i == h.Host {
			continue
		}
		f := &h.Fields[i]
		name := s[f.NameStart:f.NameEnd]
		switch {
		case isHopName(name), foldEqual(name, "content-length"),
			foldEqual(name, "x-forwarded-for"), foldEqual(name, "x-forwarded-proto"),
			conn && namedByConnection(s, h.Fields, name):
			continue
		}
		b = appendField(b, name, s[f.ValueStart:f.ValueEnd])
	}
	if keepTE {
		b = append(b, "Te: trailers\r\n"...)
	}
	// X-Forwarded-For: the client's values, joined, then its address (when
	// the address is unknown, the values as they came).
	if c.ip != "" {
		b = append(b, "X-Forwarded-For: "...)
	}
	for i := 0; xff && i < len(h.Fields); i++ {
		f := &h.Fields[i]
		name := s[f.NameStart:f.NameEnd]
		switch {
		case !foldEqual(name, "x-forwarded-for"), conn && namedByConnection(s, h.Fields, name):
		case c.ip == "":
			b = appendField(b, name, s[f.ValueStart:f.ValueEnd])
		default:
			b = append(b, s[f.ValueStart:f.ValueEnd]...)
			b = append(b, ", "...)
		}
	}
	if c.ip != "" {
		b = append(b, c.ip...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Forwarded-Proto: "...)
	b = append(b, proto...)
	b = append(b, "\r\n"...)
	c.fwd = b
	return b
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// reqBody is the body of the current request, read from the connection.
type reqBody struct {
	c       *h1Conn
	mu      sync.Mutex // the handler may hand the body to another goroutine
	closed  bool       // the handler returned
	chunked bool
	remain  int64
	ch      h1.ChunkedReader
	eof     bool
	broken  bool // a read failed: the connection cannot be reused
	expect  bool // a 100 Continue is owed before the first read
}

func (b *reqBody) reset(h *h1.RequestHead) {
	b.closed, b.eof, b.broken = false, false, false
	b.chunked = h.Chunked
	b.remain = h.ContentLength
	b.expect = h.Expect100 && h.Minor == 1 && (h.Chunked || h.ContentLength > 0)
	if h.Chunked {
		b.ch.Reset(b.c.br)
	} else if h.ContentLength == 0 {
		b.eof = true
	}
}

func (b *reqBody) done() bool { return b.eof }

var errBodyClosed = errors.New("read on the body of a finished request")

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	return b.read(p)
}

func (b *reqBody) read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.broken {
		return 0, io.ErrUnexpectedEOF
	}
	c := b.c
	if b.expect {
		b.expect = false
		if !c.w.wroteHeader {
			_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.bw.Flush(); err != nil {
				b.broken = true
				return 0, err
			}
		}
	}
	c.clearDeadline()
	var n int
	var err error
	if b.chunked {
		n, err = b.ch.Read(p)
		if err == io.EOF {
			b.eof = true
			return n, io.EOF
		}
	} else {
		q := p
		if int64(len(q)) > b.remain {
			q = q[:b.remain]
		}
		n, err = c.br.Read(q)
		b.remain -= int64(n)
		if b.remain == 0 {
			b.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		b.broken = true
	}
	return n, err
}

// Close does nothing: what the handler left unread is drained or the
// connection is closed after the response.
func (b *reqBody) Close() error { return nil }

// drain reads what is left of the body, up to h1MaxDrain; it reports
// whether the body was read whole.
func (b *reqBody) drain() bool {
	if b.expect {
		// The client waits for a 100 Continue that will not come: the
		// body was never sent, so the connection cannot be reused.
		return false
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	total := 0
	for !b.eof && !b.broken && total < h1MaxDrain {
		n, err := b.read(*bp)
		total += n
		if err != nil && err != io.EOF {
			return false
		}
	}
	return b.eof
}

// respWriter is the http.ResponseWriter of h1Conn.
type respWriter struct {
	c           *h1Conn
	hdr         http.Header
	req         *http.Request
	wroteHeader bool
	status      int
	chunked     bool
	noBody      bool
	clen        int64 // declared Content-Length; -1: none
	written     int64
	closeAfter  bool
	hijacked    bool
}

func (w *respWriter) reset(req *http.Request, h *h1.RequestHead) {
	if len(w.hdr) != 0 {
		clear(w.hdr)
	}
	w.req = req
	w.wroteHeader, w.chunked, w.noBody, w.hijacked = false, false, false, false
	w.status, w.clen, w.written = 0, -1, 0
	w.closeAfter = w.c.wantsClose()
}

func (w *respWriter) Header() http.Header { return w.hdr }

func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response: written now; the final one follows.
		bw := w.c.bw
		_, _ = bw.WriteString(statusLine(code))
		w.writeFields()
		_, _ = bw.WriteString("\r\n")
		_ = bw.Flush()
		return
	}
	if vv := w.hdr["Content-Length"]; len(vv) > 0 {
		if n, ok := h1.ParseUint([]byte(vv[0])); ok {
			w.clen = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
	w.beginHead(code)
	if _, ok := w.hdr["Date"]; !ok {
		_, _ = w.c.bw.Write(dateLine())
	}
	w.writeFields()
	w.endHead()
}

// writeUpstreamHead writes the head of an upstream response from its fields
// (h, a parse of head) as WriteHeader writes it once they are copied into
// w.Header() and the hop-by-hop ones removed. w.Header() must be empty.
func (w *respWriter) writeUpstreamHead(code int, head []byte, h *h1.ResponseHead) {
	if w.wroteHeader || w.hijacked {
		return
	}
	conn := hasConnection(head, h.Fields)
	date, badLength := false, false
	for i := range h.Fields {
		f := &h.Fields[i]
		name := head[f.NameStart:f.NameEnd]
		switch len(name) {
		case 4:
			date = date || foldEqual(name, "date") && !(conn && namedByConnection(head, h.Fields, name))
		case 14:
			if w.clen < 0 && !badLength && foldEqual(name, "content-length") && !(conn && namedByConnection(head, h.Fields, name)) {
				if n, ok := h1.ParseUint(head[f.ValueStart:f.ValueEnd]); ok {
					w.clen = n
				} else {
					badLength = true
				}
			}
		}
	}
	w.beginHead(code)
	bw := w.c.bw
	if !date {
		_, _ = bw.Write(dateLine())
	}
	for i := range h.Fields {
		f := &h.Fields[i]
		name := head[f.NameStart:f.NameEnd]
		if isHopName(name) || conn && namedByConnection(head, h.Fields, name) ||
			badLength && foldEqual(name, "content-length") {
			continue
		}
		// The upstream's parser made sure of the values.
		_, _ = bw.Write(appendField(bw.AvailableBuffer(), name, head[f.ValueStart:f.ValueEnd]))
	}
	w.endHead()
}

// beginHead starts the final response head: the framing follows from the
// status, the request and w.clen, then the status line is written.
func (w *respWriter) beginHead(code int) {
	w.wroteHeader = true
	w.status = code
	bodyAllowed := code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
	switch {
	case !bodyAllowed || w.req.Method == http.MethodHead:
		w.noBody = true
	case w.clen >= 0:
	case w.req.ProtoMinor == 1:
		w.chunked = true
	default:
		w.closeAfter = true
	}
	if code == http.StatusSwitchingProtocols {
		w.closeAfter = true
	}
	_, _ = w.c.bw.WriteString(statusLine(code))
}

// endHead writes the framing and connection fields and ends the head.
func (w *respWriter) endHead() {
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case w.req.ProtoMinor == 0:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes the header map (trailers, hop-by-hop framing and
// invalid values left out).
func (w *respWriter) writeFields() {
	bw := w.c.bw
	for k, vv := range w.hdr {
		switch k {
		case "Transfer-Encoding", "Connection", "Trailer":
			continue
		}
		if len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix {
			continue
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				continue
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

var errBodyTooLong = errors.New("response body longer than its Content-Length")

func (w *respWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	bw := w.c.bw
	switch {
	case w.chunked:
		var hb [20]byte
		_, _ = bw.Write(h1.AppendChunkHeader(hb[:0], len(p)))
		if _, err := bw.Write(p); err != nil {
			return 0, err
		}
		_, err := bw.WriteString("\r\n")
		w.written += int64(len(p))
		return len(p), err
	case w.clen >= 0:
		if w.written+int64(len(p)) > w.clen {
			n, _ := bw.Write(p[:w.clen-w.written])
			w.written += int64(n)
			return n, errBodyTooLong
		}
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *respWriter) WriteString(s string) (int, error) {
	if w.hijacked || !w.wroteHeader || w.noBody || w.chunked || w.clen >= 0 {
		return w.Write([]byte(s))
	}
	n, err := w.c.bw.WriteString(s)
	w.written += int64(n)
	return n, err
}

func (w *respWriter) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.c.bw.Flush()
}

func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("hijacking after the response head was written")
	}
	c := w.c
	w.hijacked = true
	c.state.Store(connHijacked)
	c.hs.forget(c)
	c.clearDeadline()
	_ = c.bw.Flush()
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish ends the response after the handler returned.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		if _, ok := w.hdr["Content-Length"]; !ok {
			w.hdr["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	bw := w.c.bw
	switch {
	case w.chunked:
		_, _ = bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			if len(k) <= len(http.TrailerPrefix) || k[:len(http.TrailerPrefix)] != http.TrailerPrefix {
				continue
			}
			k = http.CanonicalHeaderKey(k[len(http.TrailerPrefix):])
			for _, v := range vv {
				if validFieldValue(v) {
					_, _ = bw.WriteString(k + ": " + v + "\r\n")
				}
			}
		}
		_, _ = bw.WriteString("\r\n")
	case !w.noBody && w.clen >= 0 && w.written < w.clen:
		// Cut short: the client must not take it for the whole body.
		w.closeAfter = true
	}
}

var zeroLength = []string{"0"}

// statusLines caches "HTTP/1.1 <code> <text>\r\n".
var statusLines = func() (t [600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return
}()

func statusLine(code int) string {
	if code >= 100 && code < 600 && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handoffListener gives net/http's server the connections H1Server hands
// it (HTTP/2 with prior knowledge).
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) handoff(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
