// Package router compiles xDS RouteConfigurations into immutable route tables
// and matches requests against them, as Envoy's router does for the fields
// sekisho's control plane emits.
//
// A Table is built once per configuration and never changes; Match allocates
// nothing on the common path (no regular expressions, headers with one value).
package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/sekisho/sekisho/internal/httppath"
)

// MetadataNamespace is the filter_metadata key whose "route" field names a
// route in metrics and logs.
const MetadataNamespace = "sekisho.dev"

// Table is a compiled RouteConfiguration.
type Table struct {
	Name     string
	exact    map[string]*VirtualHost
	suffixes []wildDomain // "*x": longest first
	prefixes []wildDomain // "x*": longest first
	any      *VirtualHost
	routes   []*Route
	vhosts   []*VirtualHost // in configuration order
	// readsHeaders: some route matches on a request header.
	readsHeaders bool
}

type wildDomain struct {
	part string
	vh   *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name   string
	routes []*Route
	// bySegment holds, for each first path segment some route names exactly,
	// the routes that can match a path with that first segment, in order;
	// wild holds the routes that can match any path. nil: no index.
	bySegment map[string][]*Route
	wild      []*Route
}

// Action is what a route does with the requests it takes.
type Action int

const (
	ActionForward Action = iota
	ActionRedirect
	ActionDirect
)

// Route is a compiled route.
type Route struct {
	// Name is the route's xDS name; StatName the "route" field of its
	// sekisho.dev metadata (or Name when there is none).
	Name     string
	StatName string
	Action   Action

	pathKind pathKind
	path     string
	regex    *regexp.Regexp
	headers  []headerMatcher
	queries  []queryMatcher

	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation

	Forward  *Forward
	Redirect *Redirect
	Direct   *Direct

	// Ext is free for the user of the table (the proxy hangs per-route state
	// on it while compiling); the router never reads it.
	Ext any
}

type pathKind int

const (
	pathPrefix pathKind = iota
	pathExact
	pathSeparated
	pathRegex
)

type headerMatcher struct {
	key     string // canonical MIME key, or ":method"
	exact   string
	regex   *regexp.Regexp
	present bool // present_match: presence only
	isRegex bool
	invert  bool
}

type queryMatcher struct {
	name    string
	exact   string
	regex   *regexp.Regexp
	isRegex bool
	present bool
}

// HeaderOp is one header to add.
type HeaderOp struct {
	Key    string // canonical MIME key
	Value  string
	Action corev3.HeaderValueOption_HeaderAppendAction
}

// HeaderMutation removes, then adds headers.
type HeaderMutation struct {
	Remove []string // canonical MIME keys
	Add    []HeaderOp
}

// Empty reports whether m does nothing.
func (m *HeaderMutation) Empty() bool { return len(m.Remove) == 0 && len(m.Add) == 0 }

