// Package ir is sekisho's intermediate representation: plain Go values that say
// what every proxy must do. The Gateway API translator (gateway/translate) writes
// it and the xDS translator (xds/translate) reads it. It holds no Kubernetes and
// no Envoy types, so either side can change without the other.
//
// Every name in the IR is chosen by the Gateway API translator, is stable for the
// same input, and is used verbatim as the xDS resource name, so resources that do
// not change are not re-sent to proxies.
//
// Slices are ordered: the Gateway API translator sorts everything it emits, so the
// same input always gives the same IR (golden files depend on it).
package ir

import "time"

// Config is what every proxy of the mesh must do: one entry per programmed Gateway.
type Config struct {
	// Gateways is sorted by Name.
	Gateways []*Gateway `json:"gateways,omitempty"`
	// Authz is what the external authorization service enforces: every
	// SecurityPolicy some route uses. nil when none does.
	Authz *AuthzConfig `json:"authz,omitempty"`
	// RateLimit is what the rate-limit service counts: every global rule some
	// route uses. nil when none does.
	RateLimit *RateLimitConfig `json:"rateLimit,omitempty"`
}

// Gateway is one proxy fleet: the xDS snapshot of one Gateway.
type Gateway struct {
	// Name is the snapshot key and the node ID its proxies use: "<namespace>/<name>".
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// GatewayName is the Gateway object's metadata.name.
	GatewayName string `json:"gatewayName"`
	// Listeners is sorted by Port.
	Listeners []*Listener `json:"listeners,omitempty"`
	// Clusters is every upstream the routes refer to, sorted by Name.
	Clusters []*Cluster `json:"clusters,omitempty"`
	// Secrets is every TLS certificate the listeners serve, sorted by Name.
	Secrets []*Secret `json:"secrets,omitempty"`
	// AuthzService is where the proxies reach the external authorization
	// service (its replicas); set when a route has Auth.
	AuthzService []ServiceAddress `json:"authzService,omitempty"`
	// RateLimitService is where the proxies reach the rate-limit service (its
	// replicas); set when a route has global rate limits.
	RateLimitService []ServiceAddress `json:"rateLimitService,omitempty"`
}

// Protocol is what a listener speaks.
type Protocol string

const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTPS Protocol = "HTTPS"
)

// Listener is one socket: every Gateway listener that shares a port is merged
// into one Listener.
type Listener struct {
	// Name, for example "default/eg/http-8080".
	Name     string   `json:"name"`
	Address  string   `json:"address"` // "0.0.0.0" unless the Gateway asks otherwise
	Port     uint32   `json:"port"`
	Protocol Protocol `json:"protocol"`
	// FilterChains: an HTTP listener has exactly one, with no ServerNames and no
	// TLS. An HTTPS listener has one per Gateway listener on the port, selected
	// by SNI (ServerNames); a chain with no ServerNames takes any other SNI.
	FilterChains []*FilterChain `json:"filterChains"`
}

// FilterChain is an HTTP connection manager with its own route table.
type FilterChain struct {
	// Name is stable and is also the name of the chain's RouteConfiguration.
	Name string `json:"name"`
	// ServerNames is the SNI this chain is chosen for (HTTPS only); empty: any.
	ServerNames []string `json:"serverNames,omitempty"`
	// TLS terminates TLS on this chain (HTTPS only).
	TLS *TLSConfig `json:"tls,omitempty"`
	// VirtualHosts is sorted by Name. Domains never repeat across virtual hosts
	// of one chain. A Gateway listener with a hostname but no routes still gets
	// a virtual host with no routes, so its hostname answers 404 rather than
	// falling through to a less specific listener's routes.
	VirtualHosts []*VirtualHost `json:"virtualHosts,omitempty"`
}

// TLSConfig is the server side of TLS on a filter chain.
type TLSConfig struct {
	// SecretNames are Secret.Name values served on this chain (several: e.g. RSA and ECDSA).
	SecretNames []string `json:"secretNames"`
	// ALPN protocols offered, e.g. ["h2", "http/1.1"].
	ALPN []string `json:"alpn,omitempty"`
}

