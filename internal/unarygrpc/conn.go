package unarygrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// streamWindowSize is the INITIAL_WINDOW_SIZE we advertise: how much
	// request data a client may send on one stream before we return credit.
	streamWindowSize = 1 << 20
	// connWindowSize is the receive window we open for the whole connection.
	connWindowSize = 1 << 20
	// maxHeaderListSize is the MAX_HEADER_LIST_SIZE we advertise and enforce.
	maxHeaderListSize = 16 << 10

	// defaultWindowSize and defaultMaxFrameSize are the RFC 9113 defaults
	// that apply until the peer's SETTINGS say otherwise.
	defaultWindowSize   = 65535
	defaultMaxFrameSize = 16384
	// maxWindow is the largest legal flow-control window (2^31-1).
	maxWindow = 1<<31 - 1

	// ioBufferSize sizes the buffered reader and writer of a connection.
	ioBufferSize = 32 << 10
	// maxPendingControl bounds the control frames queued by the reader while
	// another goroutine holds the write lock. A peer that makes us exceed it
	// (e.g. flooding PINGs while not reading) loses the connection.
	maxPendingControl = 1 << 20

	// prefaceTimeout bounds the wait for the client preface and first SETTINGS.
	prefaceTimeout = 10 * time.Second
	// lingerTimeout bounds how long a connection winding down after GOAWAY
	// waits for the client to close its side.
	lingerTimeout = time.Second
	// goAwayWriteTimeout bounds the write of a GOAWAY that ends a connection
	// because of a protocol error.
	goAwayWriteTimeout = time.Second
)

// conn is one server-side HTTP/2 connection.
//
// Lock order: mu before pmu, and wmu before pmu. Nothing acquires mu while
// holding wmu, and the reader never blocks on wmu while holding mu.
type conn struct {
	srv *Server
	nc  net.Conn

	// Owned by the reader goroutine.
	br              *bufio.Reader
	rfr             *http2.Framer
	recvConnWindow  int64 // bytes the client may still send on the connection
	recvConnUnacked int64 // bytes consumed but not yet returned with WINDOW_UPDATE
	sawSettings     bool  // the client's first SETTINGS frame has arrived

	// Write side, guarded by wmu.
	wmu         sync.Mutex
	bw          *bufio.Writer
	wfr         *http2.Framer
	henc        *hpack.Encoder
	hbuf        bytes.Buffer // header block being encoded
	scratch     []byte       // first DATA frame of an answer: prefix + message start
	ctrl        []byte       // control frames copied out of pbuf
	prefaceSent bool         // our SETTINGS have been written
	goAwayDone  bool         // a GOAWAY has been written
	werr        error        // first write error; later writes are skipped

	// writers counts goroutines holding or waiting for wmu through lockWrite.
	writers atomic.Int32

	// Control frames queued by the reader, guarded by pmu. pending mirrors
	// pbuf.Len() > 0 so that write-lock holders can check it cheaply.
	pmu        sync.Mutex
	pbuf       bytes.Buffer
	pfr        *http2.Framer // writes into pbuf
	tableSizes []uint32      // HEADER_TABLE_SIZE values acknowledged in pbuf
	pending    atomic.Bool

	// peerMaxFrame is the peer's SETTINGS_MAX_FRAME_SIZE.
	peerMaxFrame atomic.Uint32

	// Shared state, guarded by mu. cond is signalled when send windows grow,
	// streams are reset or the connection closes.
	mu                sync.Mutex
	cond              sync.Cond
	streams           map[uint32]*stream
	inFlight          uint32 // streams counted against MaxConcurrentStreams
	maxStreamID       uint32 // highest stream ID the client has opened (written by the reader)
	sendWindow        int64  // connection-level send window
	peerInitialWindow int64  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	goAwaySent        bool   // we sent (or are sending) GOAWAY: no new streams
	goAwayLast        uint32 // last stream ID announced in our GOAWAY
	peerGoAway        bool   // the client sent GOAWAY
	finishing         bool   // the connection is winding down
	closed            bool   // the reader has exited
}