// Apply edits h.
func (m *HeaderMutation) Apply(h http.Header) {
	for _, k := range m.Remove {
		delete(h, k)
	}
	for i := range m.Add {
		op := &m.Add[i]
		switch op.Action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h[op.Key] = append(h[op.Key], op.Value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if _, ok := h[op.Key]; !ok {
				h[op.Key] = []string{op.Value}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[op.Key] = []string{op.Value}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if _, ok := h[op.Key]; ok {
				h[op.Key] = []string{op.Value}
			}
		}
	}
}

// Forward is a route action.
type Forward struct {
	// Cluster is set for a single cluster; Weighted otherwise.
	Cluster     string
	Weighted    []WeightedCluster
	totalWeight uint64
	// NotFoundCode answers requests for a cluster that does not exist.
	NotFoundCode int

	HostRewrite   string
	prefixRewrite string
	hasPrefix     bool
	regexRewrite  *regexp.Regexp
	regexSubst    string

	// Timeout bounds the whole request, retries included; 0: none.
	Timeout time.Duration
	Retry   *RetryPolicy
	Mirrors []Mirror
}

// WeightedCluster is one share of a weighted forward.
type WeightedCluster struct {
	Name            string
	Weight          uint32
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
}

// RetryPolicy says when an attempt upstream is retried.
type RetryPolicy struct {
	NumRetries     int
	PerTryTimeout  time.Duration
	ConnectFailure bool
	Reset          bool
	Status5xx      bool // "5xx": any 5xx, connect failures and resets
	GatewayError   bool // "gateway-error": 502, 503, 504
	RetriableCodes map[int]bool
	BaseInterval   time.Duration
	MaxInterval    time.Duration
}

// RetriableStatus reports whether an upstream response code is retried.
func (p *RetryPolicy) RetriableStatus(code int) bool {
	switch {
	case p.Status5xx && code >= 500:
		return true
	case p.GatewayError && (code == 502 || code == 503 || code == 504):
		return true
	}
	return p.RetriableCodes[code]
}

// Backoff is the wait before retry n (1 for the first retry): a random time
// up to (2^n - 1) times the base interval, capped at the max interval.
func (p *RetryPolicy) Backoff(n int) time.Duration {
	if n > 20 {
		n = 20
	}
	limit := time.Duration((1<<n)-1) * p.BaseInterval
	if limit > p.MaxInterval {
		limit = p.MaxInterval
	}
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

// Mirror copies a fraction of requests to Cluster.
type Mirror struct {
	Cluster  string
	Fraction Fraction
}

// Sampled reports whether this request is mirrored.
func (m *Mirror) Sampled() bool { return m.Fraction.Sample() }

// Fraction is a sampled share of requests: Num per Den.
type Fraction struct{ Num, Den uint64 }

// All is every request.
var All = Fraction{Num: 1, Den: 1}

// CompileFraction reads a RuntimeFractionalPercent's default value (the
// proxy has no runtime); def is the fraction when p is nil.
func CompileFraction(p *corev3.RuntimeFractionalPercent, def Fraction) (Fraction, error) {
	if p == nil {
		return def, nil
	}
	dv := p.GetDefaultValue()
	f := Fraction{Num: uint64(dv.GetNumerator())}
	switch dv.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		f.Den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		f.Den = 10000
	case typev3.FractionalPercent_MILLION:
		f.Den = 1000000
	default:
		return f, fmt.Errorf("default_value.denominator: %v is not supported", dv.GetDenominator())
	}
	return f, nil
}

// Sample reports whether this request falls in the fraction.
func (f Fraction) Sample() bool {
	switch {
	case f.Num >= f.Den:
		return true
	case f.Num == 0:
		return false
	}
	return rand.Uint64N(f.Den) < f.Num
}

// Redirect is a redirect action.
type Redirect struct {
	Scheme       string
	Host         string
	Port         uint32
	PathRedirect string
	hasPath      bool
	prefix       string
	hasPrefix    bool
	regex        *regexp.Regexp
	regexSubst   string
	Code         int
}

// Direct is a direct response.
type Direct struct {
	Status int
	Body   []byte
}

// Compile builds the Table of rc. An error names the virtual host, route and
// field it cannot honour.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	for i, vh := range rc.GetVirtualHosts() {
		cvh, err := compileVirtualHost(vh)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual_hosts[%d] %q: %w", rc.GetName(), i, vh.GetName(), err)
		}
		t.routes = append(t.routes, cvh.routes...)
		t.vhosts = append(t.vhosts, cvh)
		for _, rt := range cvh.routes {
			for i := range rt.headers {
				if rt.headers[i].key != ":method" {
					t.readsHeaders = true
				}
			}
		}
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any != nil {
					return nil, fmt.Errorf("route configuration %q: domain \"*\" is in two virtual hosts", rc.GetName())
				}
				t.any = cvh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildDomain{d[1:], cvh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildDomain{d[:len(d)-1], cvh})
			case d == "":
				return nil, fmt.Errorf("route configuration %q: virtual host %q: empty domain", rc.GetName(), vh.GetName())
			default:
				if _, dup := t.exact[d]; dup {
					return nil, fmt.Errorf("route configuration %q: domain %q is in two virtual hosts", rc.GetName(), d)
				}
				t.exact[d] = cvh
			}
		}
	}
	sort.SliceStable(t.suffixes, func(i, j int) bool { return len(t.suffixes[i].part) > len(t.suffixes[j].part) })
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].part) > len(t.prefixes[j].part) })
	return t, nil
}

// Routes returns every route of the table, virtual host by virtual host.
func (t *Table) Routes() []*Route { return t.routes }

