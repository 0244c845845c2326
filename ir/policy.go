package ir

import "time"

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
	ID          string `json:"id"`
	Requests    uint64 `json:"requests"`
	Unit        string `json:"unit"`             // Second | Minute | Hour | Day
	Algorithm   string `json:"algorithm"`        // FixedWindow | SlidingWindow | TokenBucket
	Burst       uint64 `json:"burst,omitempty"`  // TokenBucket capacity
	Shadow      bool   `json:"shadow,omitempty"` // count, never refuse
	FailureMode string `json:"failureMode"`      // Open | Closed
}

// AuthzConfig is every SecurityPolicy the external authorization service
// enforces. Its JSON is the service's configuration.
type AuthzConfig struct {
	Policies []AuthzPolicy `json:"policies"`
}

// AuthzPolicy is one SecurityPolicy. ID is "namespace/name".
type AuthzPolicy struct {
	ID            string              `json:"id"`
	FailureMode   string              `json:"failureMode,omitempty"`
	JWT           *JWTAuthn           `json:"jwt,omitempty"`
	OIDC          *OIDCLogin          `json:"oidc,omitempty"`
	Authorization *AuthorizationRules `json:"authorization,omitempty"`
}

// JWTAuthn validates bearer tokens.
type JWTAuthn struct {
	Optional  bool          `json:"optional,omitempty"`
	Providers []JWTProvider `json:"providers"`
}

// JWTProvider is one token issuer.
type JWTProvider struct {
	Name           string          `json:"name"`
	Issuer         string          `json:"issuer"`
	Audiences      []string        `json:"audiences,omitempty"`
	RemoteJWKS     *RemoteJWKS     `json:"remoteJWKS,omitempty"`
	LocalJWKS      string          `json:"localJWKS,omitempty"`
	Algorithms     []string        `json:"algorithms,omitempty"`
	ExtractFrom    *JWTExtractFrom `json:"extractFrom,omitempty"`
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
	ForwardToken   bool            `json:"forwardToken,omitempty"`
}

// RemoteJWKS is a JWKS endpoint; CacheDuration is a Go duration string.
type RemoteJWKS struct {
	URI           string `json:"uri"`
	CacheDuration string `json:"cacheDuration,omitempty"`
}

// JWTExtractFrom says where tokens are read from.
type JWTExtractFrom struct {
	Headers []JWTHeader `json:"headers,omitempty"`
	Cookies []string    `json:"cookies,omitempty"`
	Params  []string    `json:"params,omitempty"`
}

// JWTHeader is a header carrying a token after ValuePrefix.
type JWTHeader struct {
	Name        string `json:"name"`
	ValuePrefix string `json:"valuePrefix,omitempty"`
}

// ClaimToHeader copies a claim into a request header.
type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// OIDCLogin is the OpenID Connect authorization-code flow.
type OIDCLogin struct {
	Issuer             string          `json:"issuer"`
	ClientID           string          `json:"clientID"`
	ClientSecret       string          `json:"clientSecret"`
	Scopes             []string        `json:"scopes,omitempty"`
	RedirectPath       string          `json:"redirectPath"`
	LogoutPath         string          `json:"logoutPath,omitempty"`
	PostLogoutRedirect string          `json:"postLogoutRedirect,omitempty"`
	CookieSameSite     string          `json:"cookieSameSite,omitempty"`
	CookieName         string          `json:"cookieName,omitempty"`
	RefreshToken       bool            `json:"refreshToken,omitempty"`
	ClaimToHeaders     []ClaimToHeader `json:"claimToHeaders,omitempty"`
	ForwardAccessToken bool            `json:"forwardAccessToken,omitempty"`
	// SessionKey (base64 of 32 bytes) encrypts the session and login-state
	// cookies; every authorization replica gets the same one.
	SessionKey string `json:"sessionKey"`
}

// AuthorizationRules decide whether an authenticated request may proceed.
type AuthorizationRules struct {
	DefaultAction string      `json:"defaultAction"` // Allow | Deny
	Rules         []AuthzRule `json:"rules,omitempty"`
}

// AuthzRule is one authorization rule: the first that matches decides.
type AuthzRule struct {
	Name      string          `json:"name"`
	Action    string          `json:"action"`
	Principal *AuthzPrincipal `json:"principal,omitempty"`
	Operation *AuthzOperation `json:"operation,omitempty"`
}

// AuthzPrincipal matches the identity and the client.
type AuthzPrincipal struct {
	Claims      []ClaimValues `json:"claims,omitempty"`
	ClientCIDRs []string      `json:"clientCIDRs,omitempty"`
}

// ClaimValues is a claim and the values it may have.
type ClaimValues struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// AuthzOperation matches the request.
type AuthzOperation struct {
	Methods []string    `json:"methods,omitempty"`
	Paths   []PathMatch `json:"paths,omitempty"`
}
