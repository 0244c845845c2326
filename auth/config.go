package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sekisho/sekisho/ir"
)

// Config is every policy the service enforces. The control plane produces it;
// the proxy names the policy that applies to a request in the CheckRequest's
// context extension "sekisho.policy".
type Config struct {
	Policies []Policy `json:"policies"`
}

// The configuration's types are the IR's: the control plane sends the JSON
// of ir.AuthzConfig, and these names are how this package reads them.
type (
	Policy        = ir.AuthzPolicy
	JWT           = ir.JWTAuthn
	JWTProvider   = ir.JWTProvider
	RemoteJWKS    = ir.RemoteJWKS
	ExtractFrom   = ir.JWTExtractFrom
	TokenHeader   = ir.JWTHeader
	ClaimToHeader = ir.ClaimToHeader
	OIDC          = ir.OIDCLogin
	Authorization = ir.AuthorizationRules
	AuthzRule     = ir.AuthzRule
	Principal     = ir.AuthzPrincipal
	ClaimMatch    = ir.ClaimValues
	Operation     = ir.AuthzOperation
	PathMatch     = ir.PathMatch
	Duration      = ir.Duration
)

// Rule actions and default actions.
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
)

// Path match types.
const (
	PathExact             = "Exact"
	PathPrefix            = "PathPrefix"
	PathRegularExpression = "RegularExpression"
)

// Defaults.
const (
	DefaultJWKSCacheDuration  = 10 * time.Minute
	DefaultCookieName         = "sekisho-session"
	DefaultPostLogoutRedirect = "/"
)

// DefaultAlgorithms are the algorithms a JWT provider accepts when it lists
// none.
var DefaultAlgorithms = []string{"RS256", "ES256"}

var supportedAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
}

// Validate checks every policy. Each problem is reported with the policy ID
// and the field path ("policy \"ns/p\": jwt.providers[0].issuer: ...").
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i := range c.Policies {
		p := &c.Policies[i]
		name := p.ID
		if name == "" {
			name = fmt.Sprintf("policies[%d]", i)
		}
		v := &validator{prefix: fmt.Sprintf("policy %q: ", name)}
		if p.ID == "" {
			v.add("id", "required")
		} else if seen[p.ID] {
			v.add("id", "duplicate policy ID")
		}
		seen[p.ID] = true
		v.policy(p)
		errs = append(errs, v.errs...)
	}
	return errors.Join(errs...)
}

type validator struct {
	prefix string
	errs   []error
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s%s: %s", v.prefix, field, fmt.Sprintf(format, args...)))
}

func (v *validator) policy(p *Policy) {
	if p.JWT != nil {
		v.jwt(p.JWT)
	}
	if p.OIDC != nil {
		v.oidc(p.OIDC)
	}
	if p.Authorization != nil {
		v.authorization(p.Authorization)
	}
}

func (v *validator) jwt(j *JWT) {
	if len(j.Providers) == 0 {
		v.add("jwt.providers", "at least one provider is required")
	}
	names := map[string]bool{}
	issuers := map[string]bool{}
	for i := range j.Providers {
		pr := &j.Providers[i]
		f := fmt.Sprintf("jwt.providers[%d]", i)
		if pr.Name == "" {
			v.add(f+".name", "required")
		} else if names[pr.Name] {
			v.add(f+".name", "duplicate provider name %q", pr.Name)
		}
		names[pr.Name] = true
		if pr.Issuer == "" {
			v.add(f+".issuer", "required")
		} else if issuers[pr.Issuer] {
			v.add(f+".issuer", "two providers have the issuer %q", pr.Issuer)
		}
		issuers[pr.Issuer] = true
		for k, a := range pr.Audiences {
			if a == "" {
				v.add(fmt.Sprintf("%s.audiences[%d]", f, k), "empty audience")
			}
		}
		switch {
		case pr.RemoteJWKS != nil && pr.LocalJWKS != "":
			v.add(f, "remoteJWKS and localJWKS are exclusive")
		case pr.RemoteJWKS != nil:
			if err := checkHTTPURL(pr.RemoteJWKS.URI); err != nil {
				v.add(f+".remoteJWKS.uri", "%v", err)
			}
			if pr.RemoteJWKS.CacheDuration < 0 {
				v.add(f+".remoteJWKS.cacheDuration", "must not be negative")
			}
		case pr.LocalJWKS != "":
			if _, err := parseJWKS([]byte(pr.LocalJWKS)); err != nil {
				v.add(f+".localJWKS", "%v", err)
			}
		default:
			v.add(f, "one of remoteJWKS and localJWKS is required")
		}
		for k, a := range pr.Algorithms {
			if !supportedAlgorithms[a] {
				v.add(fmt.Sprintf("%s.algorithms[%d]", f, k), "unsupported algorithm %q (RS*, PS* and ES* are supported; none and HS* never are)", a)
			}
		}
		if e := pr.ExtractFrom; e != nil {
			if len(e.Headers)+len(e.Cookies)+len(e.Params) == 0 {
				v.add(f+".extractFrom", "names no header, cookie or parameter")
			}
			for k, h := range e.Headers {
				if err := checkHeaderName(h.Name); err != nil {
					v.add(fmt.Sprintf("%s.extractFrom.headers[%d].name", f, k), "%v", err)
				}
			}
			for k, c := range e.Cookies {
				if !isToken(c) {
					v.add(fmt.Sprintf("%s.extractFrom.cookies[%d]", f, k), "invalid cookie name %q", c)
				}
			}
			for k, q := range e.Params {
				if q == "" {
					v.add(fmt.Sprintf("%s.extractFrom.params[%d]", f, k), "empty parameter name")
				}
			}
		}
		v.claimHeaders(f+".claimToHeaders", pr.ClaimToHeaders)
	}
}