// ReadsHeaders reports whether matching a request may read its header
// (some route has a header match other than on the method).
func (t *Table) ReadsHeaders() bool { return t.readsHeaders }

// VirtualHosts returns the table's virtual hosts in the order of the
// RouteConfiguration's virtual_hosts.
func (t *Table) VirtualHosts() []*VirtualHost { return t.vhosts }

// Routes returns the virtual host's routes in the order of its routes.
func (vh *VirtualHost) Routes() []*Route { return vh.routes }

// VirtualHost returns the virtual host for a Host header (port and case are
// ignored): an exact domain, else the longest "*suffix", else the longest
// "prefix*", else "*"; nil when none.
func (t *Table) VirtualHost(host string) *VirtualHost {
	host = stripPort(host)
	host = lowerASCII(host)
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for i := range t.suffixes {
		w := &t.suffixes[i]
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for i := range t.prefixes {
		w := &t.prefixes[i]
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return t.any
}

// Match returns the first route of the request's virtual host that takes it,
// or nil. path is the normalised path (see httppath.Normalize); the query, headers
// and method come from r.
func (t *Table) Match(host, path string, r *http.Request) *Route {
	vh := t.VirtualHost(host)
	if vh == nil {
		return nil
	}
	return vh.Match(path, r)
}

// Match returns the first route of vh that takes the request, or nil.
func (vh *VirtualHost) Match(path string, r *http.Request) *Route {
	routes := vh.routes
	if vh.bySegment != nil {
		if b, ok := vh.bySegment[firstSegment(path)]; ok {
			routes = b
		} else {
			routes = vh.wild
		}
	}
	for _, rt := range routes {
		if rt.matches(path, r) {
			return rt
		}
	}
	return nil
}

func firstSegment(p string) string {
	if len(p) == 0 {
		return ""
	}
	p = p[1:]
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

func stripPort(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func (rt *Route) matches(path string, r *http.Request) bool {
	switch rt.pathKind {
	case pathPrefix:
		if !strings.HasPrefix(path, rt.path) {
			return false
		}
	case pathExact:
		if path != rt.path {
			return false
		}
	case pathSeparated:
		if !strings.HasPrefix(path, rt.path) || (len(path) > len(rt.path) && path[len(rt.path)] != '/') {
			return false
		}
	case pathRegex:
		if !rt.regex.MatchString(path) {
			return false
		}
	}
	for i := range rt.headers {
		if !rt.headers[i].matches(r) {
			return false
		}
	}
	if len(rt.queries) > 0 {
		for i := range rt.queries {
			if !rt.queries[i].matches(r.URL.RawQuery) {
				return false
			}
		}
	}
	return true
}

func (m *headerMatcher) matches(r *http.Request) bool {
	if m.key == ":method" {
		return m.test(r.Method, true)
	}
	v, ok := headerValue(r.Header[m.key])
	return m.test(v, ok)
}

// headerValue is the value a header matcher sees: several values are
// matched as one, joined by ",".
func headerValue(vs []string) (string, bool) {
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// test matches a header's value (ok: the header is present).
func (m *headerMatcher) test(v string, ok bool) bool {
	var res bool
	switch {
	case m.present:
		res = ok
	case !ok:
		res = false
	case m.isRegex:
		res = m.regex.MatchString(v)
	default:
		res = v == m.exact
	}
	return res != m.invert
}

// matches looks the parameter up in a raw query: the first parameter with the
// name counts; its value is percent-decoded before it is compared.
func (m *queryMatcher) matches(raw string) bool {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != m.name {
			if strings.ContainsAny(k, "%+") {
				dk, err := url.QueryUnescape(k)
				if err != nil || dk != m.name {
					continue
				}
			} else {
				continue
			}
		}
		if m.present {
			return true
		}
		if strings.ContainsAny(v, "%+") {
			if dv, err := url.QueryUnescape(v); err == nil {
				v = dv
			}
		}
		if m.isRegex {
			return m.regex.MatchString(v)
		}
		return v == m.exact
	}
	return false
}

// PickCluster returns the cluster this request goes to and, for a weighted
// forward, its share.
func (f *Forward) PickCluster() (string, *WeightedCluster) {
	if len(f.Weighted) == 0 {
		return f.Cluster, nil
	}
	n := rand.Uint64N(f.totalWeight)
	for i := range f.Weighted {
		w := &f.Weighted[i]
		if n < uint64(w.Weight) {
			return w.Name, w
		}
		n -= uint64(w.Weight)
	}
	w := &f.Weighted[len(f.Weighted)-1]
	return w.Name, w
}

// RewritePath is the path sent upstream for a normalised path.
func (f *Forward) RewritePath(rt *Route, path string) string {
	switch {
	case f.hasPrefix:
		return replacePrefix(rt, path, f.prefixRewrite)
	case f.regexRewrite != nil:
		return f.regexRewrite.ReplaceAllString(path, f.regexSubst)
	}
	return path
}

func replacePrefix(rt *Route, path, with string) string {
	switch rt.pathKind {
	case pathPrefix, pathSeparated:
		return with + path[len(rt.path):]
	default:
		// A path match: the whole path is replaced.
		return with
	}
}

// Location is the redirect's Location for a request with this scheme, Host
// header, normalised path and raw query.
func (d *Redirect) Location(rt *Route, scheme, host, path, rawQuery string) string {
	newScheme := scheme
	if d.Scheme != "" {
		newScheme = d.Scheme
	}
	h, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		h, port = host[:i], host[i+1:]
	}
	if d.Host != "" {
		h = d.Host
	}
	if d.Port != 0 {
		port = strconv.FormatUint(uint64(d.Port), 10)
	}
	if (newScheme == "http" && port == "80") || (newScheme == "https" && port == "443") {
		port = ""
	}
	newPath := path
	query := rawQuery
	switch {
	case d.hasPath:
		newPath = d.PathRedirect
		if i := strings.IndexByte(newPath, '?'); i >= 0 {
			newPath, query = newPath[:i], newPath[i+1:]
		}
	case d.hasPrefix:
		newPath = replacePrefix(rt, path, d.prefix)
	case d.regex != nil:
		newPath = d.regex.ReplaceAllString(path, d.regexSubst)
	}
	var b strings.Builder
	b.Grow(len(newScheme) + len(h) + len(newPath) + len(query) + 12)
	b.WriteString(newScheme)
	b.WriteString("://")
	b.WriteString(h)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(httppath.Forward(newPath))
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

func compileVirtualHost(vh *routev3.VirtualHost) (*VirtualHost, error) {
	out := &VirtualHost{Name: vh.GetName()}
	for i, r := range vh.GetRoutes() {
		cr, err := compileRoute(r)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, r.GetName(), err)
		}
		out.routes = append(out.routes, cr)
	}
	out.buildIndex()
	return out, nil
}

// buildIndex groups routes by the first path segment they need, when that
// saves work, keeping each group in route order.
func (vh *VirtualHost) buildIndex() {
	if len(vh.routes) < 16 {
		return
	}
	segOf := func(rt *Route) (string, bool) {
		switch rt.pathKind {
		case pathExact, pathSeparated:
			if len(rt.path) > 1 {
				return firstSegment(rt.path), true
			}
		case pathPrefix:
			rest := rt.path[min(1, len(rt.path)):]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				return rest[:i], true
			}
		}
		return "", false
	}
	segs := map[string]bool{}
	var wild []*Route
	for _, rt := range vh.routes {
		if s, ok := segOf(rt); ok {
			segs[s] = true
		} else {
			wild = append(wild, rt)
		}
	}
	if len(segs) < 2 || len(segs)*len(wild) > 1<<20 {
		return
	}
	vh.bySegment = make(map[string][]*Route, len(segs))
	for _, rt := range vh.routes {
		if s, ok := segOf(rt); ok {
			vh.bySegment[s] = append(vh.bySegment[s], rt)
		} else {
			for s := range segs {
				vh.bySegment[s] = append(vh.bySegment[s], rt)
			}
		}
	}
	vh.wild = wild
}

func compileRegex(rm *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	// safe_regex matches the whole string.
	re, err := regexp.Compile("^(?:" + rm.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", rm.GetRegex(), err)
	}
	return re, nil
}

func compileRoute(r *routev3.Route) (*Route, error) {
	rt := &Route{Name: r.GetName(), StatName: r.GetName()}
	if md := r.GetMetadata().GetFilterMetadata()[MetadataNamespace]; md != nil {
		if v := md.GetFields()["route"].GetStringValue(); v != "" {
			rt.StatName = v
		}
	}
	m := r.GetMatch()
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.pathKind, rt.path = pathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		rt.pathKind, rt.path = pathExact, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		rt.pathKind, rt.path = pathSeparated, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex)
		if err != nil {
			return nil, fmt.Errorf("match.safe_regex: %w", err)
		}
		rt.pathKind, rt.regex = pathRegex, re
	default:
		return nil, fmt.Errorf("match: path specifier %T is not supported", ps)
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(h, routePseudoHeaders)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d]%w", i, err)
		}
		rt.headers = append(rt.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := queryMatcher{name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			if err := stringMatch(s.StringMatch, &qm.exact, &qm.regex, &qm.isRegex); err != nil {
				return nil, fmt.Errorf("match.query_parameters[%d] (%s).string_match: %w", i, q.GetName(), err)
			}
		case *routev3.QueryParameterMatcher_PresentMatch:
			if !s.PresentMatch {
				return nil, fmt.Errorf("match.query_parameters[%d] (%s): present_match false is not supported", i, q.GetName())
			}
			qm.present = true
		default:
			return nil, fmt.Errorf("match.query_parameters[%d] (%s): matcher %T is not supported", i, q.GetName(), s)
		}
		rt.queries = append(rt.queries, qm)
	}

	var err error
	if rt.RequestHeaders, err = mutation(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if rt.ResponseHeaders, err = mutation(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}

	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		rt.Action = ActionForward
		rt.Forward, err = compileForward(a.Route)
		if err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	case *routev3.Route_Redirect:
		rt.Action = ActionRedirect
		rt.Redirect, err = compileRedirect(a.Redirect)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
	case *routev3.Route_DirectResponse:
		rt.Action = ActionDirect
		d := &Direct{Status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch s := b.GetSpecifier().(type) {
			case *corev3.DataSource_InlineString:
				d.Body = []byte(s.InlineString)
			case *corev3.DataSource_InlineBytes:
				d.Body = s.InlineBytes
			default:
				return nil, fmt.Errorf("direct_response.body: data source %T is not supported", s)
			}
		}
		if d.Status < 200 || d.Status > 599 {
			return nil, fmt.Errorf("direct_response.status: %d is not a final status code", d.Status)
		}
		rt.Direct = d
	default:
		return nil, fmt.Errorf("action %T is not supported", a)
	}
	return rt, nil
}