func newConn(srv *Server, nc net.Conn) *conn {
	c := &conn{
		srv:               srv,
		nc:                nc,
		recvConnWindow:    connWindowSize,
		streams:           make(map[uint32]*stream),
		sendWindow:        defaultWindowSize,
		peerInitialWindow: defaultWindowSize,
	}
	c.cond.L = &c.mu
	c.peerMaxFrame.Store(defaultMaxFrameSize)

	c.br = bufio.NewReaderSize(connReader{c}, ioBufferSize)
	c.rfr = http2.NewFramer(nil, c.br)
	c.rfr.SetMaxReadFrameSize(defaultMaxFrameSize)
	c.rfr.MaxHeaderListSize = maxHeaderListSize
	c.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.rfr.SetReuseFrames()

	c.bw = bufio.NewWriterSize(nc, ioBufferSize)
	c.wfr = http2.NewFramer(c.bw, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.pfr = http2.NewFramer(&c.pbuf, nil)
	return c
}

// connReader feeds the connection's bufio.Reader. Before each read from the
// network, which may block, it writes out the control frames the reader has
// queued, so acknowledgements and window updates are batched per read but
// never held back while the reader waits.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	r.c.flushPending()
	return r.c.nc.Read(p)
}

// connError is a connection error detected while processing a frame: the
// connection is ended with GOAWAY carrying code.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string { return fmt.Sprintf("connection error %v: %s", e.code, e.reason) }

// serve runs the reader loop until the connection ends.
func (c *conn) serve() {
	defer c.cleanup()

	c.lockWrite()
	c.writePrefaceLocked()
	c.unlockWrite()

	c.nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	if err := c.readPreface(); err != nil {
		c.srv.log.Debug("unarygrpc: bad client preface", "remote", c.nc.RemoteAddr(), "error", err)
		return
	}
	for {
		fh, err := c.rfr.ReadFrameHeader()
		var f http2.Frame
		if err == nil {
			f, err = c.rfr.ReadFrameForHeader(fh)
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if err := c.onStreamError(fh, se); err != nil {
					c.goAwayAndClose(http2.ErrCodeProtocol, err.Error())
					return
				}
				continue
			}
			c.onReadError(err)
			return
		}
		if err := c.processFrame(f); err != nil {
			var ce connError
			if errors.As(err, &ce) {
				c.srv.log.Debug("unarygrpc: protocol error", "remote", c.nc.RemoteAddr(), "error", err)
				c.goAwayAndClose(ce.code, ce.reason)
			}
			return
		}
	}
}

// readPreface reads the client connection preface, failing at the first byte
// that differs so that non-HTTP/2 clients are dropped at once.
func (c *conn) readPreface() error {
	for i := 0; i < len(http2.ClientPreface); i++ {
		b, err := c.br.ReadByte()
		if err != nil {
			return err
		}
		if b != http2.ClientPreface[i] {
			return errors.New("client preface mismatch")
		}
	}
	return nil
}

// onReadError ends the connection after a failed frame read. Network errors
// just close it; malformed frames get a GOAWAY first.
func (c *conn) onReadError(err error) {
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) {
		return
	}
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		code = http2.ErrCodeFrameSize
	}
	reason := err.Error()
	if d := c.rfr.ErrorDetail(); d != nil {
		reason = d.Error()
	}
	c.srv.log.Debug("unarygrpc: frame read error", "remote", c.nc.RemoteAddr(), "error", err, "detail", reason)
	c.goAwayAndClose(code, reason)
}

// onStreamError handles a frame the Framer rejected for one stream only:
// that stream is reset. It returns an error if the problem must end the
// connection after all.
func (c *conn) onStreamError(fh http2.FrameHeader, se http2.StreamError) error {
	id := se.StreamID
	c.mu.Lock()
	s := c.streams[id]
	idle := s == nil && id > c.maxStreamID
	if idle && fh.Type == http2.FrameHeaders && se.Cause != nil && id%2 == 1 {
		// A header block with invalid fields was decoded (keeping the HPACK
		// state in step), so the stream counts as opened and then reset.
		c.maxStreamID = id
		idle = false
	}
	c.mu.Unlock()
	switch {
	case fh.Type == http2.FrameHeaders && se.Cause == nil:
		// A HEADERS frame the Framer could not even parse (bad padding):
		// its header block was not decoded, so the HPACK state is lost.
		return errors.New("malformed HEADERS frame")
	case idle:
		return fmt.Errorf("%v frame on idle stream %d", fh.Type, id)
	case s != nil:
		c.resetStream(s, se.Code)
		return nil
	default:
		return c.queueRSTStream(id, se.Code)
	}
}

// processFrame handles one frame. A non-nil error ends the connection; a
// connError is reported to the client with GOAWAY.
func (c *conn) processFrame(f http2.Frame) error {
	if !c.sawSettings {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return connError{http2.ErrCodeProtocol, "first frame after the preface is not SETTINGS"}
		}
		c.sawSettings = true
		c.mu.Lock()
		if !c.finishing {
			c.nc.SetReadDeadline(time.Time{})
		}
		c.mu.Unlock()
	}
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.queuePingAck(f.Data)
		}
	case *http2.RSTStreamFrame:
		return c.onRSTStream(f)
	case *http2.GoAwayFrame:
		c.onGoAway()
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "client sent PUSH_PROMISE"}
	}
	// PRIORITY, PRIORITY_UPDATE and unknown frame types are ignored.
	return nil
}

