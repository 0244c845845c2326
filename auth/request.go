package auth

import (
	"net/netip"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/sekisho/sekisho/internal/httppath"
)

// PolicyKey is the context extension that names the policy of a request.
const PolicyKey = "sekisho.policy"

// request is what a check reads of a CheckRequest.
type request struct {
	method  string // upper case
	rawPath string // as sent, without the query
	path    string // normalised (httppath.Normalize)
	// paramless is path with the path parameters (";..." in a segment)
	// taken out and dot segments resolved again, as a backend that drops
	// them would read it ("/a/..;/b" → "/b"); "" when path has no ';'.
	paramless string
	rawQ      string // the query, without '?'
	host      string // lower case, no port, no trailing dot
	// authority is the host as sent with its port, lower case and without
	// a trailing dot: what redirect URIs are built on.
	authority string
	scheme    string // "http" or "https"
	headers   map[string]string
	source    netip.Addr

	query   url.Values // parsed on first use
	cookies []cookie   // parsed on first use
	parsedQ bool
	parsedC bool
}

type cookie struct{ name, value string }

// readRequest takes the attributes of a CheckRequest. An error means the
// path cannot be normalised (answered 400).
func readRequest(cr *authv3.CheckRequest) (*request, error) {
	h := cr.GetAttributes().GetRequest().GetHttp()
	r := &request{
		method:  strings.ToUpper(h.GetMethod()),
		headers: h.GetHeaders(),
	}
	if len(r.headers) == 0 && h.GetHeaderMap() != nil {
		hm := h.GetHeaderMap().GetHeaders()
		r.headers = make(map[string]string, len(hm))
		for _, hv := range hm {
			v := hv.GetValue()
			if v == "" && len(hv.GetRawValue()) > 0 {
				v = string(hv.GetRawValue())
			}
			k := strings.ToLower(hv.GetKey())
			if old, ok := r.headers[k]; ok {
				v = old + "," + v
			}
			r.headers[k] = v
		}
	}
	if r.method == "" {
		r.method = strings.ToUpper(r.headers[":method"])
	}
	p := h.GetPath()
	if p == "" {
		p = r.headers[":path"]
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p, r.rawQ = p[:i], p[i+1:]
	} else if q := h.GetQuery(); q != "" {
		r.rawQ = q
	}
	r.rawPath = p
	if h.GetFragment() != "" {
		return r, httppath.ErrFragment
	}
	np, err := httppath.Normalize(p)
	if err != nil {
		return r, err
	}
	r.path = np
	if strings.IndexByte(np, ';') >= 0 {
		r.paramless = withoutPathParams(np)
	}

	host := h.GetHost()
	if host == "" {
		host = r.headers[":authority"]
	}
	if host == "" {
		host = r.headers["host"]
	}
	r.host, r.authority = normalizeHost(host)

	r.scheme = strings.ToLower(h.GetScheme())
	if r.scheme == "" {
		r.scheme = strings.ToLower(r.headers["x-forwarded-proto"])
		if i := strings.IndexByte(r.scheme, ','); i >= 0 {
			r.scheme = strings.TrimSpace(r.scheme[:i])
		}
	}
	if r.scheme != "https" {
		r.scheme = "http"
	}

	if sa := cr.GetAttributes().GetSource().GetAddress().GetSocketAddress(); sa != nil {
		if a, err := netip.ParseAddr(sa.GetAddress()); err == nil {
			r.source = a.Unmap()
		}
	}
	return r, nil
}

// withoutPathParams removes the parameters of every segment of a
// normalised path and normalises the result again.
func withoutPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == ';' {
			for i+1 < len(p) && p[i+1] != '/' {
				i++
			}
			continue
		}
		b.WriteByte(p[i])
	}
	np, err := httppath.Normalize(b.String())
	if err != nil {
		return "/"
	}
	return np
}

// normalizeHost returns the host matched on (lower case, without the port
// and a trailing dot) and the authority redirects are built on (the same
// with its port).
func normalizeHost(h string) (host, authority string) {
	h = strings.ToLower(strings.TrimSpace(h))
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			host, port = h[:i+1], h[i+1:]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		host, port = h[:i], h[i:]
	}
	host = strings.TrimSuffix(host, ".")
	if port == ":" {
		port = ""
	}
	return host, host + port
}

// normalizeHostPattern normalises a configured host or "*.suffix".
func normalizeHostPattern(h string) string {
	h, _ = normalizeHost(h)
	return h
}

// param returns the first value of a query parameter.
func (r *request) param(name string) (string, bool) {
	if !r.parsedQ {
		r.parsedQ = true
		if r.rawQ != "" {
			r.query, _ = url.ParseQuery(r.rawQ)
		}
	}
	v, ok := r.query[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// cookie returns the value of the first cookie named name.
func (r *request) cookie(name string) (string, bool) {
	for _, c := range r.allCookies() {
		if c.name == name {
			return c.value, true
		}
	}
	return "", false
}

func (r *request) allCookies() []cookie {
	if !r.parsedC {
		r.parsedC = true
		r.cookies = parseCookies(r.headers["cookie"])
	}
	return r.cookies
}

// parseCookies splits a Cookie header ("a=1; b=2"). Values keep their
// bytes; surrounding double quotes are removed.
func parseCookies(h string) []cookie {
	if h == "" {
		return nil
	}
	var out []cookie
	for part := range strings.SplitSeq(h, ";") {
		part = strings.TrimSpace(part)
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			continue
		}
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		out = append(out, cookie{name, value})
	}
	return out
}

// cookieHeaderWithout is the Cookie header without the cookies drop
// reports, and whether anything was dropped.
func (r *request) cookieHeaderWithout(drop func(name string) bool) (string, bool) {
	cs := r.allCookies()
	dropped := false
	var b strings.Builder
	for _, c := range cs {
		if drop(c.name) {
			dropped = true
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.name)
		b.WriteByte('=')
		b.WriteString(c.value)
	}
	return b.String(), dropped
}

// wantsJSON reports whether the client is a script or an API client that
// should get 401 rather than a login redirect.
func (r *request) wantsJSON() bool {
	if r.headers["x-requested-with"] != "" {
		return true
	}
	a := strings.ToLower(r.headers["accept"])
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// originalURL is the normalised path and query of the request: where a
// login returns to. It always starts with a single '/', so it cannot
// redirect off the site.
func (r *request) originalURL() string {
	if r.rawQ == "" {
		return r.path
	}
	return r.path + "?" + r.rawQ
}

// baseURL is scheme://authority.
func (r *request) baseURL() string { return r.scheme + "://" + r.authority }
