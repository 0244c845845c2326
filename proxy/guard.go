package proxy

import (
	"bytes"
	"net"

	"github.com/sekisho/sekisho/proxy/h1"
)

// guardConn checks the framing of HTTP/1.x requests before net/http's server
// reads them, and turns every request that could be read two ways by two
// parsers into a 400 that never reaches a backend:
//
//   - Content-Length and Transfer-Encoding both present;
//   - more than one Content-Length line (even with equal values), or a value
//     that is not a decimal number;
//   - Transfer-Encoding in an HTTP/1.0 request;
//   - obs-fold (a header line that starts with a space or a tab);
//   - a header block larger than the connection manager's limit.
//
// net/http on its own accepts the first (dropping Content-Length), equal
// duplicate Content-Lengths, obs-fold (joining the lines) and ignores
// Transfer-Encoding in HTTP/1.0. The guard follows message boundaries
// (Content-Length and chunked bodies) so it sees every header block of a
// keep-alive connection. It steps aside for HTTP/2 (the prior-knowledge
// preface) and after a request that asks for an Upgrade or CONNECT, whose
// connection then carries other bytes.
//
// A refused request is replaced by a request line net/http itself answers
// with 400 Bad Request and closes the connection.
type guardConn struct {
	net.Conn
	maxHeader int
	isTLS     bool
	sni       string

	in       []byte // read from the connection, not yet released
	released int    // in[:released] may be handed to the reader
	scanned  int    // head search resumes here
	state    int
	remain   int64 // body or chunk bytes left
	mode     int
	pendBad  []byte
}

const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stTrailer
)

const (
	modeGuard = iota
	modePass
	modeBad
)

// badRequestLine makes net/http answer 400 and close. It is longer than the
// HTTP/2 preface net/http peeks for, so it is parsed at once.
var badRequestLine = []byte("REFUSED-BY-SEKISHO-REQUEST-GUARD\r\n\r\n")

func newGuardConn(c net.Conn, maxHeader int) *guardConn {
	return &guardConn{Conn: c, maxHeader: maxHeader}
}

func (g *guardConn) Read(p []byte) (int, error) {
	for {
		if len(g.pendBad) > 0 {
			n := copy(p, g.pendBad)
			g.pendBad = g.pendBad[n:]
			return n, nil
		}
		if g.mode == modeBad {
			// Nothing more is handed over; the connection still behaves
			// as one (net/http's background read waits on it until it
			// closes the connection after the 400).
			var scratch [512]byte
			if _, err := g.Conn.Read(scratch[:]); err != nil {
				return 0, err
			}
			continue
		}
		if g.released > 0 {
			n := copy(p, g.in[:g.released])
			g.consume(n)
			return n, nil
		}
		if g.mode == modePass {
			if len(g.in) > 0 {
				n := copy(p, g.in)
				g.consume(n)
				return n, nil
			}
			return g.Conn.Read(p)
		}
		// Body bytes with nothing buffered: read straight into p.
		if len(g.in) == 0 && (g.state == stBody || g.state == stChunkData) && g.remain > 0 {
			q := p
			if int64(len(q)) > g.remain {
				q = q[:g.remain]
			}
			n, err := g.Conn.Read(q)
			g.remain -= int64(n)
			if g.remain == 0 {
				if g.state == stBody {
					g.state = stHead
				} else {
					g.state = stChunkSize
				}
			}
			return n, err
		}
		if g.process() {
			continue
		}
		// Need more bytes.
		if cap(g.in)-len(g.in) < 2048 {
			size := 2 * cap(g.in)
			if size < 4096 {
				size = 4096
			}
			nb := make([]byte, len(g.in), size)
			copy(nb, g.in)
			g.in = nb
		}
		n, err := g.Conn.Read(g.in[len(g.in):cap(g.in)])
		g.in = g.in[:len(g.in)+n]
		if n == 0 && err != nil {
			if len(g.in) > 0 {
				// An unfinished message: hand it over as it is; net/http
				// reports it.
				g.mode = modePass
				continue
			}
			return 0, err
		}
	}
}

func (g *guardConn) consume(n int) {
	g.in = g.in[n:]
	if g.released >= n {
		g.released -= n
	} else {
		g.released = 0
	}
	g.scanned -= n
	if g.scanned < 0 {
		g.scanned = 0
	}
	if len(g.in) == 0 {
		g.in = g.in[:0:cap(g.in)]
	}
}