// onHeaders handles a complete header block: a new request, or trailers on
// an open stream.
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "client opened an even-numbered stream"}
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		c.mu.Unlock()
		return c.onTrailers(s, f)
	}
	if id <= c.maxStreamID {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("HEADERS on closed stream %d", id)}
	}
	c.maxStreamID = id
	refuse := c.goAwaySent || c.peerGoAway || c.finishing || c.inFlight >= c.srv.maxStreams
	c.mu.Unlock()
	if refuse {
		return c.queueRSTStream(id, http2.ErrCodeRefusedStream)
	}

	req := parseRequest(f)
	if req.malformed != "" {
		c.srv.log.Debug("unarygrpc: malformed request", "stream", id, "reason", req.malformed)
		return c.queueRSTStream(id, http2.ErrCodeProtocol)
	}
	var h Handler
	if req.reject == nil {
		if h = c.srv.handlers[req.path]; h == nil {
			req.reject = &earlyAnswer{code: codeUnimplemented, msg: "unknown method " + req.path}
		}
	}
	if req.reject != nil {
		c.writeEarlyAnswer(id, req.reject, !f.StreamEnded())
		return nil
	}

	s := &stream{
		id:            id,
		method:        req.path,
		handler:       h,
		timeout:       req.timeout,
		hasTimeout:    req.hasTimeout,
		contentLength: req.contentLength,
		recvWindow:    streamWindowSize,
	}
	if s.hasTimeout {
		s.start = time.Now()
	}
	c.mu.Lock()
	s.sendWindow = c.peerInitialWindow
	c.streams[id] = s
	c.inFlight++
	c.mu.Unlock()

	if f.StreamEnded() {
		return c.endOfRequest(s)
	}
	return nil
}

// onTrailers handles a second header block on an open stream. gRPC clients
// do not send request trailers; they are accepted only as the end of the
// request and otherwise ignored.
func (c *conn) onTrailers(s *stream, f *http2.MetaHeadersFrame) error {
	switch {
	case s.remoteClosed:
		c.resetStream(s, http2.ErrCodeStreamClosed)
	case !f.StreamEnded() || len(f.PseudoFields()) > 0:
		c.resetStream(s, http2.ErrCodeProtocol)
	default:
		return c.endOfRequest(s)
	}
	return nil
}

