package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/proxy/h1"
)

// Client is sekisho's HTTP/1.1 client for the endpoints of a plain-HTTP
// cluster. Each request is written, and its response head read, on the
// calling goroutine over a pooled keep-alive connection (no goroutines and no
// channels per request); the response body is read from that connection as
// the caller reads it, and the connection goes back to its endpoint's pool
// (LIFO, at most MaxIdle idle, each idle at most IdleTimeout) once the whole
// body has been read and the response allows keep-alive.
//
// A request sent on a reused connection that fails before any byte of the
// response arrived (the peer closed the idle connection meanwhile) is sent
// once more on a new connection when it can be: it has no body, or GetBody
// gives it again.
type Client struct {
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	MaxIdle        int

	// OnDial, when set, is told the outcome of each connection attempt.
	OnDial func(addr string, err error)

	dialer net.Dialer
	mu     sync.Mutex
	pools  map[string]*connPool
	closed atomic.Bool
}

// NewClient returns a Client with sekisho's defaults.
func NewClient(connectTimeout time.Duration) *Client {
	return &Client{
		ConnectTimeout: connectTimeout,
		IdleTimeout:    90 * time.Second,
		MaxIdle:        MaxIdleConnsPerEndpoint,
		dialer:         net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		pools:          map[string]*connPool{},
	}
}

type connPool struct {
	c    *Client
	addr string
	mu   sync.Mutex
	idle []*clientConn // LIFO: the last is the most recently used
}

type clientConn struct {
	pool      *connPool
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Duration // monoNow when it went idle
	reused    bool
	sock      *h1.Sock // nil: not a TCP connection
	wbuf      []byte   // the request head being written
	pending   []byte   // written by the next read of br
	// deferOK: the request head may be left for writeThenRead. Not after a
	// long idle time, when the peer may have half-closed the connection (its
	// FIN would not wake a read armed after it arrived).
	deferOK bool
	head    h1.ResponseHead
	scratch []byte
	// The Response of the current exchange, its header map and, for
	// RoundTripRaw without a map, a copy of its head: the caller must not use
	// them once it closed the body.
	resp  http.Response
	hdr   http.Header
	vals  []string
	rhead []byte
	body  body
}

// Close closes the idle connections; connections in use are closed when
// their request is done instead of going back to a pool.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed.Store(true)
	pools := c.pools
	c.pools = map[string]*connPool{}
	c.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		idle := p.idle
		p.idle = nil
		p.mu.Unlock()
		for _, cc := range idle {
			_ = cc.nc.Close()
		}
	}
}

