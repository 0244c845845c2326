package unarygrpc

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Stream states, kept in stream.state. A stream is open until either its
// answer is committed (answered) or it is reset by either side (reset).
// Writers commit with a compare-and-swap under the write lock, and the reader
// resets with a compare-and-swap before queueing RST_STREAM, so an answer and
// a reset never both go out in the wrong order.
const (
	streamOpen int32 = iota
	streamAnswered
	streamReset
)

// stream is one call on a connection.
type stream struct {
	id      uint32
	method  string
	handler Handler
	state   atomic.Int32

	// Owned by the reader goroutine.
	buf           []byte // request bytes received so far, gRPC prefix included
	recvWindow    int64  // bytes the client may still send on this stream
	recvUnacked   int64  // bytes consumed but not yet returned with WINDOW_UPDATE
	remoteClosed  bool   // the client ended its half of the stream
	contentLength int64  // from the content-length header, or -1
	hasTimeout    bool
	timeout       time.Duration
	start         time.Time // arrival of the headers, when hasTimeout
	dispatched    bool      // the handler goroutine has been started
	cancel        context.CancelFunc

	// sendWindow is the stream's send window, guarded by conn.mu.
	sendWindow int64
}

// gRPC status codes used by the transport itself (google.golang.org/grpc/codes).
const (
	codeOK                = 0
	codeUnknown           = 2
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
)

// earlyAnswer is a trailers-only answer the reader sends without running a
// handler.
type earlyAnswer struct {
	httpStatus     int // 0 means 200
	code           uint32
	msg            string
	acceptEncoding bool // add grpc-accept-encoding: identity
}

// request holds what the reader needs from a request's header block.
type request struct {
	path          string
	timeout       time.Duration
	hasTimeout    bool
	contentLength int64

	// malformed, if set, makes the request an HTTP/2 protocol error: the
	// stream is reset with PROTOCOL_ERROR (RFC 9113 8.1.1).
	malformed string
	// reject, if set, is answered without calling a handler.
	reject *earlyAnswer
}

// parseRequest validates a request header block as RFC 9113 and the gRPC
// protocol require, in the order grpc-go checks them.
func parseRequest(f *http2.MetaHeadersFrame) request {
	r := request{contentLength: -1}
	if f.Truncated {
		r.reject = &earlyAnswer{code: codeResourceExhausted, msg: "header list too large"}
		return r
	}
	if f.HasPriority() && f.Priority.StreamDep == f.StreamID {
		r.malformed = "stream depends on itself"
		return r
	}
	var method, scheme, contentType, encoding, timeout string
	var sawTimeout bool
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":path":
			r.path = hf.Value
		case ":protocol":
			// Extended CONNECT is not enabled (RFC 8441 section 3).
			r.malformed = ":protocol pseudo-header"
			return r
		case "content-type":
			contentType = hf.Value
		case "grpc-encoding":
			encoding = hf.Value
		case "grpc-timeout":
			timeout, sawTimeout = hf.Value, true
		case "te":
			if hf.Value != "trailers" {
				r.malformed = "te header other than trailers"
				return r
			}
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			r.malformed = "connection-specific header " + hf.Name
			return r
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || (r.contentLength >= 0 && int64(n) != r.contentLength) {
				r.malformed = "invalid content-length"
				return r
			}
			r.contentLength = int64(n)
		}
	}
	if method == "" {
		r.malformed = "missing :method"
		return r
	}
	if method != "POST" {
		r.reject = &earlyAnswer{httpStatus: 405, code: codeInternal, msg: "invalid gRPC request method " + strconv.Quote(method)}
		return r
	}
	if scheme == "" || r.path == "" {
		r.malformed = "missing :scheme or :path"
		return r
	}
	if !isGRPCContentType(contentType) {
		r.reject = &earlyAnswer{httpStatus: 415, code: codeInternal, msg: "invalid gRPC request content-type " + strconv.Quote(contentType)}
		return r
	}
	if encoding != "" && encoding != "identity" {
		r.reject = &earlyAnswer{code: codeUnimplemented, acceptEncoding: true,
			msg: "grpc: decompressor is not installed for grpc-encoding " + strconv.Quote(encoding)}
		return r
	}
	if sawTimeout {
		d, ok := parseTimeout(timeout)
		if !ok {
			r.reject = &earlyAnswer{code: codeInternal, msg: "malformed grpc-timeout " + strconv.Quote(timeout)}
			return r
		}
		r.timeout, r.hasTimeout = d, true
	}
	return r
}

// isGRPCContentType reports whether v is application/grpc, optionally with a
// "+subtype" or ";parameters" suffix.
func isGRPCContentType(v string) bool {
	rest, ok := strings.CutPrefix(v, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// parseTimeout parses a grpc-timeout value: at most 8 ASCII digits followed
// by a unit (H, M, S, m, u or n). Values too large for a time.Duration are
// clamped.
func parseTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for _, ch := range []byte(v[:len(v)-1]) {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// msgLen returns the length announced by a gRPC message prefix; b must hold
// at least 5 bytes.
func msgLen(b []byte) uint64 {
	return uint64(binary.BigEndian.Uint32(b[1:5]))
}

// checkMessage reports what is wrong with a complete request body, which must
// be exactly one uncompressed length-prefixed message, or "" if nothing is.
func checkMessage(b []byte) string {
	switch {
	case len(b) == 0:
		return "grpc: request ended without a message"
	case len(b) < 5:
		return "grpc: request ended inside a message prefix"
	case b[0] == 1:
		return "grpc: compressed flag set on a request without grpc-encoding"
	case b[0] != 0:
		return "grpc: invalid message flags"
	case msgLen(b) > uint64(len(b)-5):
		return "grpc: request ended inside a message"
	case msgLen(b) < uint64(len(b)-5):
		return "grpc: unary request carries more than one message"
	}
	return ""
}

// encodeGRPCMessage percent-encodes a status message as the gRPC protocol
// requires: bytes outside printable ASCII, and '%' itself, become %XX.
func encodeGRPCMessage(msg string) string {
	i := 0
	for i < len(msg) && !needsPercent(msg[i]) {
		i++
	}
	if i == len(msg) {
		return msg
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(msg) + 16)
	b.WriteString(msg[:i])
	for ; i < len(msg); i++ {
		ch := msg[i]
		if needsPercent(ch) {
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&0xf])
		} else {
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func needsPercent(ch byte) bool { return ch < 0x20 || ch > 0x7e || ch == '%' }
