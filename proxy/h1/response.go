package h1

import (
	"bufio"
	"errors"
	"io"
	"net/textproto"
)

// ResponseHead is a parsed response head, reused from one response to the
// next.
type ResponseHead struct {
	Minor  int
	Status int
	Fields []Field

	// ContentLength is the body length, or -1 when the head gives none
	// (chunked or delimited by the connection's close).
	ContentLength int64
	Chunked       bool
	// Close: the connection cannot carry another request after this one
	// ("Connection: close", or HTTP/1.0 without "Connection: keep-alive").
	Close bool
}

// Name returns the name of field i.
func (h *ResponseHead) Name(head []byte, i int) []byte {
	f := &h.Fields[i]
	return head[f.NameStart:f.NameEnd]
}

// Value returns the value of field i.
func (h *ResponseHead) Value(head []byte, i int) []byte {
	f := &h.Fields[i]
	return head[f.ValueStart:f.ValueEnd]
}

// ParseResponse parses a whole response head into h. Any error is
// ErrMalformedResponse (the proxy answers 502).
func ParseResponse(head []byte, h *ResponseHead) error {
	h.Fields = h.Fields[:0]
	h.ContentLength = -1
	h.Chunked, h.Close = false, false
	ls, le, i, err := nextLine(head, 0)
	if err != nil {
		return ErrMalformedResponse
	}
	line := head[ls:le]
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return ErrMalformedResponse
	}
	h.Minor = int(line[7] - '0')
	st := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrMalformedResponse
		}
		st = st*10 + int(c-'0')
	}
	if st < 100 || (len(line) > 12 && line[12] != ' ') {
		return ErrMalformedResponse
	}
	h.Status = st
	keepAlive := false
	clSeen, te := false, false
	for {
		ls, le, next, err := nextLine(head, i)
		if err != nil {
			return ErrMalformedResponse
		}
		i = next
		if ls == le {
			break
		}
		if head[ls] == ' ' || head[ls] == '\t' {
			return ErrMalformedResponse
		}
		f, err := parseField(head, ls, le)
		if err != nil {
			return ErrMalformedResponse
		}
		h.Fields = append(h.Fields, f)
		name := head[f.NameStart:f.NameEnd]
		value := head[f.ValueStart:f.ValueEnd]
		switch len(name) {
		case 10:
			if EqualFold(name, "connection") {
				if HasToken(value, "close") {
					h.Close = true
				}
				if HasToken(value, "keep-alive") {
					keepAlive = true
				}
			}
		case 14:
			if EqualFold(name, "content-length") {
				n, ok := ParseUint(value)
				if !ok || (clSeen && n != h.ContentLength) {
					return ErrMalformedResponse
				}
				clSeen = true
				h.ContentLength = n
			}
		case 17:
			if EqualFold(name, "transfer-encoding") {
				te = true
				// chunked must be the last coding; anything else is read
				// to the connection's close.
				h.Chunked = lastToken(value, "chunked")
			}
		}
	}
	if i != len(head) {
		return ErrMalformedResponse
	}
	if te {
		// Transfer-Encoding overrides Content-Length (RFC 9112 6.3); such
		// a connection is not reused.
		if clSeen {
			h.Close = true
		}
		h.ContentLength = -1
		if !h.Chunked {
			h.Close = true
		}
	}
	if h.Minor == 0 && !keepAlive {
		h.Close = true
	}
	return nil
}

func lastToken(v []byte, tok string) bool {
	last := v
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == ',' {
			last = v[i+1:]
			break
		}
	}
	for len(last) > 0 && (last[0] == ' ' || last[0] == '\t') {
		last = last[1:]
	}
	return EqualFold(last, tok)
}

// ChunkedReader reads a chunked body from a bufio.Reader, up to and including
// its trailer section; Trailer, when set, receives each trailer line.
type ChunkedReader struct {
	br      *bufio.Reader
	remain  int64
	state   int
	Trailer func(name, value []byte)
}

const (
	chSize = iota
	chData
	chDataEnd
	chDone
)

var errChunk = errors.New("malformed chunked encoding")

