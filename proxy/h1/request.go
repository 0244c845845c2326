package h1

// RequestHead is a parsed request head: offsets into the head it was parsed
// from, and what the framing and connection handling need. It is reused from
// one request to the next (Fields keeps its capacity).
type RequestHead struct {
	MethodStart, MethodEnd int
	TargetStart, TargetEnd int
	Minor                  int // HTTP/1.Minor
	Fields                 []Field

	// ContentLength is the body length; -1 for a chunked body. A request
	// with neither header has no body (0).
	ContentLength int64
	Chunked       bool
	Host          int // index in Fields of the Host line; -1: none
	Close         bool
	KeepAlive     bool // "Connection: keep-alive" (HTTP/1.0)
	Upgrade       bool // "Connection: upgrade" and an Upgrade line
	hasUpgradeHdr bool
	Expect100     bool
}

// Method returns the method's bytes in head.
func (h *RequestHead) Method(head []byte) []byte { return head[h.MethodStart:h.MethodEnd] }

// Target returns the request target's bytes in head.
func (h *RequestHead) Target(head []byte) []byte { return head[h.TargetStart:h.TargetEnd] }

// Name returns the name of field i.
func (h *RequestHead) Name(head []byte, i int) []byte {
	f := &h.Fields[i]
	return head[f.NameStart:f.NameEnd]
}

// Value returns the value of field i.
func (h *RequestHead) Value(head []byte, i int) []byte {
	f := &h.Fields[i]
	return head[f.ValueStart:f.ValueEnd]
}

// ParseRequest parses a whole request head (as HeadEnd delimits it) into h.
// It returns an *Error for a request to refuse.
func ParseRequest(head []byte, h *RequestHead) error {
	h.Fields = h.Fields[:0]
	h.ContentLength = 0
	h.Chunked, h.Close, h.KeepAlive, h.Upgrade, h.hasUpgradeHdr, h.Expect100 = false, false, false, false, false, false
	h.Host = -1

	i := 0
	for i < len(head) && (head[i] == '\r' || head[i] == '\n') {
		if head[i] == '\r' && (i+1 >= len(head) || head[i+1] != '\n') {
			return errBareCR
		}
		i++
	}
	ls, le, next, err := nextLine(head, i)
	if err != nil {
		return err
	}
	if err := h.parseRequestLine(head, ls, le); err != nil {
		return err
	}
	i = next

	clSeen, teSeen, connUpgrade := false, false, false
	for {
		ls, le, next, err := nextLine(head, i)
		if err != nil {
			return err
		}
		i = next
		if ls == le {
			break
		}
		if head[ls] == ' ' || head[ls] == '\t' {
			return errObsFold
		}
		f, err := parseField(head, ls, le)
		if err != nil {
			return err
		}
		h.Fields = append(h.Fields, f)
		name := head[f.NameStart:f.NameEnd]
		value := head[f.ValueStart:f.ValueEnd]
		switch len(name) {
		case 4:
			if EqualFold(name, "host") {
				if h.Host >= 0 {
					return errDupHost
				}
				if !validHost(value) {
					return errHost
				}
				h.Host = len(h.Fields) - 1
			}
		case 6:
			if EqualFold(name, "expect") && EqualFold(value, "100-continue") {
				h.Expect100 = true
			}
		case 7:
			if EqualFold(name, "upgrade") {
				h.hasUpgradeHdr = true
			}
		case 10:
			if EqualFold(name, "connection") {
				forTokens(value, func(tok []byte) {
					switch {
					case EqualFold(tok, "close"):
						h.Close = true
					case EqualFold(tok, "keep-alive"):
						h.KeepAlive = true
					case EqualFold(tok, "upgrade"):
						connUpgrade = true
					}
				})
			}
		case 14:
			if EqualFold(name, "content-length") {
				if clSeen {
					return errDupContentLength
				}
				clSeen = true
				n, ok := ParseUint(value)
				if !ok {
					return errContentLength
				}
				h.ContentLength = n
			}
		case 17:
			if EqualFold(name, "transfer-encoding") {
				if teSeen {
					return errDupTE
				}
				teSeen = true
				if !EqualFold(value, "chunked") {
					if len(value) == 0 {
						return bad("empty Transfer-Encoding")
					}
					return errTEUnsupported
				}
			}
		}
	}
	if i != len(head) {
		return errRequestLine
	}
	if teSeen {
		if clSeen {
			return errCLAndTE
		}
		if h.Minor == 0 {
			return errTE10
		}
		h.Chunked = true
		h.ContentLength = -1
	}
	if h.Host < 0 && h.Minor == 1 {
		return errNoHost
	}
	h.Upgrade = connUpgrade && h.hasUpgradeHdr
	return nil
}

func (h *RequestHead) parseRequestLine(b []byte, s, e int) error {
	line := b[s:e]
	sp := indexByte(line, ' ')
	if sp <= 0 {
		return errRequestLine
	}
	for _, c := range line[:sp] {
		if !tchar[c] {
			return errMethod
		}
	}
	h.MethodStart, h.MethodEnd = s, s+sp
	rest := line[sp+1:]
	sp2 := indexByte(rest, ' ')
	if sp2 <= 0 {
		return errRequestLine
	}
	for _, c := range rest[:sp2] {
		if c <= ' ' || c == 0x7f {
			return errTarget
		}
	}
	h.TargetStart = s + sp + 1
	h.TargetEnd = h.TargetStart + sp2
	v := rest[sp2+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return errVersion
	}
	if v[5] != '1' || v[7] > '1' {
		return ErrVersionUnsupported
	}
	h.Minor = int(v[7] - '0')
	return nil
}

// parseField splits a header line: a token name, a colon right after it, a
// value of visible bytes, spaces and tabs (and obs-text) without its
// surrounding whitespace.
func parseField(b []byte, s, e int) (Field, error) {
	c := s
	for c < e && b[c] != ':' {
		if !tchar[b[c]] {
			return Field{}, errFieldName
		}
		c++
	}
	if c == s || c == e {
		return Field{}, errFieldName
	}
	vs, ve := c+1, e
	for vs < ve && (b[vs] == ' ' || b[vs] == '\t') {
		vs++
	}
	for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
		ve--
	}
	for _, x := range b[vs:ve] {
		if ctl[x] {
			return Field{}, errFieldValue
		}
	}
	return Field{NameStart: s, NameEnd: c, ValueStart: vs, ValueEnd: ve}, nil
}

// ctl marks the bytes a field value must not hold: control bytes but tab.
var ctl = func() (t [256]bool) {
	for c := 0; c < ' '; c++ {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return
}()

// validHost accepts the bytes of a host[:port] or an IP literal.
func validHost(v []byte) bool {
	for _, c := range v {
		if c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}' || c == '|' || c == '^' {
			return false
		}
	}
	return true
}

// forTokens calls f with each comma-separated token of v, trimmed.
func forTokens(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := indexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
			tok = tok[1:]
		}
		for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
			tok = tok[:len(tok)-1]
		}
		if len(tok) > 0 {
			f(tok)
		}
	}
}

// HasToken reports whether the comma-separated list v holds token (ASCII
// case-insensitive).
func HasToken(v []byte, token string) bool {
	found := false
	forTokens(v, func(t []byte) {
		if EqualFold(t, token) {
			found = true
		}
	})
	return found
}

// ParseUint parses a non-empty decimal number of at most 18 digits.
func ParseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// EqualFold compares b with the lower-case ASCII s, ignoring ASCII case.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
