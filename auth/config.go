package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is every policy the service enforces. The control plane produces it;
// the proxy names the policy that applies to a request in the CheckRequest's
// context extension "sekisho.policy".
type Config struct {
	Policies []Policy `json:"policies"`
}

// Policy is one security policy.
type Policy struct {
	// ID is "namespace/name" of the policy; it is the value of the
	// "sekisho.policy" context extension.
	ID string `json:"id"`
	// FailureMode is read by the proxy (what to do when this service cannot
	// be reached); the service keeps it and does not use it.
	FailureMode   string         `json:"failureMode,omitempty"`
	JWT           *JWT           `json:"jwt,omitempty"`
	OIDC          *OIDC          `json:"oidc,omitempty"`
	Authorization *Authorization `json:"authorization,omitempty"`
}

// JWT authenticates bearer tokens signed by one of the providers.
type JWT struct {
	// Optional lets a request without a token through without an identity.
	// A token that is present and invalid is refused all the same.
	Optional  bool          `json:"optional,omitempty"`
	Providers []JWTProvider `json:"providers"`
}

// JWTProvider is one token issuer.
type JWTProvider struct {
	Name string `json:"name"`
	// Issuer must equal the token's "iss".
	Issuer string `json:"issuer"`
	// Audiences: when set, the token's "aud" (a string or an array) must
	// hold one of them.
	Audiences []string `json:"audiences,omitempty"`
	// Exactly one of RemoteJWKS and LocalJWKS.
	RemoteJWKS *RemoteJWKS `json:"remoteJWKS,omitempty"`
	// LocalJWKS is an inline JWKS document (JSON).
	LocalJWKS string `json:"localJWKS,omitempty"`
	// Algorithms the provider signs with; default RS256 and ES256. "none"
	// and the HMAC algorithms are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// ExtractFrom says where the token is read; default the Authorization
	// header with the prefix "Bearer ".
	ExtractFrom *ExtractFrom `json:"extractFrom,omitempty"`
	// ClaimToHeaders copies claims into request headers sent upstream.
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
	// ForwardToken keeps the token in the request sent upstream; by default
	// the header, cookie or query parameter that carried it is removed.
	ForwardToken bool `json:"forwardToken,omitempty"`
}

// RemoteJWKS is a JWKS fetched over HTTP(S).
type RemoteJWKS struct {
	URI string `json:"uri"`
	// CacheDuration is how long fetched keys are used before they are
	// fetched again; default 10m.
	CacheDuration Duration `json:"cacheDuration,omitempty"`
}

// ExtractFrom lists the places a token is looked for, in this order: headers,
// cookies, query parameters. The first one present is used.
type ExtractFrom struct {
	Headers []TokenHeader `json:"headers,omitempty"`
	Cookies []string      `json:"cookies,omitempty"`
	Params  []string      `json:"params,omitempty"`
}

// TokenHeader is a header carrying a token after an optional prefix (such as
// "Bearer "; the prefix is matched without regard to case).
type TokenHeader struct {
	Name        string `json:"name"`
	ValuePrefix string `json:"valuePrefix,omitempty"`
}

// ClaimToHeader sets the request header Header to the value of the claim
// Claim (strings, numbers and booleans; arrays of them are joined with ",").
// A claim name with dots that is not a top-level claim is looked up in
// nested objects ("realm_access.roles").
type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// OIDC is a browser login with the OpenID Connect authorization-code flow
// (with PKCE) and an encrypted session cookie.
type OIDC struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// Scopes requested; "openid" is always included. Default [openid].
	Scopes []string `json:"scopes,omitempty"`
	// RedirectPath is the callback path the provider redirects to.
	RedirectPath string `json:"redirectPath"`
	// LogoutPath, when set, ends the session.
	LogoutPath string `json:"logoutPath,omitempty"`
	// PostLogoutRedirect is where a logout ends (a path on the same host or
	// an absolute URL); default "/".
	PostLogoutRedirect string `json:"postLogoutRedirect,omitempty"`
	// CookieSameSite is Lax (default), Strict or None.
	CookieSameSite string `json:"cookieSameSite,omitempty"`
	// CookieName is the session cookie's name; default "sekisho-session".
	CookieName string `json:"cookieName,omitempty"`
	// RefreshToken renews a session close to its expiry with the refresh
	// token.
	RefreshToken   bool            `json:"refreshToken,omitempty"`
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
	// ForwardAccessToken sends "Authorization: Bearer <access token>"
	// upstream.
	ForwardAccessToken bool `json:"forwardAccessToken,omitempty"`
	// SessionKey is the base64 of 32 random bytes; it encrypts the session
	// and login-state cookies. Every replica must have the same key.
	SessionKey string `json:"sessionKey"`
}

// Authorization is an ordered rule list: the first rule that matches decides,
// and DefaultAction decides when none does.
type Authorization struct {
	DefaultAction string      `json:"defaultAction"`
	Rules         []AuthzRule `json:"rules,omitempty"`
}

// Rule actions and default actions.
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
)

// AuthzRule matches when its Principal and its Operation both match (an
// absent one matches every request).
type AuthzRule struct {
	Name      string     `json:"name,omitempty"`
	Action    string     `json:"action"`
	Principal *Principal `json:"principal,omitempty"`
	Operation *Operation `json:"operation,omitempty"`
}

// Principal matches who sends the request: every claim match must hold, and
// the client address must be in one of ClientCIDRs when they are given. A
// principal with claims never matches an anonymous request.
type Principal struct {
	Claims      []ClaimMatch `json:"claims,omitempty"`
	ClientCIDRs []string     `json:"clientCIDRs,omitempty"`
}

// ClaimMatch holds when the claim Name is a string equal to one of Values,
// or an array holding one of them (numbers and booleans compare by their
// JSON text).
type ClaimMatch struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Operation matches what the request does: one of Methods, one of Paths and
// one of Hosts, for each list that is given. Paths are matched on the
// normalised path (the proxy router's normaliser), hosts on the lower-cased
// host without port or trailing dot.
type Operation struct {
	Methods []string    `json:"methods,omitempty"`
	Paths   []PathMatch `json:"paths,omitempty"`
	// Hosts are exact names or "*.suffix" wildcards.
	Hosts []string `json:"hosts,omitempty"`
}

// Path match types.
const (
	PathExact             = "Exact"
	PathPrefix            = "PathPrefix"
	PathRegularExpression = "RegularExpression"
)

// PathMatch is one path matcher. PathPrefix matches whole segments ("/api"
// matches "/api" and "/api/x", not "/apix"); RegularExpression (RE2) must
// match the whole path. Matching is case-sensitive.
type PathMatch struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("10m", "1h30m", "500ms").
type Duration time.Duration

// MarshalJSON writes the duration in its shortest Go form ("10m", not
// "10m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(formatDuration(time.Duration(d)))
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10m\": %w", err)
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// formatDuration drops the zero units time.Duration.String writes
// ("1h0m0s" → "1h", "10m0s" → "10m").
func formatDuration(d time.Duration) string {
	if d == 0 || d%time.Second != 0 {
		return d.String()
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	if h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
	}
	if m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
	}
	if s > 0 {
		b.WriteString(strconv.FormatInt(int64(s), 10) + "s")
	}
	return b.String()
}

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