// Reset makes c read a new body from br.
func (c *ChunkedReader) Reset(br *bufio.Reader) {
	c.br, c.remain, c.state, c.Trailer = br, 0, chSize, nil
}

// Done reports whether the whole body, trailers included, has been read.
func (c *ChunkedReader) Done() bool { return c.state == chDone }

func (c *ChunkedReader) Read(p []byte) (int, error) {
	for {
		switch c.state {
		case chDone:
			return 0, io.EOF
		case chSize:
			line, err := c.line()
			if err != nil {
				return 0, err
			}
			if i := indexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
				line = line[:len(line)-1]
			}
			n, ok := ParseHex(line)
			if !ok {
				return 0, errChunk
			}
			if n == 0 {
				if err := c.trailers(); err != nil {
					return 0, err
				}
				c.state = chDone
				return 0, io.EOF
			}
			c.remain, c.state = n, chData
		case chData:
			if len(p) == 0 {
				return 0, nil
			}
			q := p
			if int64(len(q)) > c.remain {
				q = q[:c.remain]
			}
			n, err := c.br.Read(q)
			c.remain -= int64(n)
			if c.remain == 0 {
				c.state = chDataEnd
			}
			if n > 0 {
				return n, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		case chDataEnd:
			line, err := c.line()
			if err != nil {
				return 0, err
			}
			if len(line) != 0 {
				return 0, errChunk
			}
			c.state = chSize
		}
	}
}

// line reads one line (at most 4 KiB) without its CRLF.
func (c *ChunkedReader) line() ([]byte, error) {
	b, err := c.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		if err == bufio.ErrBufferFull {
			return nil, errChunk
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	for _, x := range b {
		if x == '\r' {
			return nil, errChunk
		}
	}
	return b, nil
}

func (c *ChunkedReader) trailers() error {
	for total := 0; ; {
		line, err := c.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		total += len(line)
		if total > 64<<10 {
			return errChunk
		}
		f, err := parseField(line, 0, len(line))
		if err != nil {
			return errChunk
		}
		if c.Trailer != nil {
			c.Trailer(line[f.NameStart:f.NameEnd], line[f.ValueStart:f.ValueEnd])
		}
	}
}

// ParseHex parses a non-empty hexadecimal number of at most 15 digits (a
// chunk size).
func ParseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, true
}

// AppendChunkHeader appends the size line of a chunk of n bytes.
func AppendChunkHeader(b []byte, n int) []byte {
	const hex = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = hex[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	b = append(b, tmp[i:]...)
	return append(b, '\r', '\n')
}

// common holds the canonical form of frequent header names, so that turning
// a name into a map key allocates nothing for them.
var common = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Access-Control-Allow-Origin", "Age", "Authorization", "Cache-Control", "Connection",
		"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Location", "Content-Range", "Content-Type", "Cookie", "Date", "Etag", "Expect",
		"Expires", "Forwarded", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
		"If-Range", "If-Unmodified-Since", "Keep-Alive", "Last-Modified", "Location", "Origin",
		"Pragma", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Range",
		"Referer", "Retry-After", "Sec-Websocket-Accept", "Sec-Websocket-Extensions",
		"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version", "Server",
		"Set-Cookie", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Vary",
		"Via", "Www-Authenticate", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Request-Id", "Grpc-Status", "Grpc-Message", "Grpc-Encoding",
		"Grpc-Accept-Encoding", "Grpc-Timeout",
	} {
		m[k] = k
	}
	return m
}()

// CanonicalKey returns the canonical MIME form of a header name (as
// net/textproto forms it); frequent names come without allocating.
func CanonicalKey[T ~string | ~[]byte](name T) string {
	if len(name) <= 64 {
		var buf [64]byte
		b := buf[:len(name)]
		upper := true
		for i := 0; i < len(name); i++ {
			c := name[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
			upper = c == '-'
		}
		if s, ok := common[string(b)]; ok {
			return s
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// AppendCanonicalKey appends CanonicalKey(name) to dst; name must be a valid
// header name (a token), as the parsers make sure.
func AppendCanonicalKey[T ~string | ~[]byte](dst []byte, name T) []byte {
	n := len(dst)
	dst = append(dst, name...)
	b := dst[n:]
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return dst
}