// routePseudoHeaders are the pseudo-headers a route's match may name.
var routePseudoHeaders = map[string]bool{":method": true}

// compileHeaderMatcher compiles one HeaderMatcher; pseudo lists the
// pseudo-headers it may name. An error starts with what it is about, to
// follow the matcher's own path.
func compileHeaderMatcher(h *routev3.HeaderMatcher, pseudo map[string]bool) (headerMatcher, error) {
	hm := headerMatcher{invert: h.GetInvertMatch()}
	if strings.HasPrefix(h.GetName(), ":") {
		if !pseudo[h.GetName()] {
			return hm, fmt.Errorf(": pseudo-header %q is not supported", h.GetName())
		}
		hm.key = h.GetName()
	} else {
		if h.GetName() == "" {
			return hm, fmt.Errorf(".name: empty")
		}
		hm.key = textproto.CanonicalMIMEHeaderKey(h.GetName())
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		if err := stringMatch(s.StringMatch, &hm.exact, &hm.regex, &hm.isRegex); err != nil {
			return hm, fmt.Errorf(" (%s).string_match: %w", h.GetName(), err)
		}
	case *routev3.HeaderMatcher_PresentMatch:
		if !s.PresentMatch {
			hm.invert = !hm.invert
		}
		hm.present = true
	default:
		return hm, fmt.Errorf(" (%s): matcher %T is not supported", h.GetName(), s)
	}
	return hm, nil
}