// Secret is a certificate and its private key, PEM encoded.
type Secret struct {
	// Name, for example "default/example-com-cert".
	Name    string `json:"name"`
	CertPEM []byte `json:"certPEM"`
	KeyPEM  []byte `json:"keyPEM"`
}

// VirtualHost groups the routes for a set of hostnames.
type VirtualHost struct {
	Name string `json:"name"`
	// Domains: exact hostnames, "*.suffix" wildcards, or "*" for any.
	Domains []string `json:"domains"`
	// Routes in match order: the first route whose Match holds takes the request.
	// The Gateway API translator has already sorted them by the spec's precedence.
	Routes []*Route `json:"routes,omitempty"`
}

// Route is one match of one rule of an HTTPRoute or GRPCRoute, and what to do
// with the requests it matches. Exactly one of Forward, Redirect and
// DirectResponse is set.
type Route struct {
	// Name, for example "httproute/default/api/rule/0/match/1".
	Name   string      `json:"name"`
	Source RouteSource `json:"source"`
	Match  Match       `json:"match"`

	// RequestHeaders is applied before forwarding (or redirecting).
	RequestHeaders *HeaderModifier `json:"requestHeaders,omitempty"`
	// ResponseHeaders is applied to the response sent downstream.
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`

	Forward        *Forward        `json:"forward,omitempty"`
	Redirect       *Redirect       `json:"redirect,omitempty"`
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`

	// Auth, when set, asks the external authorization service about every
	// request of the route before it is served.
	Auth *RouteAuth `json:"auth,omitempty"`
	// RateLimit, when set, limits the route's requests.
	RateLimit *RouteRateLimit `json:"rateLimit,omitempty"`
}

// RouteSource says which object and rule a Route came from (for metrics, logs
// and debugging).
type RouteSource struct {
	Kind      string `json:"kind"` // HTTPRoute | GRPCRoute
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Rule      int    `json:"rule"`
	// RuleName is the rule's optional name.
	RuleName string `json:"ruleName,omitempty"`
	Match    int    `json:"match"`
}

// Match says which requests a Route takes. Every set condition must hold.
type Match struct {
	// Path is always set (the spec's default is PathPrefix "/").
	Path        PathMatch     `json:"path"`
	Headers     []HeaderMatch `json:"headers,omitempty"`
	QueryParams []HeaderMatch `json:"queryParams,omitempty"`
	Method      string        `json:"method,omitempty"`
}

// MatchType says how a string is compared.
type MatchType string

const (
	MatchExact  MatchType = "Exact"
	MatchPrefix MatchType = "PathPrefix"        // paths only: element-wise prefix, as the spec says
	MatchRegex  MatchType = "RegularExpression" // RE2, whole-string match
)

// PathMatch matches the (normalised) request path.
type PathMatch struct {
	Type  MatchType `json:"type"`
	Value string    `json:"value"`
}

// HeaderMatch matches one header (names are case-insensitive; the IR holds
// them lower-cased) or one query parameter (names are case-sensitive).
type HeaderMatch struct {
	Name  string    `json:"name"`
	Type  MatchType `json:"type"` // Exact | RegularExpression
	Value string    `json:"value"`
}

