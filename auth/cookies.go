package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// sealer encrypts cookie values with AES-256-GCM. The associated data
// binds a value to its purpose and cookie name, so that a login-state cookie
// cannot be presented as a session, nor one policy's session as another's
// (unless they share issuer, client and cookie name).
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: g}, nil
}

func (s *sealer) seal(plain []byte, ad string) string {
	n := s.aead.NonceSize()
	buf := make([]byte, n, n+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	buf = s.aead.Seal(buf, buf[:n], plain, []byte(ad))
	return base64.RawURLEncoding.EncodeToString(buf)
}

var errBadCookie = errors.New("cookie does not decrypt")

func (s *sealer) open(v, ad string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, errBadCookie
	}
	n := s.aead.NonceSize()
	if len(b) < n+s.aead.Overhead() {
		return nil, errBadCookie
	}
	out, err := s.aead.Open(nil, b[:n], b[n:], []byte(ad))
	if err != nil {
		return nil, errBadCookie
	}
	return out, nil
}

// Session cookies over chunkSize bytes are split into name, name.1, … .
const (
	chunkSize = 3800
	maxChunks = 10
)

// cookieAttrs are the attributes every cookie of a policy gets.
type cookieAttrs struct {
	secure   bool
	sameSite string // Lax, Strict or None
}

func (a cookieAttrs) String() string {
	var b strings.Builder
	b.WriteString("; Path=/; HttpOnly")
	if a.secure {
		b.WriteString("; Secure")
	}
	b.WriteString("; SameSite=")
	b.WriteString(a.sameSite)
	return b.String()
}

// attrsFor gives the cookie attributes for a request: Secure on https.
// SameSite=None needs Secure in browsers, so it falls back to Lax on plain
// http.
func attrsFor(r *request, sameSite string) cookieAttrs {
	a := cookieAttrs{secure: r.scheme == "https", sameSite: sameSite}
	if sameSite == "None" && !a.secure {
		a.sameSite = "Lax"
	}
	return a
}

func setCookie(name, value string, a cookieAttrs, maxAge int) string {
	s := name + "=" + value + a.String()
	if maxAge > 0 {
		s += "; Max-Age=" + strconv.Itoa(maxAge)
	}
	return s
}

func deleteCookie(name string, a cookieAttrs) string {
	return name + "=" + a.String() + "; Max-Age=0"
}

func chunkName(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "." + strconv.Itoa(i)
}

// readChunked joins a value written by chunkedCookies.
func readChunked(r *request, base string) string {
	v, ok := r.cookie(base)
	if !ok || v == "" {
		return ""
	}
	for i := 1; i < maxChunks; i++ {
		c, ok := r.cookie(chunkName(base, i))
		if !ok {
			break
		}
		v += c
	}
	return v
}

// chunkedCookies writes value as one or more cookies, and deletes the
// request's chunks beyond the new ones.
func chunkedCookies(r *request, base, value string, a cookieAttrs) ([]string, error) {
	n := (len(value) + chunkSize - 1) / chunkSize
	if n > maxChunks {
		return nil, errors.New("session too large for cookies")
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		end := min((i+1)*chunkSize, len(value))
		out = append(out, setCookie(chunkName(base, i), value[i*chunkSize:end], a, 0))
	}
	for i := n; i < maxChunks; i++ {
		if _, ok := r.cookie(chunkName(base, i)); ok {
			out = append(out, deleteCookie(chunkName(base, i), a))
		}
	}
	return out, nil
}

// deleteChunked deletes the base cookie and every chunk the request has.
func deleteChunked(r *request, base string, a cookieAttrs) []string {
	out := []string{deleteCookie(base, a)}
	for i := 1; i < maxChunks; i++ {
		if _, ok := r.cookie(chunkName(base, i)); ok {
			out = append(out, deleteCookie(chunkName(base, i), a))
		}
	}
	return out
}

// isChunkOf reports whether name is base or one of its chunks.
func isChunkOf(name, base string) bool {
	if name == base {
		return true
	}
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