// HeaderMatch is a compiled HeaderMatcher for use outside route matching
// (rate limit actions). Besides header names it may name the pseudo-headers
// ":method", ":path" (the normalised path and the query), ":authority" and
// ":scheme".
type HeaderMatch struct{ m headerMatcher }

var actionPseudoHeaders = map[string]bool{":method": true, ":path": true, ":authority": true, ":scheme": true}

// CompileHeaderMatch compiles h. An error starts with what it is about, to
// follow the matcher's own path ("headers[0]" + err).
func CompileHeaderMatch(h *routev3.HeaderMatcher) (*HeaderMatch, error) {
	m, err := compileHeaderMatcher(h, actionPseudoHeaders)
	if err != nil {
		return nil, err
	}
	return &HeaderMatch{m: m}, nil
}

// Matches reports whether the request matches; pathQuery is its normalised
// path with "?" and the raw query when there is one, scheme "http" or
// "https".
func (hm *HeaderMatch) Matches(r *http.Request, pathQuery, scheme string) bool {
	m := &hm.m
	switch m.key {
	case ":method":
		return m.test(r.Method, true)
	case ":path":
		return m.test(pathQuery, true)
	case ":authority":
		return m.test(r.Host, true)
	case ":scheme":
		return m.test(scheme, true)
	}
	v, ok := headerValue(r.Header[m.key])
	return m.test(v, ok)
}