// onData accounts a DATA frame against the receive windows and appends its
// payload to the stream's request.
func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length) // padding counts against flow control too

	if n > c.recvConnWindow {
		return connError{http2.ErrCodeFlowControl, "DATA exceeds the connection window"}
	}
	// The payload is consumed (copied or dropped) right away, so the
	// connection credit can be returned at once, in batches.
	c.recvConnWindow -= n
	c.recvConnUnacked += n
	if c.recvConnUnacked >= connWindowSize/2 {
		if err := c.queueWindowUpdate(0, uint32(c.recvConnUnacked)); err != nil {
			return err
		}
		c.recvConnWindow += c.recvConnUnacked
		c.recvConnUnacked = 0
	}

	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s == nil {
		if id > c.maxStreamID {
			return connError{http2.ErrCodeProtocol, fmt.Sprintf("DATA on idle stream %d", id)}
		}
		// A stream we already answered or reset; the client may not have
		// seen that yet.
		return nil
	}
	if s.remoteClosed {
		c.resetStream(s, http2.ErrCodeStreamClosed)
		return nil
	}
	if n > s.recvWindow {
		c.resetStream(s, http2.ErrCodeFlowControl)
		return nil
	}
	s.recvWindow -= n
	s.recvUnacked += n

	data := f.Data()
	if s.contentLength >= 0 && int64(len(s.buf)+len(data)) > s.contentLength {
		c.resetStream(s, http2.ErrCodeProtocol)
		return nil
	}
	limit := 5 + c.srv.maxRecvMsgSize
	if len(s.buf)+len(data) > limit {
		c.rejectStream(s, &earlyAnswer{code: codeResourceExhausted,
			msg: fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", len(s.buf)+len(data)-5, c.srv.maxRecvMsgSize)})
		return nil
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, initialRequestCap(data, f.StreamEnded()))
	}
	s.buf = append(s.buf, data...)
	if len(s.buf) >= 5 {
		if size := msgLen(s.buf); size > uint64(c.srv.maxRecvMsgSize) {
			c.rejectStream(s, &earlyAnswer{code: codeResourceExhausted,
				msg: fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", size, c.srv.maxRecvMsgSize)})
			return nil
		}
	}

	if f.StreamEnded() {
		return c.endOfRequest(s)
	}
	if s.recvUnacked >= streamWindowSize/2 {
		if err := c.queueWindowUpdate(id, uint32(s.recvUnacked)); err != nil {
			return err
		}
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
	}
	return nil
}

// initialRequestCap picks the capacity of a request buffer from its first
// DATA frame: the exact frame size when the request is complete, or the
// announced message size when that is modest. Large announced sizes are not
// trusted; the buffer grows as data actually arrives.
func initialRequestCap(first []byte, ended bool) int {
	n := len(first)
	if !ended && n >= 5 {
		if want := 5 + msgLen(first); want <= 64<<10 && int(want) > n {
			n = int(want)
		}
	}
	return n
}

// endOfRequest handles the end of the client's half of a stream: it checks
// that exactly one uncompressed message arrived and starts the handler.
func (c *conn) endOfRequest(s *stream) error {
	s.remoteClosed = true
	if s.contentLength >= 0 && int64(len(s.buf)) != s.contentLength {
		c.resetStream(s, http2.ErrCodeProtocol)
		return nil
	}
	if msg := checkMessage(s.buf); msg != "" {
		c.rejectStream(s, &earlyAnswer{code: codeInternal, msg: msg})
		return nil
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if s.hasTimeout {
		ctx, cancel = context.WithDeadline(context.Background(), s.start.Add(s.timeout))
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	s.cancel = cancel
	s.dispatched = true
	req := s.buf[5:]
	s.buf = nil
	c.srv.dispatch(func() { c.runStream(ctx, s, req) })
	return nil
}

// onSettings applies the client's settings and acknowledges them.
func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var tableSizes []uint32
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return connError{http2.ErrCode(ce), "invalid setting " + st.String()}
			}
			return err
		}
		switch st.ID {
		case http2.SettingInitialWindowSize:
			return c.setPeerInitialWindow(int64(st.Val))
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame.Store(st.Val)
		case http2.SettingHeaderTableSize:
			tableSizes = append(tableSizes, st.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.queueSettingsAck(tableSizes)
}

// setPeerInitialWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE: the send
// window of every open stream changes by the difference (RFC 9113 6.9.2).
func (c *conn) setPeerInitialWindow(v int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delta := v - c.peerInitialWindow
	c.peerInitialWindow = v
	for _, s := range c.streams {
		s.sendWindow += delta
		if s.sendWindow > maxWindow {
			return connError{http2.ErrCodeFlowControl, "INITIAL_WINDOW_SIZE overflows a stream window"}
		}
	}
	if delta > 0 {
		c.cond.Broadcast()
	}
	return nil
}

// onWindowUpdate grows a send window and wakes writers waiting for it.
func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	id := f.StreamID
	c.mu.Lock()
	if id == 0 {
		c.sendWindow += inc
		if c.sendWindow > maxWindow {
			c.mu.Unlock()
			return connError{http2.ErrCodeFlowControl, "connection window overflow"}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		return nil
	}
	if id > c.maxStreamID {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("WINDOW_UPDATE on idle stream %d", id)}
	}
	s := c.streams[id]
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	s.sendWindow += inc
	overflow := s.sendWindow > maxWindow
	if !overflow {
		c.cond.Broadcast()
	}
	c.mu.Unlock()
	if overflow {
		c.resetStream(s, http2.ErrCodeFlowControl)
	}
	return nil
}

// onRSTStream handles the client abandoning a stream: the call's context is
// cancelled and its answer, if not written yet, is dropped.
func (c *conn) onRSTStream(f *http2.RSTStreamFrame) error {
	id := f.StreamID
	c.mu.Lock()
	s := c.streams[id]
	idle := s == nil && id > c.maxStreamID
	c.mu.Unlock()
	if idle {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("RST_STREAM on idle stream %d", id)}
	}
	if s == nil {
		return nil
	}
	s.state.CompareAndSwap(streamOpen, streamReset)
	c.removeStream(s)
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}

// onGoAway handles the client's GOAWAY: the open streams are finished, no
// new ones are accepted, and the connection is closed when they are done.
func (c *conn) onGoAway() {
	c.mu.Lock()
	c.peerGoAway = true
	fin := c.shouldFinishLocked()
	c.mu.Unlock()
	if fin {
		c.finish()
	}
}

// resetStream ends s with RST_STREAM code, unless its answer has already
// been committed, and cancels its call. Called by the reader only.
func (c *conn) resetStream(s *stream, code http2.ErrCode) {
	reset := s.state.CompareAndSwap(streamOpen, streamReset)
	c.removeStream(s)
	if s.cancel != nil {
		s.cancel()
	}
	if reset {
		// The RST is queued after the state change, so a writer that saw
		// the stream open has its frames written before the RST.
		c.queueRSTStream(s.id, code)
	}
}

// rejectStream answers s from the reader with a status before its handler
// runs, and resets the client's half of the stream if it is still sending.
func (c *conn) rejectStream(s *stream, a *earlyAnswer) {
	s.state.Store(streamAnswered)
	c.removeStream(s)
	c.writeEarlyAnswer(s.id, a, !s.remoteClosed)
}

// removeStream forgets s for frame routing. A stream whose handler has not
// started also stops counting against MaxConcurrentStreams; one whose
// handler runs keeps counting until runStream ends. Called by the reader.
func (c *conn) removeStream(s *stream) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		if !s.dispatched {
			c.inFlight--
		}
		c.cond.Broadcast()
	}
	fin := c.shouldFinishLocked()
	c.mu.Unlock()
	if fin {
		c.finish()
	}
}

