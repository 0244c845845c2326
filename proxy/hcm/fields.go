package hcm

import (
	"strings"
	"unicode"

	"github.com/sekisho/sekisho/proxy/h1"
)

// Header fields as the HTTP/1.1 parsers leave them: names and values as
// offsets into a message head, a string for a request (h1Conn.line) or the
// bytes of an upstream response. The fast path edits and writes them as
// they are, with the same outcome as the http.Header code it stands in for
// (removeHop and the edits of forward, respWriter.WriteHeader).

// foldEqual reports whether name equals the lower-case ASCII s, ignoring
// ASCII case.
func foldEqual[T ~string | ~[]byte](name T, s string) bool {
	if len(name) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// sameName reports whether two header names are equal but for ASCII case
// (as their canonical keys are, for names that are tokens).
func sameName[T ~string | ~[]byte](a, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isHopName reports whether name is one of hopHeaders, in any case.
func isHopName[T ~string | ~[]byte](name T) bool {
	switch len(name) {
	case 2:
		return foldEqual(name, "te")
	case 7:
		return foldEqual(name, "trailer") || foldEqual(name, "upgrade")
	case 10:
		return foldEqual(name, "connection") || foldEqual(name, "keep-alive")
	case 16:
		return foldEqual(name, "proxy-connection")
	case 17:
		return foldEqual(name, "transfer-encoding")
	case 18:
		return foldEqual(name, "proxy-authenticate")
	case 19:
		return foldEqual(name, "proxy-authorization")
	}
	return false
}

// trimToken trims a list element as strings.TrimSpace does.
func trimToken[T ~string | ~[]byte](t T) T {
	for len(t) > 0 && (t[0] == ' ' || t[0] == '\t') {
		t = t[1:]
	}
	for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
		t = t[:len(t)-1]
	}
	if len(t) > 0 && (t[0] >= 0x80 || t[len(t)-1] >= 0x80) {
		// Unicode white space (a value may hold UTF-8).
		s := string(t)
		l := len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
		r := len(strings.TrimRightFunc(s, unicode.IsSpace))
		if l >= r {
			return t[:0]
		}
		return t[l:r]
	}
	return t
}

// namedByConnection reports whether one of the Connection fields among
// fields lists name, which makes that field hop-by-hop too.
func namedByConnection[T ~string | ~[]byte](head T, fields []h1.Field, name T) bool {
	for i := range fields {
		f := &fields[i]
		if !foldEqual(head[f.NameStart:f.NameEnd], "connection") {
			continue
		}
		v := head[f.ValueStart:f.ValueEnd]
		for len(v) > 0 {
			tok := v
			v = v[:0]
			for j := 0; j < len(tok); j++ {
				if tok[j] == ',' {
					tok, v = tok[:j], tok[j+1:]
					break
				}
			}
			if tok = trimToken(tok); len(tok) > 0 && sameName(tok, name) {
				return true
			}
		}
	}
	return false
}

// hasConnection reports whether fields holds a Connection field.
func hasConnection[T ~string | ~[]byte](head T, fields []h1.Field) bool {
	for i := range fields {
		f := &fields[i]
		if foldEqual(head[f.NameStart:f.NameEnd], "connection") {
			return true
		}
	}
	return false
}

// appendField appends the line "Name: value\r\n", the name in its
// canonical form.
func appendField[T ~string | ~[]byte](b []byte, name, value T) []byte {
	b = h1.AppendCanonicalKey(b, name)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}
