package auth

import (
	"net/netip"
	"regexp"
	"strings"
)

// authorizer is a compiled Authorization.
type authorizer struct {
	defaultAllow bool
	rules        []compiledRule
}

type compiledRule struct {
	name    string
	allow   bool
	claims  []ClaimMatch
	cidrs   []netip.Prefix
	methods []string
	paths   []pathMatcher
	hosts   []string // exact, or ".suffix" for "*.suffix"
}

type pathMatcher struct {
	kind  string
	value string
	re    *regexp.Regexp
}

// newAuthorizer compiles a validated Authorization.
func newAuthorizer(a *Authorization) *authorizer {
	out := &authorizer{defaultAllow: a.DefaultAction == ActionAllow}
	for _, r := range a.Rules {
		cr := compiledRule{name: r.Name, allow: r.Action == ActionAllow}
		if p := r.Principal; p != nil {
			cr.claims = p.Claims
			for _, c := range p.ClientCIDRs {
				if pfx, err := parseCIDR(c); err == nil {
					cr.cidrs = append(cr.cidrs, pfx)
				}
			}
		}
		if op := r.Operation; op != nil {
			for _, m := range op.Methods {
				cr.methods = append(cr.methods, strings.ToUpper(m))
			}
			for _, pm := range op.Paths {
				m := pathMatcher{kind: string(pm.Type), value: pm.Value}
				switch pm.Type {
				case PathPrefix:
					if m.value = strings.TrimRight(m.value, "/"); m.value == "" {
						m.value = "/"
					}
				case PathRegularExpression:
					m.re = regexp.MustCompile("^(?:" + pm.Value + ")$")
				}
				cr.paths = append(cr.paths, m)
			}
			for _, h := range op.Hosts {
				h = normalizeHostPattern(h)
				if strings.HasPrefix(h, "*.") {
					h = h[1:]
				}
				cr.hosts = append(cr.hosts, h)
			}
		}
		out.rules = append(out.rules, cr)
	}
	return out
}

// decide returns the action for a request: the first matching rule's, else
// the default. id is nil for an anonymous request.
//
// A path with path parameters (";") is decided twice, as it is and without
// them, and allowed only if both allow: "/public/..;/admin" is
// "/public/..;/admin" to the router but "/admin" to a backend that drops
// path parameters, and a rule on either must hold.
func (a *authorizer) decide(r *request, id *identity) (allow bool, rule string) {
	allow, rule = a.decideOn(r, r.path, id)
	if allow && r.paramless != "" {
		allow, rule = a.decideOn(r, r.paramless, id)
	}
	return allow, rule
}

func (a *authorizer) decideOn(r *request, path string, id *identity) (bool, string) {
	for i := range a.rules {
		if a.rules[i].matches(r, path, id) {
			return a.rules[i].allow, a.rules[i].name
		}
	}
	return a.defaultAllow, ""
}

func (cr *compiledRule) matches(r *request, path string, id *identity) bool {
	if len(cr.claims) > 0 {
		if id == nil {
			return false
		}
		for _, c := range cr.claims {
			if !claimMatches(lookupClaim(id.claims, c.Name), c.Values) {
				return false
			}
		}
	}
	if len(cr.cidrs) > 0 {
		if !r.source.IsValid() {
			return false
		}
		in := false
		for _, p := range cr.cidrs {
			if p.Contains(r.source) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if len(cr.methods) > 0 && !containsString(cr.methods, r.method) {
		return false
	}
	if len(cr.paths) > 0 {
		in := false
		for i := range cr.paths {
			if cr.paths[i].matches(path) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if len(cr.hosts) > 0 {
		in := false
		for _, h := range cr.hosts {
			if h == r.host || h[0] == '.' && len(r.host) > len(h) && strings.HasSuffix(r.host, h) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func (m *pathMatcher) matches(p string) bool {
	switch m.kind {
	case PathExact:
		return p == m.value
	case PathPrefix:
		if m.value == "/" {
			return true
		}
		return strings.HasPrefix(p, m.value) && (len(p) == len(m.value) || p[len(m.value)] == '/')
	case PathRegularExpression:
		return m.re.MatchString(p)
	}
	return false
}