// streamDone is called when a dispatched stream's handler has returned and
// its answer has been written or dropped.
func (c *conn) streamDone(s *stream) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	c.inFlight--
	fin := c.shouldFinishLocked()
	c.mu.Unlock()
	if fin {
		c.finish()
	}
}

// drain starts a graceful shutdown of the connection: GOAWAY announcing the
// last stream we will process, then close once the calls in progress are done.
func (c *conn) drain() {
	c.mu.Lock()
	if c.goAwaySent || c.closed {
		c.mu.Unlock()
		return
	}
	c.goAwaySent = true
	c.goAwayLast = c.maxStreamID
	last := c.goAwayLast
	fin := c.shouldFinishLocked()
	c.mu.Unlock()

	c.lockWrite()
	c.writeGoAwayLocked(last, http2.ErrCodeNo, nil)
	c.unlockWrite()
	if fin {
		c.finish()
	}
}

// shouldFinishLocked reports whether the connection has become idle after a
// GOAWAY (ours or the client's) and marks it finishing. Only one caller ever
// gets true; it must call finish. c.mu must be held.
func (c *conn) shouldFinishLocked() bool {
	if c.finishing || c.closed || !(c.goAwaySent || c.peerGoAway) || c.inFlight > 0 {
		return false
	}
	c.finishing = true
	if !c.goAwaySent {
		c.goAwaySent = true
		c.goAwayLast = c.maxStreamID
	}
	// Give the client a little time to close first, so our last frames are
	// not lost to a TCP reset caused by data it is still sending.
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	return true
}

// finish winds down an idle connection: it makes sure GOAWAY went out, flushes
// and half-closes the connection. The reader then sees the client close (or
// the linger deadline) and closes the connection.
func (c *conn) finish() {
	c.mu.Lock()
	last := c.goAwayLast
	c.mu.Unlock()

	c.lockWrite()
	c.writeGoAwayLocked(last, http2.ErrCodeNo, nil)
	c.writePendingLocked()
	c.flushLocked() // now: the write side is about to be shut
	c.unlockWrite()

	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.nc.Close()
}

// goAwayAndClose reports a connection error to the client. The reader returns
// afterwards, which closes the connection.
func (c *conn) goAwayAndClose(code http2.ErrCode, reason string) {
	c.mu.Lock()
	last := c.maxStreamID
	c.mu.Unlock()
	// A writer stuck on a peer that does not read must not hold us up.
	c.nc.SetWriteDeadline(time.Now().Add(goAwayWriteTimeout))
	c.lockWrite()
	c.writeGoAwayLocked(last, code, []byte(reason))
	c.writePendingLocked()
	c.flushLocked() // now: the connection is closed next
	c.unlockWrite()
}

// cleanup runs when the reader exits: it closes the connection, cancels the
// calls in progress and wakes writers waiting for flow-control credit.
func (c *conn) cleanup() {
	c.nc.Close()
	c.mu.Lock()
	c.closed = true
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	clear(c.streams)
	c.cond.Broadcast()
	c.mu.Unlock()
	for _, s := range streams {
		s.state.CompareAndSwap(streamOpen, streamReset)
		if s.cancel != nil {
			s.cancel()
		}
	}
}