// IdleConns returns the number of idle connections to addr.
func (c *Client) IdleConns(addr string) int {
	c.mu.Lock()
	p := c.pools[addr]
	c.mu.Unlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func (c *Client) pool(addr string) *connPool {
	c.mu.Lock()
	p := c.pools[addr]
	if p == nil {
		p = &connPool{c: c, addr: addr}
		if !c.closed.Load() {
			c.pools[addr] = p
		}
	}
	c.mu.Unlock()
	return p
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow reads the monotonic clock alone (cheaper than time.Now, which
// reads the wall clock too).
func monoNow() time.Duration { return time.Since(monoBase) }

// get returns an idle connection, or nil.
func (p *connPool) get() *clientConn {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	cc := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if idle := monoNow() - cc.idleSince; idle <= p.c.IdleTimeout {
		p.mu.Unlock()
		cc.deferOK = idle < time.Second
		return cc
	}
	// The newest is too old: so are all the others.
	old := p.idle
	p.idle = nil
	p.mu.Unlock()
	_ = cc.nc.Close()
	for _, o := range old {
		_ = o.nc.Close()
	}
	return nil
}

// put returns a connection whose exchange finished cleanly.
func (p *connPool) put(cc *clientConn) {
	cc.idleSince = monoNow()
	cc.reused = true
	p.mu.Lock()
	if p.c.closed.Load() || len(p.idle) >= p.c.MaxIdle {
		p.mu.Unlock()
		_ = cc.nc.Close()
		return
	}
	var stale *clientConn
	if len(p.idle) > 0 && cc.idleSince-p.idle[0].idleSince > p.c.IdleTimeout {
		stale = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, cc)
	p.mu.Unlock()
	if stale != nil {
		_ = stale.nc.Close()
	}
}

func (p *connPool) dial(ctx context.Context) (*clientConn, error) {
	nc, err := p.c.dialer.DialContext(ctx, "tcp", p.addr)
	if p.c.OnDial != nil {
		p.c.OnDial(p.addr, err)
	}
	if err != nil {
		return nil, &ConnectError{Addr: p.addr, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	cc := &clientConn{pool: p, nc: nc, sock: h1.NewSock(nc), deferOK: true}
	var w io.Writer = nc
	if cc.sock != nil {
		w = cc.sock
	}
	cc.bw = bufio.NewWriterSize(w, 8<<10)
	cc.br = bufio.NewReaderSize(connReader{cc}, 16<<10)
	return cc, nil
}

// connReader reads the connection for cc.br; a request head left pending by
// writeRequest is written first, with the read armed before it goes out (see
// h1.Sock.WriteThenRead: the response cannot come before the request, and
// this saves one read system call per exchange).
type connReader struct{ cc *clientConn }

func (r connReader) Read(p []byte) (int, error) {
	cc := r.cc
	if cc.sock == nil {
		return cc.nc.Read(p)
	}
	if len(cc.pending) == 0 {
		return cc.sock.Read(p)
	}
	out := cc.pending
	cc.pending = nil
	return cc.sock.WriteThenRead(out, p)
}

// errStale marks a failure on a reused connection before any byte of the
// response arrived.
type errStale struct{ err error }

func (e *errStale) Error() string { return e.err.Error() }
func (e *errStale) Unwrap() error { return e.err }

var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip sends req to req.URL.Host (an endpoint address) and returns its
// response. The request's path and query are req.URL.Opaque (or its path)
// and RawQuery; its Host line is req.Host. The caller must read the body to
// its end or close it, and must not use the response (its header, its body)
// once it closed the body: the connection's next exchange reuses them.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.RoundTripRaw(req, nil, false)
}

// RoundTripRaw is RoundTrip for a caller that keeps a message's header as
// its lines rather than an http.Header. fields, when not nil, is the
// request's header in place of req.Header: whole lines ("Name: value\r\n")
// with valid values, without Host, Content-Length, Transfer-Encoding and
// Trailer (written from the request's own fields). With noHeader the
// response's Header is nil: ResponseHead gives its head instead.
func (c *Client) RoundTripRaw(req *http.Request, fields []byte, noHeader bool) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := c.pool(req.URL.Host)
	resendable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 0; ; attempt++ {
		var cc *clientConn
		if attempt == 0 {
			cc = p.get()
		}
		if cc == nil {
			var err error
			if cc, err = p.dial(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := cc.roundTrip(ctx, req, fields, noHeader)
		if err == nil {
			return resp, nil
		}
		var st *errStale
		if attempt == 0 && errors.As(err, &st) && resendable && ctx.Err() == nil {
			if req.GetBody != nil {
				b, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				req.Body = b
			}
			continue
		}
		if st != nil {
			return nil, st.err
		}
		return nil, err
	}
}

// ResponseHead returns the head of a response RoundTripRaw gave without its
// Header map: the head's bytes and their parse (fields as offsets into
// them), valid until the body is closed. It returns nil, nil for any other
// response.
func ResponseHead(resp *http.Response) ([]byte, *h1.ResponseHead) {
	var cc *clientConn
	switch b := resp.Body.(type) {
	case *body:
		cc = b.cc
	case *upgradedConn:
		cc = b.cc
	}
	if cc == nil || resp != &cc.resp || resp.Header != nil {
		return nil, nil
	}
	return cc.rhead, &cc.head
}

func (cc *clientConn) roundTrip(ctx context.Context, req *http.Request, fields []byte, noHeader bool) (resp *http.Response, err error) {
	var stop func() bool
	if ctx.Done() != nil {
		nc := cc.nc
		stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	}
	gotByte := false
	defer func() {
		if err == nil {
			return
		}
		_ = cc.nc.Close()
		if stop != nil && !stop() {
			// The context ended the exchange.
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			return
		}
		if cc.reused && !gotByte {
			err = &errStale{err}
		}
	}()

	if err = cc.writeRequest(req, fields); err != nil {
		return nil, err
	}
	for {
		var head []byte
		var inBuf bool
		head, inBuf, gotByte, err = h1.ReadHead(cc.br, 64<<10, &cc.scratch)
		if err != nil {
			if err == io.EOF && gotByte {
				err = io.ErrUnexpectedEOF
			}
			if errors.Is(err, h1.ErrHeadTooLarge) {
				err = h1.ErrMalformedResponse
			}
			return nil, err
		}
		h := &cc.head
		if perr := h1.ParseResponse(head, h); perr != nil {
			return nil, perr
		}
		if h.Status >= 100 && h.Status < 200 && h.Status != http.StatusSwitchingProtocols {
			// An interim response (100 Continue, 103 Early Hints): the
			// final one follows.
			if inBuf {
				_, _ = cc.br.Discard(len(head))
			}
			continue
		}
		resp = cc.newResponse(req, head, noHeader)
		if inBuf {
			_, _ = cc.br.Discard(len(head))
		}
		break
	}
	h := &cc.head
	noBody := req.Method == http.MethodHead || h.Status == http.StatusNoContent || h.Status == http.StatusNotModified
	switch {
	case h.Status == http.StatusSwitchingProtocols:
		if stop != nil {
			stop()
		}
		resp.Body = &upgradedConn{cc: cc}
		resp.ContentLength = 0
		return resp, nil
	case noBody || h.ContentLength == 0 && !h.Chunked:
		if noBody && req.Method != http.MethodHead {
			resp.ContentLength = 0
		}
		b := cc.newBody(stop, resp)
		b.eof = true
		resp.Body = b
		return resp, nil
	}
	b := cc.newBody(stop, resp)
	switch {
	case h.Chunked:
		b.mode = bodyChunked
		b.chunked.Reset(cc.br)
		b.chunked.Trailer = b.trailerFn
	case h.ContentLength > 0:
		b.mode = bodyLength
		b.remain = h.ContentLength
	default:
		b.mode = bodyClose
		b.keepAlive = false
	}
	resp.Body = b
	return resp, nil
}

// newBody returns the connection's body, reset for the response of the
// current exchange. Like the Response, it is the connection's own: its
// exchange is over once it is closed.
func (cc *clientConn) newBody(stop func() bool, resp *http.Response) *body {
	b := &cc.body
	if b.trailerFn == nil {
		b.trailerFn = b.addTrailer
	}
	*b = body{cc: cc, stop: stop, resp: resp, keepAlive: !cc.head.Close, trailerFn: b.trailerFn}
	return b
}

// newResponse builds the response from the parsed head into the
// connection's own Response and header map, reused by its next exchange (the
// connection is released only when the body is closed): one string holds
// every value and unusual name. With noHeader there is no map: the head is
// copied for ResponseHead.
func (cc *clientConn) newResponse(req *http.Request, head []byte, noHeader bool) *http.Response {
	h := &cc.head
	var hdr http.Header
	if noHeader {
		cc.rhead = append(cc.rhead[:0], head...)
	} else {
		hdr = cc.header(head)
	}
	resp := &cc.resp
	*resp = http.Response{
		StatusCode:    h.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    h.Minor,
		Header:        hdr,
		ContentLength: h.ContentLength,
		Close:         h.Close,
		Request:       req,
	}
	if h.Minor == 0 {
		resp.Proto = "HTTP/1.0"
	}
	if h.Chunked {
		resp.TransferEncoding = chunkedTE
	}
	return resp
}

var chunkedTE = []string{"chunked"}

// header fills the connection's header map from the parsed head (without
// Transfer-Encoding, which the body's framing replaces).
func (cc *clientConn) header(head []byte) http.Header {
	h := &cc.head
	s := string(head)
	if cc.hdr == nil {
		cc.hdr = make(http.Header, 8)
	} else {
		clear(cc.hdr)
	}
	hdr := cc.hdr
	if cap(cc.vals) < len(h.Fields) {
		cc.vals = make([]string, len(h.Fields))
	}
	vals := cc.vals[:len(h.Fields)]
	for i := range h.Fields {
		f := &h.Fields[i]
		k := h1.CanonicalKey(head[f.NameStart:f.NameEnd])
		if k == "Transfer-Encoding" {
			continue
		}
		vals[i] = s[f.ValueStart:f.ValueEnd]
		if prev, ok := hdr[k]; ok {
			hdr[k] = append(prev, vals[i])
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
	}
	return hdr
}

// release ends an exchange whose response was read whole: the connection
// goes back to the pool when it may carry another request.
func (cc *clientConn) release(stop func() bool, keepAlive bool) {
	if stop != nil && !stop() {
		keepAlive = false // its deadline was set by the context
	}
	if !keepAlive || cc.br.Buffered() > 0 {
		_ = cc.nc.Close()
		return
	}
	cc.pool.put(cc)
}

// hdrExcluded are written by writeRequest itself, from the request's fields.
func hdrExcluded(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (cc *clientConn) writeRequest(req *http.Request, fields []byte) error {
	target := req.URL.Opaque
	if target == "" {
		target = req.URL.EscapedPath()
		if target == "" {
			target = "/"
		}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validValue(host) || !validValue(target) {
		return errors.New("invalid request target or host")
	}
	w := cc.wbuf[:0]
	w = append(w, req.Method...)
	w = append(w, ' ')
	w = append(w, target...)
	if req.URL.RawQuery != "" {
		w = append(w, '?')
		w = append(w, req.URL.RawQuery...)
	}
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, host...)
	w = append(w, "\r\n"...)
	if fields != nil {
		w = append(w, fields...)
	} else {
		for k, vv := range req.Header {
			if hdrExcluded(k) {
				continue
			}
			for _, v := range vv {
				if !validValue(v) {
					return fmt.Errorf("invalid value of header %q", k)
				}
				w = append(w, k...)
				w = append(w, ": "...)
				w = append(w, v...)
				w = append(w, "\r\n"...)
			}
		}
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength > 0:
		w = append(w, "Content-Length: "...)
		w = strconv.AppendInt(w, req.ContentLength, 10)
		w = append(w, "\r\n\r\n"...)
	case hasBody && req.ContentLength < 0:
		w = append(w, "Transfer-Encoding: chunked\r\n\r\n"...)
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w = append(w, "Content-Length: 0\r\n\r\n"...)
		hasBody = false
	default:
		w = append(w, "\r\n"...)
		hasBody = false
	}
	cc.wbuf = w
	if hasBody {
		_, _ = cc.bw.Write(w)
		if err := cc.writeBody(req); err != nil {
			return err
		}
		return cc.bw.Flush()
	}
	if cc.sock != nil && cc.deferOK {
		cc.pending = w
		return nil
	}
	_, err := cc.bw.Write(w)
	if err == nil {
		err = cc.bw.Flush()
	}
	return err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func (cc *clientConn) writeBody(req *http.Request) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	w := cc.bw
	if req.ContentLength > 0 {
		n, err := io.CopyBuffer(w, io.LimitReader(req.Body, req.ContentLength), buf)
		if err == nil && n < req.ContentLength {
			err = fmt.Errorf("request body: %d bytes of Content-Length %d", n, req.ContentLength)
		}
		return err
	}
	// Chunked: each piece read from the body goes out as one chunk at once,
	// so a streamed request body streams on.
	var hb [20]byte
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			_, _ = w.Write(h1.AppendChunkHeader(hb[:0], n))
			_, _ = w.Write(buf[:n])
			_, _ = w.WriteString("\r\n")
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			_, _ = w.WriteString("0\r\n\r\n")
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("request body: %w", rerr)
		}
	}
}

const (
	bodyLength = iota
	bodyChunked
	bodyClose
)

// body is a response body read from the connection of its exchange. The
// connection goes back to the pool when the body, read to its end, is
// closed.
type body struct {
	cc        *clientConn
	stop      func() bool
	resp      *http.Response
	mode      int
	remain    int64
	chunked   h1.ChunkedReader
	keepAlive bool
	eof       bool // read to its end
	closed    bool // the connection was released or closed
	err       error
	trailerFn func(name, value []byte) // addTrailer, made once
}

func (b *body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.closed {
		if b.err != nil {
			return 0, b.err
		}
		return 0, errBodyClosed
	}
	var n int
	var err error
	switch b.mode {
	case bodyLength:
		q := p
		if int64(len(q)) > b.remain {
			q = q[:b.remain]
		}
		n, err = b.cc.br.Read(q)
		b.remain -= int64(n)
		if b.remain == 0 {
			b.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			b.eof = true
			return n, io.EOF
		}
	case bodyClose:
		n, err = b.cc.br.Read(p)
		if err == io.EOF {
			b.eof = true
			b.keepAlive = false
			return n, io.EOF
		}
	}
	if err != nil {
		b.abort(err)
	}
	return n, err
}

func (b *body) abort(err error) {
	if b.closed {
		return
	}
	b.closed = true
	b.err = err
	if b.stop != nil {
		b.stop()
	}
	_ = b.cc.nc.Close()
}

// Close releases the connection to the pool when the body was read to its
// end, and closes it otherwise.
func (b *body) Close() error {
	switch {
	case b.closed:
	case b.eof:
		b.closed = true
		b.cc.release(b.stop, b.keepAlive)
	default:
		b.abort(errBodyClosed)
	}
	return nil
}

var errBodyClosed = errors.New("read on a closed response body")

func (b *body) addTrailer(name, value []byte) {
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header{}
	}
	b.resp.Trailer.Add(h1.CanonicalKey(name), string(value))
}

// upgradedConn is the body of a 101 response: the upstream connection itself.
type upgradedConn struct{ cc *clientConn }

func (u *upgradedConn) Read(p []byte) (int, error)  { return u.cc.br.Read(p) }
func (u *upgradedConn) Write(p []byte) (int, error) { return u.cc.nc.Write(p) }
func (u *upgradedConn) Close() error                { return u.cc.nc.Close() }
