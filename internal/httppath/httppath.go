// Package httppath is the one request-path normaliser of sekisho: the proxy
// matches routes on its result and forwards it upstream, and the
// authorization service matches its rules on the same path, so a route and a
// rule can never see two different paths for one request. It imports only
// the standard library, so the data plane and the services each depend on it
// and not on one another.
package httppath

import (
	"errors"
	"strings"
)

// Errors Normalize returns; each is answered 400.
var (
	ErrEscapedSlash = errors.New("path contains an escaped slash (%2F or %5C)")
	ErrBadEscape    = errors.New("path contains an invalid percent-encoding")
	ErrFragment     = errors.New("path contains a fragment ('#')")
	ErrNotAbsolute  = errors.New("path does not start with '/'")
	ErrControl      = errors.New("path contains a control character or space")
)

// Normalize turns a raw request path (without the query) into the path
// routes are matched on and that is forwarded upstream, as the connection
// manager's normalize_path, merge_slashes and path_with_escaped_slashes_action
// REJECT_REQUEST say:
//
//   - a path with %2F or %5C (either case) is refused (ErrEscapedSlash);
//   - a '#' (fragment) is refused: a client never sends one, and a backend
//     might cut the path there;
//   - percent-encodings of unreserved characters (ALPHA, DIGIT, '-', '.', '_',
//     '~') are decoded; the hex digits of the other encodings are upper-cased;
//   - '\' becomes '/';
//   - dot segments are removed (RFC 3986 section 5.2.4) and runs of '/' are
//     merged into one;
//   - ';' is kept in the path that is matched, and forwarded as "%3B", so a
//     backend that would read "/a;x/b" as "/a/b" with a parameter sees the same
//     segments ("a;x", "b") the route table matched.
//
// A path that needs none of this is returned as it is, without allocating.
func Normalize(p string) (string, error) {
	if len(p) == 0 || p[0] != '/' {
		return "", ErrNotAbsolute
	}
	clean := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%', c == '\\', c == ';', c == '#':
			clean = false
		case c <= ' ' || c == 0x7f:
			return "", ErrControl
		case c == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.'):
			clean = false
		}
	}
	if clean {
		return p, nil
	}
	return normalizeSlow(p)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

const upperHex = "0123456789ABCDEF"

func normalizeSlow(p string) (string, error) {
	// Pass 1: escapes and separators.
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '#':
			return "", ErrFragment
		case '\\':
			b.WriteByte('/')
		case '%':
			if i+2 >= len(p) {
				return "", ErrBadEscape
			}
			h, ok1 := unhex(p[i+1])
			l, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", ErrBadEscape
			}
			v := h<<4 | l
			if v == '/' || v == '\\' {
				return "", ErrEscapedSlash
			}
			if unreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex[v>>4])
				b.WriteByte(upperHex[v&15])
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()

	// Pass 2: segments. Empty segments (runs of '/') are merged; "." is
	// dropped; ".." drops the segment before it (never above the root). A
	// trailing "." or ".." leaves a trailing '/'.
	out := make([]byte, 0, len(s))
	segs := make([]int, 0, 8) // start offsets in out of each kept segment's '/'
	i := 0
	for i < len(s) {
		// s[i] == '/'
		j := i + 1
		for j < len(s) && s[j] != '/' {
			j++
		}
		seg := s[i+1 : j]
		last := j >= len(s)
		switch seg {
		case "":
			if last {
				out = append(out, '/')
			}
		case ".":
			if last {
				out = append(out, '/')
			}
		case "..":
			if n := len(segs); n > 0 {
				out = out[:segs[n-1]]
				segs = segs[:n-1]
			}
			if last {
				out = append(out, '/')
			}
		default:
			segs = append(segs, len(out))
			out = append(out, '/')
			out = append(out, seg...)
		}
		i = j
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return string(out), nil
}

// Forward is the path sent upstream for a normalised path: ';' is
// percent-encoded (see Normalize).
func Forward(p string) string {
	if strings.IndexByte(p, ';') < 0 {
		return p
	}
	return strings.ReplaceAll(p, ";", "%3B")
}