// process advances the state machine over the unreleased bytes; it reports
// whether it released anything (or changed mode).
func (g *guardConn) process() bool {
	progressed := false
	for g.mode == modeGuard {
		buf := g.in[g.released:]
		if len(buf) == 0 {
			return progressed
		}
		switch g.state {
		case stHead:
			// Skip the empty lines allowed before a request line.
			end := headEnd(buf, g.scanned-g.released)
			if end < 0 {
				if len(buf) > g.maxHeader {
					g.refuse()
					return true
				}
				g.scanned = max(g.released, len(g.in)-3)
				return progressed
			}
			if end > g.maxHeader {
				g.refuse()
				return true
			}
			if !g.checkHead(buf[:end]) {
				g.refuse()
				return true
			}
			g.released += end
			g.scanned = g.released
			progressed = true
		case stBody, stChunkData:
			n := int64(len(buf))
			if n > g.remain {
				n = g.remain
			}
			g.released += int(n)
			g.remain -= n
			if g.remain == 0 {
				if g.state == stBody {
					g.state = stHead
				} else {
					g.state = stChunkSize
				}
			}
			progressed = true
		case stChunkSize:
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				if len(buf) > 4096 {
					g.mode = modePass
					return true
				}
				return progressed
			}
			line := bytes.TrimRight(buf[:i], "\r")
			if len(line) == 0 {
				// The CRLF that ends a chunk's data.
				g.released += i + 1
				progressed = true
				continue
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			size, ok := h1.ParseHex(bytes.TrimSpace(line))
			if !ok {
				g.mode = modePass // net/http refuses it
				return true
			}
			g.released += i + 1
			progressed = true
			if size == 0 {
				g.state = stTrailer
			} else {
				g.state = stChunkData
				g.remain = size
			}
		case stTrailer:
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				if len(buf) > g.maxHeader {
					g.mode = modePass
					return true
				}
				return progressed
			}
			line := bytes.TrimRight(buf[:i], "\r")
			g.released += i + 1
			progressed = true
			if len(line) == 0 {
				g.state = stHead
			}
		}
	}
	return true
}

func (g *guardConn) refuse() {
	g.mode = modeBad
	// What was released before the refused block still goes first.
	g.pendBad = append(append([]byte(nil), g.in[:g.released]...), badRequestLine...)
	g.in = nil
	g.released = 0
}

// headEnd returns the length of the header block at the start of b (through
// its empty line), or -1 when it is not complete. from is where to resume.
func headEnd(b []byte, from int) int {
	if from < 0 {
		from = 0
	}
	// Leading empty lines before the request line belong to the block.
	start := 0
	for start < len(b) && (b[start] == '\r' || b[start] == '\n') {
		start++
	}
	if from < start {
		from = start
	}
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// checkHead validates one header block and sets the body state. It returns
// false when the request must be refused.
func (g *guardConn) checkHead(h []byte) bool {
	for len(h) > 0 && (h[0] == '\r' || h[0] == '\n') {
		h = h[1:]
	}
	line, rest, _ := bytes.Cut(h, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if bytes.Equal(line, []byte("PRI * HTTP/2.0")) {
		g.mode = modePass
		return true
	}
	http10 := bytes.HasSuffix(line, []byte(" HTTP/1.0"))
	connect := bytes.HasPrefix(line, []byte("CONNECT "))
	clCount := 0
	var cl int64
	te := false
	chunked := false
	upgrade := false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			return false // obs-fold
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue // net/http refuses it
		}
		value = bytes.TrimSpace(value)
		switch {
		case h1.EqualFold(name, "content-length"):
			clCount++
			n, ok := h1.ParseUint(value)
			if !ok {
				return false
			}
			cl = n
		case h1.EqualFold(name, "transfer-encoding"):
			te = true
			chunked = lastTokenChunked(value)
		case h1.EqualFold(name, "upgrade"):
			upgrade = true
		}
	}
	if clCount > 1 || (te && clCount > 0) || (te && http10) {
		return false
	}
	switch {
	case upgrade || connect:
		// The connection may carry other bytes after this request.
		g.mode = modePass
	case te && chunked:
		g.state = stChunkSize
	case te:
		g.mode = modePass // net/http answers 501 and closes
	case cl > 0:
		g.state = stBody
		g.remain = cl
	}
	return true
}

func lastTokenChunked(v []byte) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return h1.EqualFold(bytes.TrimSpace(v), "chunked")
}