func (v *validator) claimHeaders(f string, chs []ClaimToHeader) {
	seen := map[string]bool{}
	for k, ch := range chs {
		g := fmt.Sprintf("%s[%d]", f, k)
		if ch.Claim == "" {
			v.add(g+".claim", "required")
		}
		if err := checkHeaderName(ch.Header); err != nil {
			v.add(g+".header", "%v", err)
			continue
		}
		h := strings.ToLower(ch.Header)
		if reservedHeaders[h] {
			v.add(g+".header", "%q cannot be set from a claim", ch.Header)
		}
		if seen[h] {
			v.add(g+".header", "header %q is set twice", ch.Header)
		}
		seen[h] = true
	}
}

// reservedHeaders cannot be set from claims: they frame the request or are
// the proxy's own.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"keep-alive": true, "upgrade": true, "te": true, "trailer": true, "proxy-connection": true,
	"cookie": true, "authorization": true,
}

func (v *validator) oidc(o *OIDC) {
	if err := checkHTTPURL(o.Issuer); err != nil {
		v.add("oidc.issuer", "%v", err)
	}
	if o.ClientID == "" {
		v.add("oidc.clientID", "required")
	}
	if !strings.HasPrefix(o.RedirectPath, "/") {
		v.add("oidc.redirectPath", "must be a path starting with '/'")
	}
	if o.LogoutPath != "" {
		if !strings.HasPrefix(o.LogoutPath, "/") {
			v.add("oidc.logoutPath", "must be a path starting with '/'")
		} else if o.LogoutPath == o.RedirectPath {
			v.add("oidc.logoutPath", "must differ from redirectPath")
		}
	}
	if r := o.PostLogoutRedirect; r != "" && !strings.HasPrefix(r, "/") {
		if err := checkHTTPURL(r); err != nil {
			v.add("oidc.postLogoutRedirect", "must be a path starting with '/' or an absolute http(s) URL")
		}
	} else if strings.HasPrefix(r, "//") {
		v.add("oidc.postLogoutRedirect", "must be a path starting with a single '/'")
	}
	switch o.CookieSameSite {
	case "", "Lax", "Strict", "None":
	default:
		v.add("oidc.cookieSameSite", "must be Lax, Strict or None, not %q", o.CookieSameSite)
	}
	if o.CookieName != "" && !isToken(o.CookieName) {
		v.add("oidc.cookieName", "invalid cookie name %q", o.CookieName)
	}
	for k, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			v.add(fmt.Sprintf("oidc.scopes[%d]", k), "invalid scope %q", s)
		}
	}
	if _, err := decodeSessionKey(o.SessionKey); err != nil {
		v.add("oidc.sessionKey", "%v", err)
	}
	v.claimHeaders("oidc.claimToHeaders", o.ClaimToHeaders)
}

func (v *validator) authorization(a *Authorization) {
	if a.DefaultAction != ActionAllow && a.DefaultAction != ActionDeny {
		v.add("authorization.defaultAction", "must be Allow or Deny, not %q", a.DefaultAction)
	}
	for i := range a.Rules {
		r := &a.Rules[i]
		f := fmt.Sprintf("authorization.rules[%d]", i)
		if r.Action != ActionAllow && r.Action != ActionDeny {
			v.add(f+".action", "must be Allow or Deny, not %q", r.Action)
		}
		if pr := r.Principal; pr != nil {
			for k, c := range pr.Claims {
				if c.Name == "" {
					v.add(fmt.Sprintf("%s.principal.claims[%d].name", f, k), "required")
				}
				if len(c.Values) == 0 {
					v.add(fmt.Sprintf("%s.principal.claims[%d].values", f, k), "at least one value is required")
				}
			}
			for k, c := range pr.ClientCIDRs {
				if _, err := parseCIDR(c); err != nil {
					v.add(fmt.Sprintf("%s.principal.clientCIDRs[%d]", f, k), "%v", err)
				}
			}
		}
		if op := r.Operation; op != nil {
			for k, m := range op.Methods {
				if !isToken(m) {
					v.add(fmt.Sprintf("%s.operation.methods[%d]", f, k), "invalid method %q", m)
				}
			}
			for k, pm := range op.Paths {
				g := fmt.Sprintf("%s.operation.paths[%d]", f, k)
				switch pm.Type {
				case PathExact, PathPrefix:
					if !strings.HasPrefix(pm.Value, "/") {
						v.add(g+".value", "must start with '/'")
					}
				case PathRegularExpression:
					if _, err := regexp.Compile(pm.Value); err != nil {
						v.add(g+".value", "%v", err)
					}
				default:
					v.add(g+".type", "must be Exact, PathPrefix or RegularExpression, not %q", pm.Type)
				}
			}
			for k, h := range op.Hosts {
				if normalizeHostPattern(h) == "" {
					v.add(fmt.Sprintf("%s.operation.hosts[%d]", f, k), "empty host")
				}
			}
		}
	}
}

func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

func checkHeaderName(s string) error {
	if s == "" {
		return errors.New("empty header name")
	}
	if !isToken(s) {
		return fmt.Errorf("invalid header name %q", s)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (header names, cookie
// names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// decodeSessionKey reads a base64 (standard or URL alphabet, padded or not)
// 32-byte key.
func decodeSessionKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("required (base64 of 32 random bytes)")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("decodes to %d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}

// parseCIDR reads a prefix ("10.0.0.0/8") or a single address.
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
