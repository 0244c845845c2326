package unarygrpc

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// runStream runs a call's handler on its own goroutine and writes the answer.
func (c *conn) runStream(ctx context.Context, s *stream, req []byte) {
	defer c.streamDone(s)
	defer s.cancel()

	resp, err := c.callHandler(ctx, s, req)
	if err == nil && uint64(len(resp)) > math.MaxUint32 {
		err = status.Errorf(codes.ResourceExhausted, "grpc: response of %d bytes does not fit a gRPC message", len(resp))
	}
	if err != nil {
		c.writeStatus(s, err)
		return
	}
	c.writeResponse(s, resp)
}

// callHandler calls the stream's handler, turning a panic into INTERNAL.
func (c *conn) callHandler(ctx context.Context, s *stream, req []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("unarygrpc: handler panicked", "method", s.method, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, fmt.Sprintf("grpc: handler for %s panicked", s.method))
		}
	}()
	return s.handler(ctx, req)
}

// writeResponse sends a successful answer: HEADERS, the message in DATA
// frames as flow control allows, and trailers. When the windows allow it, all
// of it goes out in one flush. A stream reset meanwhile drops the answer.
func (c *conn) writeResponse(s *stream, resp []byte) {
	var prefix [5]byte
	prefix[1] = byte(len(resp) >> 24)
	prefix[2] = byte(len(resp) >> 16)
	prefix[3] = byte(len(resp) >> 8)
	prefix[4] = byte(len(resp))
	total := 5 + len(resp)

	sent := 0
	headersSent := false
	for sent < total {
		n, ok := c.reserve(s, total-sent)
		if !ok {
			return
		}
		final := sent+n == total

		c.lockWrite()
		// Commit (or check) the stream under the write lock; see streamOpen.
		if final && !s.state.CompareAndSwap(streamOpen, streamAnswered) ||
			!final && s.state.Load() != streamOpen {
			c.unlockWrite()
			c.unreserve(n)
			return
		}
		if !headersSent {
			c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			c.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			c.writeHeaderBlockLocked(s.id, false)
			headersSent = true
		}
		c.writeDataLocked(s.id, &prefix, resp, sent, n)
		sent += n
		if final {
			c.henc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
			c.writeHeaderBlockLocked(s.id, true)
		}
		c.unlockWrite()
	}
}

// writeStatus answers a call whose handler failed with a trailers-only
// response carrying the error's status.
func (c *conn) writeStatus(s *stream, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	code := uint32(st.Code())
	msg := st.Message()
	if code == codeOK {
		code, msg = codeUnknown, "handler returned an error with status OK: "+err.Error()
	}
	var details string
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			details = base64.RawStdEncoding.EncodeToString(b)
		}
	}

	c.lockWrite()
	defer c.unlockWrite()
	if !s.state.CompareAndSwap(streamOpen, streamAnswered) {
		return
	}
	c.encodeStatusLocked(200, code, msg, details, false)
	c.writeHeaderBlockLocked(s.id, true)
}

// writeEarlyAnswer sends a trailers-only answer from the reader, followed by
// RST_STREAM(NO_ERROR) when the client has not finished sending, which asks
// it to stop without error (RFC 9113 8.1).
func (c *conn) writeEarlyAnswer(id uint32, a *earlyAnswer, rst bool) {
	httpStatus := a.httpStatus
	if httpStatus == 0 {
		httpStatus = 200
	}
	c.lockWrite()
	defer c.unlockWrite()
	c.encodeStatusLocked(httpStatus, a.code, a.msg, "", a.acceptEncoding)
	c.writeHeaderBlockLocked(id, true)
	if rst && c.werr == nil {
		c.wfr.WriteRSTStream(id, http2.ErrCodeNo)
	}
}

// encodeStatusLocked encodes the header block of a trailers-only answer.
func (c *conn) encodeStatusLocked(httpStatus int, code uint32, msg, details string, acceptEncoding bool) {
	c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(httpStatus)})
	c.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	if acceptEncoding {
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-accept-encoding", Value: "identity"})
	}
	c.henc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: strconv.FormatUint(uint64(code), 10)})
	// Messages and details vary; keeping them out of the HPACK dynamic table
	// stops them from evicting the fields every answer repeats.
	if msg != "" {
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: encodeGRPCMessage(msg), Sensitive: true})
	}
	if details != "" {
		c.henc.WriteField(hpack.HeaderField{Name: "grpc-status-details-bin", Value: details, Sensitive: true})
	}
}

