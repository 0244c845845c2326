package ir

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ServiceAddress is where proxies reach one of sekisho's services (gRPC over
// HTTP/2 without TLS).
type ServiceAddress struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
}

// RouteAuth sends each request of a route to the external authorization
// service with the policy that applies.
type RouteAuth struct {
	// Policy is an AuthzPolicy.ID of Config.Authz.
	Policy string `json:"policy"`
	// FailOpen lets requests through when the service cannot answer.
	FailOpen bool `json:"failOpen,omitempty"`
}

// RouteRateLimit is every limit on a route's requests.
type RouteRateLimit struct {
	// Global descriptors go to the rate-limit service; a request is refused
	// when any of them is over its limit.
	Global []GlobalRateLimit `json:"global,omitempty"`
	// FailClosed refuses requests when the rate-limit service cannot answer.
	FailClosed bool `json:"failClosed,omitempty"`
	// Local buckets are per proxy; a request needs a token from each.
	Local []LocalRateLimit `json:"local,omitempty"`
}

// GlobalRateLimit is one global rule as it applies to one route: which
// requests it counts and which counter each goes to.
type GlobalRateLimit struct {
	// Rule is a RateLimitRule.ID of Config.RateLimit.
	Rule string `json:"rule"`
	// Scope, when set, gives the route its own counter (a rule that is not
	// shared between the routes it targets): "Kind/namespace/name".
	Scope string `json:"scope,omitempty"`
	// Headers: every Exact or RegularExpression entry must match; Distinct
	// entries count each value apart (and skip requests without the header).
	Headers []RateLimitHeader `json:"headers,omitempty"`
	// Methods, when set: the request's method is one of them.
	Methods []string `json:"methods,omitempty"`
	// Path, when set, must match the normalised path.
	Path *PathMatch `json:"path,omitempty"`
	// ClientCIDRs, when set: the client's address is inside one of them.
	ClientCIDRs []string `json:"clientCIDRs,omitempty"`
	// DistinctClient counts each client address apart.
	DistinctClient bool `json:"distinctClient,omitempty"`
	// Claims count each value of these JWT claims apart (requests without
	// them are skipped); the route's Auth provides them.
	Claims []string `json:"claims,omitempty"`
	// Cost is what each request counts (1 when 0).
	Cost uint32 `json:"cost,omitempty"`
}

// RateLimitHeader matches a request header for a GlobalRateLimit. Name is
// lower-cased.
type RateLimitHeader struct {
	Name     string    `json:"name"`
	Type     MatchType `json:"type,omitempty"` // Exact | RegularExpression; empty when Distinct
	Value    string    `json:"value,omitempty"`
	Distinct bool      `json:"distinct,omitempty"`
}

// LocalRateLimit is a token bucket per proxy: Requests per Per, bursts of
// up to Requests.
type LocalRateLimit struct {
	// Name is "namespace/policy/rule".
	Name     string        `json:"name"`
	Requests uint32        `json:"requests"`
	Per      time.Duration `json:"per"`
}

// RateLimitConfig is every global rule the rate-limit service counts. Its
// JSON is the service's configuration.
type RateLimitConfig struct {
	Domain string          `json:"domain"`
	Rules  []RateLimitRule `json:"rules"`
}

// RateLimitRule is one global limit. ID is "namespace/policy/rule".
type RateLimitRule struct {
	ID          string   `json:"id"`                    // unique; descriptor entry {key:"sekisho.rule", value:ID} selects the rule
	Requests    uint64   `json:"requests"`              // limit per Unit (>0)
	Unit        string   `json:"unit"`                  // Second | Minute | Hour | Day
	Algorithm   string   `json:"algorithm"`             // FixedWindow | SlidingWindow | TokenBucket ("" = FixedWindow)
	Burst       uint64   `json:"burst,omitempty"`       // TokenBucket: bucket capacity (0 = Requests)
	Shadow      bool     `json:"shadow,omitempty"`      // count and report, never deny
	FailureMode string   `json:"failureMode,omitempty"` // Open (default) | Closed: what to do when the store can't answer in time
	ClientCIDRs []string `json:"clientCIDRs,omitempty"` // when set, the rule applies only if the descriptor's "remote_address" entry is inside one of them (the Gateway API translator matches CIDRs in the proxy instead and sets none)
}

// AuthzConfig is every SecurityPolicy the external authorization service
// enforces. Its JSON is the service's configuration.
type AuthzConfig struct {
	Policies []AuthzPolicy `json:"policies"`
}

// AuthzPolicy is one SecurityPolicy as the external authorization service
// enforces it.
type AuthzPolicy struct {
	// ID is "namespace/name" of the policy; it is the value of the
	// "sekisho.policy" context extension.
	ID string `json:"id"`
	// FailureMode is read by the proxy (what to do when this service cannot
	// be reached); the service keeps it and does not use it.
	FailureMode   string              `json:"failureMode,omitempty"`
	JWT           *JWTAuthn           `json:"jwt,omitempty"`
	OIDC          *OIDCLogin          `json:"oidc,omitempty"`
	Authorization *AuthorizationRules `json:"authorization,omitempty"`
}

// JWTAuthn authenticates bearer tokens signed by one of the providers.
type JWTAuthn struct {
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
	ExtractFrom *JWTExtractFrom `json:"extractFrom,omitempty"`
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

// JWTExtractFrom lists the places a token is looked for, in this order: headers,
// cookies, query parameters. The first one present is used.
type JWTExtractFrom struct {
	Headers []JWTHeader `json:"headers,omitempty"`
	Cookies []string    `json:"cookies,omitempty"`
	Params  []string    `json:"params,omitempty"`
}

// JWTHeader is a header carrying a token after an optional prefix (such as
// "Bearer "; the prefix is matched without regard to case).
type JWTHeader struct {
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

// OIDCLogin is a browser login with the OpenID Connect authorization-code flow
// (with PKCE) and an encrypted session cookie.
type OIDCLogin struct {
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

// AuthorizationRules is an ordered rule list: the first rule that matches decides,
// and DefaultAction decides when none does.
type AuthorizationRules struct {
	DefaultAction string      `json:"defaultAction"`
	Rules         []AuthzRule `json:"rules,omitempty"`
}

// AuthzRule matches when its Principal and its Operation both match (an
// absent one matches every request).
type AuthzRule struct {
	Name      string          `json:"name,omitempty"`
	Action    string          `json:"action"`
	Principal *AuthzPrincipal `json:"principal,omitempty"`
	Operation *AuthzOperation `json:"operation,omitempty"`
}

// AuthzPrincipal matches who sends the request: every claim match must hold, and
// the client address must be in one of ClientCIDRs when they are given. A
// principal with claims never matches an anonymous request.
type AuthzPrincipal struct {
	Claims      []ClaimValues `json:"claims,omitempty"`
	ClientCIDRs []string      `json:"clientCIDRs,omitempty"`
}

// ClaimValues holds when the claim Name is a string equal to one of Values,
// or an array holding one of them (numbers and booleans compare by their
// JSON text).
type ClaimValues struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// AuthzOperation matches what the request does: one of Methods, one of Paths and
// one of Hosts, for each list that is given. Paths are matched on the
// normalised path (the proxy router's normaliser), hosts on the lower-cased
// host without port or trailing dot.
type AuthzOperation struct {
	Methods []string    `json:"methods,omitempty"`
	Paths   []PathMatch `json:"paths,omitempty"`
	// Hosts are exact names or "*.suffix" wildcards (the Gateway API
	// translator sets none: a policy applies to the hosts of its routes).
	Hosts []string `json:"hosts,omitempty"`
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