// Header is a name and a value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HeaderModifier edits headers: Set replaces, Add appends, Remove deletes.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Forward sends the request upstream.
type Forward struct {
	// Backends share the traffic by Weight. A backend whose Weight is 0 gets nothing.
	Backends []WeightedBackend `json:"backends"`
	// InvalidWeight is the weight of backendRefs that could not be resolved: that
	// share of requests is answered 500, as the spec says. When every backend is
	// invalid the route is a DirectResponse 500 instead of a Forward.
	InvalidWeight uint32 `json:"invalidWeight,omitempty"`

	Rewrite *URLRewrite `json:"rewrite,omitempty"`
	// Mirrors receive a copy of requests; their responses are dropped.
	Mirrors []Mirror `json:"mirrors,omitempty"`

	// Timeout bounds the whole request, retries included (0: none).
	Timeout time.Duration `json:"timeout,omitempty"`
	// PerTryTimeout bounds each attempt upstream (0: none).
	PerTryTimeout time.Duration `json:"perTryTimeout,omitempty"`
	Retry         *Retry        `json:"retry,omitempty"`
	// GRPC is true for routes from a GRPCRoute.
	GRPC bool `json:"grpc,omitempty"`
}

// WeightedBackend is a share of a Forward's traffic.
type WeightedBackend struct {
	Cluster string `json:"cluster"` // a Cluster.Name of the same Gateway
	Weight  uint32 `json:"weight"`
	// RequestHeaders / ResponseHeaders are the backendRef's own filters.
	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
}

// PathModifierType says how a path is rewritten.
type PathModifierType string

const (
	ReplaceFullPath    PathModifierType = "ReplaceFullPath"
	ReplacePrefixMatch PathModifierType = "ReplacePrefixMatch"
)

// PathModifier rewrites the path. For ReplacePrefixMatch, the route's Match.Path
// is a PathPrefix and Value replaces that prefix, element-wise, as the spec says
// (prefix "/foo" replaced by "/" turns "/foo/bar" into "/bar", not "//bar").
type PathModifier struct {
	Type  PathModifierType `json:"type"`
	Value string           `json:"value"`
}

// URLRewrite rewrites the request before it goes upstream.
type URLRewrite struct {
	Hostname string        `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
}

// Mirror copies a fraction of requests to another cluster.
type Mirror struct {
	Cluster string `json:"cluster"`
	// Numerator/Denominator is the fraction mirrored; 1/1 mirrors all.
	Numerator   uint32 `json:"numerator"`
	Denominator uint32 `json:"denominator"`
}

// Retry retries failed attempts upstream.
type Retry struct {
	Attempts int `json:"attempts"` // retries after the first attempt
	// Codes are the HTTP status codes that are retried.
	Codes   []int         `json:"codes,omitempty"`
	Backoff time.Duration `json:"backoff,omitempty"` // base interval
}

// Redirect answers with a redirect. Empty fields keep the request's own value.
type Redirect struct {
	Scheme   string        `json:"scheme,omitempty"`
	Hostname string        `json:"hostname,omitempty"`
	Port     uint32        `json:"port,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
	// StatusCode is 301, 302, 303, 307 or 308.
	StatusCode int `json:"statusCode"`
}

// DirectResponse answers without going upstream.
type DirectResponse struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body,omitempty"`
}

// AppProtocol is what a cluster's endpoints speak.
type AppProtocol string

const (
	AppProtocolHTTP1 AppProtocol = "HTTP/1.1"
	AppProtocolH2C   AppProtocol = "h2c" // HTTP/2 with prior knowledge (gRPC, kubernetes.io/h2c)
)

// LoadBalancer is how a cluster picks an endpoint.
type LoadBalancer string

const (
	LoadBalancerRoundRobin   LoadBalancer = "RoundRobin"
	LoadBalancerLeastRequest LoadBalancer = "LeastRequest"
)

// Cluster is an upstream: one port of one Service.
type Cluster struct {
	// Name, for example "default/backend-v1:8080" (namespace/service:port).
	Name         string       `json:"name"`
	Protocol     AppProtocol  `json:"protocol"`
	LoadBalancer LoadBalancer `json:"loadBalancer"`
	// Endpoints, sorted by Address then Port. Empty: the Service has no ready endpoints.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// ConnectTimeout bounds each upstream connect (0: the proxy's default).
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
}

// Endpoint is one address of a cluster.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	// Ready is false for endpoints that are not ready; they get no traffic.
	Ready bool   `json:"ready"`
	Zone  string `json:"zone,omitempty"`
}