func stringMatch(sm *matcherv3.StringMatcher, exact *string, re **regexp.Regexp, isRegex *bool) error {
	if sm.GetIgnoreCase() {
		return fmt.Errorf("ignore_case is not supported")
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		*exact = p.Exact
	case *matcherv3.StringMatcher_SafeRegex:
		r, err := compileRegex(p.SafeRegex)
		if err != nil {
			return fmt.Errorf("safe_regex: %w", err)
		}
		*re, *isRegex = r, true
	default:
		return fmt.Errorf("pattern %T is not supported", p)
	}
	return nil
}

func mutation(add []*corev3.HeaderValueOption, remove []string) (HeaderMutation, error) {
	var m HeaderMutation
	for i, name := range remove {
		if name == "" || strings.HasPrefix(name, ":") {
			return m, fmt.Errorf("headers_to_remove[%d]: %q may not be removed", i, name)
		}
		m.Remove = append(m.Remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	for i, o := range add {
		k := o.GetHeader().GetKey()
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return m, fmt.Errorf("headers_to_add[%d]: %q may not be added", i, k)
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_ADD_IF_ABSENT,
			corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		default:
			return m, fmt.Errorf("headers_to_add[%d]: append_action %v is not supported", i, o.GetAppendAction())
		}
		if o.GetHeader().GetRawValue() != nil {
			return m, fmt.Errorf("headers_to_add[%d]: raw_value is not supported", i)
		}
		m.Add = append(m.Add, HeaderOp{Key: textproto.CanonicalMIMEHeaderKey(k), Value: o.GetHeader().GetValue(), Action: o.GetAppendAction()})
	}
	return m, nil
}

// substitution turns an RE2 substitution ("\1" names a group) into Go's
// template syntax ("${1}"), with '$' literal.
func substitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteString("}")
			i++
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func compileRewriteRegex(rs *matcherv3.RegexMatchAndSubstitute) (*regexp.Regexp, string, error) {
	// A rewrite pattern matches anywhere (every match is replaced).
	re, err := regexp.Compile(rs.GetPattern().GetRegex())
	if err != nil {
		return nil, "", fmt.Errorf("pattern %q: %w", rs.GetPattern().GetRegex(), err)
	}
	return re, substitution(rs.GetSubstitution()), nil
}

func compileForward(ra *routev3.RouteAction) (*Forward, error) {
	f := &Forward{NotFoundCode: http.StatusServiceUnavailable, Timeout: 15 * time.Second}
	switch ra.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
	case routev3.RouteAction_NOT_FOUND:
		f.NotFoundCode = http.StatusNotFound
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		f.NotFoundCode = http.StatusInternalServerError
	}
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		f.Cluster = cs.Cluster
	case *routev3.RouteAction_WeightedClusters:
		for i, c := range cs.WeightedClusters.GetClusters() {
			w := WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()}
			var err error
			if w.RequestHeaders, err = mutation(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove()); err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d] %q: %w", i, c.GetName(), err)
			}
			if w.ResponseHeaders, err = mutation(c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove()); err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d] %q: %w", i, c.GetName(), err)
			}
			if w.Weight == 0 {
				continue
			}
			f.totalWeight += uint64(w.Weight)
			f.Weighted = append(f.Weighted, w)
		}
		if f.totalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: the weights add up to 0")
		}
	default:
		return nil, fmt.Errorf("cluster specifier %T is not supported", cs)
	}
	f.HostRewrite = ra.GetHostRewriteLiteral()
	if ra.GetPrefixRewrite() != "" {
		f.prefixRewrite, f.hasPrefix = ra.GetPrefixRewrite(), true
	}
	if rr := ra.GetRegexRewrite(); rr != nil {
		if f.hasPrefix {
			return nil, fmt.Errorf("prefix_rewrite and regex_rewrite are both set")
		}
		var err error
		if f.regexRewrite, f.regexSubst, err = compileRewriteRegex(rr); err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
	}
	if ra.Timeout != nil {
		f.Timeout = ra.GetTimeout().AsDuration()
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		p := &RetryPolicy{NumRetries: 1, BaseInterval: 25 * time.Millisecond}
		if rp.NumRetries != nil {
			p.NumRetries = int(rp.GetNumRetries().GetValue())
		}
		if rp.PerTryTimeout != nil {
			p.PerTryTimeout = rp.GetPerTryTimeout().AsDuration()
		}
		for _, on := range strings.Split(rp.GetRetryOn(), ",") {
			switch strings.TrimSpace(on) {
			case "":
			case "connect-failure":
				p.ConnectFailure = true
			case "reset":
				p.Reset = true
			case "5xx":
				p.Status5xx, p.ConnectFailure, p.Reset = true, true, true
			case "gateway-error":
				p.GatewayError, p.ConnectFailure, p.Reset = true, true, true
			case "retriable-status-codes":
				p.RetriableCodes = map[int]bool{}
			default:
				return nil, fmt.Errorf("retry_policy.retry_on: %q is not supported", on)
			}
		}
		if p.RetriableCodes != nil {
			for _, c := range rp.GetRetriableStatusCodes() {
				p.RetriableCodes[int(c)] = true
			}
		}
		if bo := rp.GetRetryBackOff(); bo != nil {
			if bo.BaseInterval != nil {
				p.BaseInterval = bo.GetBaseInterval().AsDuration()
			}
			if bo.MaxInterval != nil {
				p.MaxInterval = bo.GetMaxInterval().AsDuration()
			}
		}
		if p.MaxInterval == 0 {
			p.MaxInterval = 10 * p.BaseInterval
		}
		f.Retry = p
	}
	for i, mp := range ra.GetRequestMirrorPolicies() {
		if mp.GetCluster() == "" {
			return nil, fmt.Errorf("request_mirror_policies[%d]: cluster is empty", i)
		}
		frac, err := CompileFraction(mp.GetRuntimeFraction(), All)
		if err != nil {
			return nil, fmt.Errorf("request_mirror_policies[%d]: runtime_fraction: %w", i, err)
		}
		m := Mirror{Cluster: mp.GetCluster(), Fraction: frac}
		f.Mirrors = append(f.Mirrors, m)
	}
	return f, nil
}

func compileRedirect(ra *routev3.RedirectAction) (*Redirect, error) {
	d := &Redirect{Host: ra.GetHostRedirect(), Port: ra.GetPortRedirect()}
	if s := ra.GetSchemeRedirect(); s != "" {
		d.Scheme = strings.ToLower(s)
	}
	if ra.GetHttpsRedirect() {
		d.Scheme = "https"
	}
	switch p := ra.GetPathRewriteSpecifier().(type) {
	case nil:
	case *routev3.RedirectAction_PathRedirect:
		d.PathRedirect, d.hasPath = p.PathRedirect, true
	case *routev3.RedirectAction_PrefixRewrite:
		d.prefix, d.hasPrefix = p.PrefixRewrite, true
	case *routev3.RedirectAction_RegexRewrite:
		var err error
		if d.regex, d.regexSubst, err = compileRewriteRegex(p.RegexRewrite); err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
	}
	switch ra.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		d.Code = 301
	case routev3.RedirectAction_FOUND:
		d.Code = 302
	case routev3.RedirectAction_SEE_OTHER:
		d.Code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		d.Code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		d.Code = 308
	default:
		return nil, fmt.Errorf("response_code: %v is not supported", ra.GetResponseCode())
	}
	return d, nil
}