// writeHeaderBlockLocked writes the header block encoded in c.hbuf as HEADERS
// and, if it exceeds the peer's maximum frame size, CONTINUATION frames.
func (c *conn) writeHeaderBlockLocked(id uint32, endStream bool) {
	block := c.hbuf.Bytes()
	defer c.hbuf.Reset()
	if c.werr != nil {
		return
	}
	maxFrame := int(c.peerMaxFrame.Load())
	frag := block[:min(len(block), maxFrame)]
	block = block[len(frag):]
	c.wfr.WriteHeaders(http2.HeadersFrameParam{
		StreamID:      id,
		BlockFragment: frag,
		EndStream:     endStream,
		EndHeaders:    len(block) == 0,
	})
	for len(block) > 0 {
		frag = block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		c.wfr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// writeDataLocked writes bytes [off, off+n) of the length-prefixed message
// (prefix followed by msg) as DATA frames no larger than the peer allows.
func (c *conn) writeDataLocked(id uint32, prefix *[5]byte, msg []byte, off, n int) {
	if c.werr != nil {
		return
	}
	maxFrame := int(c.peerMaxFrame.Load())
	for n > 0 {
		size := min(n, maxFrame)
		var chunk []byte
		if off < 5 {
			// The frame starts inside the prefix: assemble it in scratch.
			c.scratch = append(c.scratch[:0], prefix[off:min(5, off+size)]...)
			if rest := size - len(c.scratch); rest > 0 {
				c.scratch = append(c.scratch, msg[:rest]...)
			}
			chunk = c.scratch
		} else {
			chunk = msg[off-5 : off-5+size]
		}
		c.wfr.WriteData(id, false, chunk)
		off += size
		n -= size
	}
	if cap(c.scratch) > 64<<10 {
		c.scratch = nil // do not pin a large buffer after a rare large answer
	}
}

// writePrefaceLocked writes our connection preface once: SETTINGS and a
// WINDOW_UPDATE that opens the connection receive window.
func (c *conn) writePrefaceLocked() {
	if c.prefaceSent {
		return
	}
	c.prefaceSent = true
	c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindowSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	c.wfr.WriteWindowUpdate(0, connWindowSize-defaultWindowSize)
}

// writeGoAwayLocked writes GOAWAY, at most once per connection.
func (c *conn) writeGoAwayLocked(last uint32, code http2.ErrCode, debugData []byte) {
	if c.goAwayDone || c.werr != nil {
		return
	}
	c.goAwayDone = true
	c.writePrefaceLocked()
	c.wfr.WriteGoAway(last, code, debugData)
}

// lockWrite takes the write lock. It must be paired with unlockWrite.
func (c *conn) lockWrite() {
	c.writers.Add(1)
	c.wmu.Lock()
}

// unlockWrite writes the queued control frames, flushes and releases the
// write lock. When another writer is already waiting for the lock, the flush
// is left to it, so that answers completing together share one write system
// call; the last writer in line always flushes, so nothing is held back.
// Control frames queued after the check are written by flushPending.
func (c *conn) unlockWrite() {
	c.writePendingLocked()
	if c.writers.Add(-1) == 0 {
		c.flushLocked()
	}
	c.wmu.Unlock()
	if c.pending.Load() {
		c.flushPending()
	}
}

// flushLocked writes out the write buffer. A write error is sticky and
// closes the connection, which wakes the reader and every waiting writer.
func (c *conn) flushLocked() {
	if c.werr != nil {
		return
	}
	if err := c.bw.Flush(); err != nil {
		c.werr = err
		c.nc.Close()
	}
}

// flushPending writes the queued control frames unless another goroutine
// holds the write lock, in which case that goroutine writes them when it
// releases the lock.
func (c *conn) flushPending() {
	for c.pending.Load() {
		if !c.wmu.TryLock() {
			return
		}
		c.writePendingLocked()
		c.flushLocked()
		c.wmu.Unlock()
	}
}

// writePendingLocked moves the queued control frames into the write buffer.
// Settings acknowledgements that change the HPACK table size take effect on
// our encoder here, so header blocks written after the acknowledgement use
// the new size.
func (c *conn) writePendingLocked() {
	if !c.pending.Load() {
		return
	}
	c.pmu.Lock()
	c.ctrl = append(c.ctrl[:0], c.pbuf.Bytes()...)
	c.pbuf.Reset()
	for _, v := range c.tableSizes {
		c.henc.SetMaxDynamicTableSizeLimit(v)
	}
	c.tableSizes = c.tableSizes[:0]
	c.pending.Store(false)
	c.pmu.Unlock()
	if c.werr == nil {
		c.writePrefaceLocked()
		c.bw.Write(c.ctrl)
	}
	if cap(c.ctrl) > 64<<10 {
		c.ctrl = nil
	}
}

// errTooManyControl ends a connection whose peer makes us queue too many
// control frames.
var errTooManyControl = connError{http2.ErrCodeEnhanceYourCalm, "too many queued control frames"}

// queueControl appends one control frame to the queue with write.
func (c *conn) queueControl(write func(fr *http2.Framer) error) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.pbuf.Len() > maxPendingControl {
		return errTooManyControl
	}
	if err := write(c.pfr); err != nil {
		return err
	}
	c.pending.Store(true)
	return nil
}

func (c *conn) queueWindowUpdate(id, n uint32) error {
	return c.queueControl(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, n) })
}

func (c *conn) queueRSTStream(id uint32, code http2.ErrCode) error {
	return c.queueControl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

func (c *conn) queuePingAck(data [8]byte) error {
	return c.queueControl(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
}

func (c *conn) queueSettingsAck(tableSizes []uint32) error {
	return c.queueControl(func(fr *http2.Framer) error {
		// Called with pmu held.
		c.tableSizes = append(c.tableSizes, tableSizes...)
		return fr.WriteSettingsAck()
	})
}

// reserve waits until the stream may send DATA and takes up to want bytes
// from both the connection and the stream send windows. It returns false if
// the stream was reset or the connection closed meanwhile.
func (c *conn) reserve(s *stream, want int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed || s.state.Load() != streamOpen {
			return 0, false
		}
		if n := min(int64(want), c.sendWindow, s.sendWindow); n > 0 {
			c.sendWindow -= n
			s.sendWindow -= n
			return int(n), true
		}
		c.cond.Wait()
	}
}

// unreserve returns connection window taken by reserve but not used, because
// the stream was reset in between.
func (c *conn) unreserve(n int) {
	c.mu.Lock()
	c.sendWindow += int64(n)
	c.cond.Broadcast()
	c.mu.Unlock()
}
