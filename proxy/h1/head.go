// Package h1 holds sekisho's HTTP/1.1 wire code for the proxy's fast path:
// strict request and response head parsers that record offsets into the head
// (they allocate nothing), the reading of a whole head from a bufio.Reader,
// chunked bodies, and header-name interning.
//
// The request parser is the proxy's framing guard: anything that two HTTP
// parsers could read two ways (Content-Length with Transfer-Encoding, several
// Content-Length lines, obs-fold, a space before the colon, a bare CR,
// control bytes in a name or value, Transfer-Encoding in HTTP/1.0, several
// Host lines) is refused, so that no such request reaches a backend.
package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Field is one header line: name and value as offsets into the head (the
// value without its surrounding whitespace).
type Field struct {
	NameStart, NameEnd   int
	ValueStart, ValueEnd int
}

// Error is a request the proxy refuses, with the status it answers.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func bad(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// Errors of the request parser (shared values: parsing allocates nothing).
var (
	ErrHeadTooLarge       = &Error{Status: 431, Reason: "request header block too large"}
	errRequestLine        = bad("malformed request line")
	errMethod             = bad("malformed method")
	errTarget             = bad("malformed request target")
	errVersion            = bad("malformed HTTP version")
	ErrVersionUnsupported = &Error{Status: 505, Reason: "HTTP version not supported"}
	errObsFold            = bad("obs-fold in header block")
	errFieldName          = bad("malformed header name")
	errFieldValue         = bad("malformed header value")
	errBareCR             = bad("bare CR in header block")
	errContentLength      = bad("malformed Content-Length")
	errDupContentLength   = bad("more than one Content-Length")
	errCLAndTE            = bad("Content-Length and Transfer-Encoding")
	errTE10               = bad("Transfer-Encoding in HTTP/1.0")
	errDupTE              = bad("more than one Transfer-Encoding")
	errTEUnsupported      = &Error{Status: 501, Reason: "unsupported Transfer-Encoding"}
	errNoHost             = bad("missing Host header")
	errDupHost            = bad("more than one Host header")
	errHost               = bad("malformed Host header")
)

// Errors of the response parser.
var (
	ErrMalformedResponse = errors.New("malformed HTTP response head")
)

// tchar marks the bytes of a token (RFC 9110 section 5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

// HeadEnd returns the length of the head at the start of b (through the empty
// line that ends it; lines end in CRLF or LF), or -1 when b holds no whole
// head yet. Empty lines before the first line belong to the head.
func HeadEnd(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	for i < len(b) {
		j := indexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// nextLine returns the line at b[i:] without its line ending, and the index
// after the ending. A line must end in LF (optionally CRLF); a CR anywhere
// else is an error.
func nextLine(b []byte, i int) (start, end, next int, err error) {
	j := indexByte(b[i:], '\n')
	if j < 0 {
		if indexByte(b[i:], '\r') >= 0 {
			return 0, 0, 0, errBareCR
		}
		return 0, 0, 0, errRequestLine
	}
	end = i + j
	if k := indexByte(b[i:end], '\r'); k >= 0 {
		if i+k != end-1 {
			return 0, 0, 0, errBareCR
		}
		end--
	}
	return i, end, i + j + 1, nil
}

// ReadHead reads one whole head from br without consuming it and returns it:
// a slice of br's buffer (inBuf; the caller discards len(head) bytes once done
// with it) or, for a head larger than br's buffer, of *scratch (already
// consumed from br). max bounds the head; ErrHeadTooLarge when it is over.
// got reports whether any byte was read (an error with no byte read is a
// connection closed or idle, not a malformed message).
func ReadHead(br *bufio.Reader, max int, scratch *[]byte) (head []byte, inBuf, got bool, err error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if n := HeadEnd(b); n >= 0 {
			if n > max {
				return nil, false, true, ErrHeadTooLarge
			}
			return b[:n], true, true, nil
		}
		if len(b) > max {
			return nil, false, true, ErrHeadTooLarge
		}
		if len(b) == br.Size() {
			break
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, false, len(b) > 0 || br.Buffered() > 0, err
		}
	}
	// A head larger than the buffer: gather it in scratch line by line, so
	// nothing after the head is consumed.
	s := (*scratch)[:0]
	lineStart := 0
	seen := false // a non-empty line
	for {
		piece, err := br.ReadSlice('\n')
		s = append(s, piece...)
		if len(s) > max {
			*scratch = s[:0]
			return nil, false, true, ErrHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			*scratch = s[:0]
			return nil, false, true, err
		}
		line := s[lineStart:]
		lineStart = len(s)
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			if seen {
				*scratch = s
				return s, false, true, nil
			}
			continue
		}
		seen = true
	}
}

// ErrUnexpectedEOF is returned for a body cut short.
var ErrUnexpectedEOF = io.ErrUnexpectedEOF
