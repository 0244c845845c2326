package proxy

// The HTTP filters a connection manager may run before the router, as Envoy
// runs them: envoy.filters.http.local_ratelimit, envoy.filters.http.ext_authz
// and envoy.filters.http.ratelimit. A filter is known by the type of its
// typed_config; its name is the key of its per-route configuration
// (typed_per_filter_config of routes and virtual hosts) and, for ext_authz,
// the namespace of the dynamic metadata it stores.
//
// Filters run in the order of http_filters, after the route is chosen and
// only when one is, whatever the route's action (forward, redirect, direct
// response). A filter that stops the request answers it itself (a "local
// reply"); for a gRPC request (content-type application/grpc) that is an
// HTTP 200 carrying grpc-status (mapped from the HTTP status as Envoy maps
// it) and grpc-message, without a body.
//
// Choices made where Envoy leaves room or where sekisho differs:
//
//   - The local rate limit's token buckets are golang.org/x/time/rate
//     limiters (tokens_per_fill/fill_interval per second, burst max_tokens)
//     that refill continuously rather than once per fill_interval. A request
//     takes a token from the route's bucket and from the bucket of every
//     descriptor it matches, all or none: when one is empty none is taken.
//     A bucket outlives configuration updates as long as its route (route
//     configuration, virtual host and route names) and its token_bucket stay
//     the same. A route's 429 carries x-envoy-ratelimited: true.
//   - Headers an authorization or rate limit service asks for are skipped
//     when the name is not a token, is a pseudo-header, Host,
//     Content-Length, Transfer-Encoding or Connection, or when the value
//     holds CR, LF or NUL.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sekisho/sekisho/proxy/router"
	"github.com/sekisho/sekisho/proxy/upstream"
)

type filterKind uint8

const (
	filterLocalRateLimit filterKind = iota + 1
	filterExtAuthz
	filterRateLimit
)

func (k filterKind) String() string {
	switch k {
	case filterLocalRateLimit:
		return "local_ratelimit"
	case filterExtAuthz:
		return "ext_authz"
	case filterRateLimit:
		return "ratelimit"
	}
	return "an unknown filter"
}

// httpFilter is one HTTP filter of a chain before the router.
type httpFilter struct {
	name  string
	kind  filterKind
	authz *authzFilter
	rl    *rlFilter
	local *localFilter
}

// compileEnv is what compiling filters needs from the configuration being
// compiled, and what it gathers for it.
type compileEnv struct {
	r *Runtime
	// clusters are the configuration's clusters; oldClusters those serving.
	clusters    map[string]*upstream.Cluster
	oldClusters map[string]*upstream.Cluster
	// grpc: the channels the configuration's filters use, by cluster;
	// fresh: those opened for it (closed when it is not applied).
	grpc  map[string]*grpcClient
	fresh []*grpcClient
	// buckets: the local rate limit buckets of the configuration, by key;
	// oldBuckets: the previous configuration's, to carry over.
	buckets    map[string]*tokenBucket
	oldBuckets map[string]*tokenBucket
}

func (r *Runtime) newCompileEnv(old *config) *compileEnv {
	return &compileEnv{
		r:           r,
		oldClusters: old.clusters,
		grpc:        map[string]*grpcClient{},
		buckets:     map[string]*tokenBucket{},
		oldBuckets:  old.buckets,
	}
}

// compileHTTPFilters compiles a connection manager's http_filters: any of
// the filters above, then the router, last.
func compileHTTPFilters(fs []*hcmv3.HttpFilter, env *compileEnv) ([]*httpFilter, error) {
	if len(fs) == 0 || fs[len(fs)-1].GetName() != routerFilterName {
		return nil, fmt.Errorf("http_filters: the last filter must be %q", routerFilterName)
	}
	var out []*httpFilter
	seen := map[string]bool{}
	for i, f := range fs {
		name := f.GetName()
		if i == len(fs)-1 {
			if tc := f.GetTypedConfig(); tc != nil && !tc.MessageIs(&routerv3.Router{}) {
				return nil, fmt.Errorf("http_filters[%d] %q: typed_config: %s is not a Router", i, name, tc.MessageName())
			}
			break
		}
		if name == routerFilterName {
			return nil, fmt.Errorf("http_filters[%d] %q: the router must be the last filter", i, name)
		}
		if name == "" {
			return nil, fmt.Errorf("http_filters[%d]: name is empty", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("http_filters[%d] %q: two filters have this name", i, name)
		}
		seen[name] = true
		tc := f.GetTypedConfig()
		if tc == nil {
			return nil, fmt.Errorf("http_filters[%d] %q: typed_config: missing", i, name)
		}
		msg, err := tc.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: typed_config: %w", i, name, err)
		}
		hf := &httpFilter{name: name}
		switch c := msg.(type) {
		case *localrlv3.LocalRateLimit:
			hf.kind = filterLocalRateLimit
			hf.local, err = compileLocalFilter(name, c, env)
		case *extauthzv3.ExtAuthz:
			hf.kind = filterExtAuthz
			hf.authz, err = compileExtAuthz(name, c, env)
		case *ratelimitv3.RateLimit:
			hf.kind = filterRateLimit
			hf.rl, err = compileRateLimitFilter(name, c, env)
		default:
			err = fmt.Errorf("typed_config: %s is not a filter the proxy runs", tc.MessageName())
		}
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, name, err)
		}
		out = append(out, hf)
	}
	return out, nil
}

// grpcCluster checks the cluster an envoy_grpc service names and returns
// the channel to it. A cluster that CDS no longer has but that is serving
// stays while a filter names it (make before break: the control plane may
// drop it before the listener that uses it).
func (e *compileEnv) grpcCluster(name string) (*grpcClient, error) {
	cl := e.clusters[name]
	if cl == nil {
		cl = e.oldClusters[name]
	}
	if cl == nil {
		return nil, fmt.Errorf("cluster %q does not exist", name)
	}
	if !cl.H2C {
		return nil, fmt.Errorf("cluster %q does not speak HTTP/2 (it needs http2_protocol_options for gRPC)", name)
	}
	return e.grpcClientFor(name, cl.ConnectTimeout)
}

// grpcService checks an envoy_grpc GrpcService and returns its channel and
// timeout (def when it sets none).
func (e *compileEnv) grpcService(gs *corev3.GrpcService, def time.Duration) (*grpcClient, time.Duration, error) {
	eg := gs.GetEnvoyGrpc()
	if eg == nil {
		return nil, 0, errors.New("envoy_grpc is required")
	}
	c, err := e.grpcCluster(eg.GetClusterName())
	if err != nil {
		return nil, 0, fmt.Errorf("envoy_grpc.cluster_name: %w", err)
	}
	timeout := def
	if gs.Timeout != nil {
		if err := gs.GetTimeout().CheckValid(); err != nil || gs.GetTimeout().AsDuration() < 0 {
			return nil, 0, fmt.Errorf("timeout: %v is not a duration", gs.GetTimeout())
		}
		timeout = gs.GetTimeout().AsDuration()
	}
	return c, timeout, nil
}

// httpStatus checks a configured status (nil: def).
func httpStatus(s *typev3.HttpStatus, def int) (int, error) {
	if s == nil {
		return def, nil
	}
	c := int(s.GetCode())
	if c < 200 || c > 599 {
		return 0, fmt.Errorf("code %d is not a final HTTP status", c)
	}
	return c, nil
}

// routeFilter is a route's configuration of one filter: its
// typed_per_filter_config entry, else its virtual host's.
type routeFilter struct {
	kind  filterKind
	authz *authzRoute
	rl    *rlRoute
	local *localRoute
}

// compileRouteFilters compiles the typed_per_filter_config of rc's virtual
// hosts and routes and hangs each route's, with its metric caches, on its
// Ext. The bucket keys name the route configuration, virtual host and route.
func (e *compileEnv) compileRouteFilters(rc *routev3.RouteConfiguration, t *router.Table) error {
	vhs := t.VirtualHosts()
	if len(vhs) != len(rc.GetVirtualHosts()) {
		return fmt.Errorf("route configuration %q: compiled %d virtual hosts of %d", rc.GetName(), len(vhs), len(rc.GetVirtualHosts()))
	}
	for i, vh := range rc.GetVirtualHosts() {
		where := fmt.Sprintf("route configuration %q: virtual_hosts[%d] %q", rc.GetName(), i, vh.GetName())
		scope := rc.GetName() + "\x00" + vh.GetName() + "\x00"
		vhf, err := e.compilePerFilterConfig(vh.GetTypedPerFilterConfig(), scope)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		routes := vhs[i].Routes()
		if len(routes) != len(vh.GetRoutes()) {
			return fmt.Errorf("%s: compiled %d routes of %d", where, len(routes), len(vh.GetRoutes()))
		}
		seen := map[string]int{}
		for j, r := range vh.GetRoutes() {
			n := seen[r.GetName()]
			seen[r.GetName()] = n + 1
			rf, err := e.compilePerFilterConfig(r.GetTypedPerFilterConfig(), scope+r.GetName()+"#"+strconv.Itoa(n))
			if err != nil {
				return fmt.Errorf("%s: routes[%d] %q: %w", where, j, r.GetName(), err)
			}
			ext := e.r.routeExt(routes[j])
			ext.filters = mergeRouteFilters(vhf, rf)
			routes[j].Ext = ext
		}
	}
	return nil
}

// compilePerFilterConfig compiles one typed_per_filter_config map; scope
// names its route (or virtual host) for the buckets.
func (e *compileEnv) compilePerFilterConfig(m map[string]*anypb.Any, scope string) (map[string]*routeFilter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]*routeFilter, len(m))
	for _, name := range names {
		rf, err := e.compileRouteFilter(m[name], scope+"\x00"+name)
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err)
		}
		out[name] = rf
	}
	return out, nil
}

func (e *compileEnv) compileRouteFilter(a *anypb.Any, scope string) (*routeFilter, error) {
	msg, err := a.UnmarshalNew()
	if err != nil {
		return nil, err
	}
	rf := &routeFilter{}
	switch c := msg.(type) {
	case *extauthzv3.ExtAuthzPerRoute:
		rf.kind = filterExtAuthz
		rf.authz, err = compileAuthzRoute(c)
	case *ratelimitv3.RateLimitPerRoute:
		rf.kind = filterRateLimit
		rf.rl, err = compileRateLimitRoute(c)
	case *localrlv3.LocalRateLimit:
		rf.kind = filterLocalRateLimit
		rf.local, err = e.compileLocalRoute(c, scope)
	default:
		err = fmt.Errorf("%s is not the per-route configuration of a filter the proxy runs", a.MessageName())
	}
	if err != nil {
		return nil, err
	}
	return rf, nil
}

// mergeRouteFilters is a route's filter configuration: its own entries,
// else its virtual host's. As in Envoy, the context extensions of an
// ext_authz entry are merged (the route's win) with its virtual host's.
func mergeRouteFilters(vh, rt map[string]*routeFilter) map[string]*routeFilter {
	if len(vh) == 0 {
		return rt
	}
	if len(rt) == 0 {
		return vh
	}
	out := make(map[string]*routeFilter, len(vh)+len(rt))
	for k, v := range vh {
		out[k] = v
	}
	for k, v := range rt {
		p := vh[k]
		if p != nil && p.kind == filterExtAuthz && v.kind == filterExtAuthz && !v.authz.disabled && len(p.authz.ext) > 0 {
			ext := make(map[string]string, len(p.authz.ext)+len(v.authz.ext))
			for ek, ev := range p.authz.ext {
				ext[ek] = ev
			}
			for ek, ev := range v.authz.ext {
				ext[ek] = ev
			}
			v = &routeFilter{kind: filterExtAuthz, authz: &authzRoute{ext: ext}}
		}
		out[k] = v
	}
	return out
}

// checkRouteFilterKinds refuses a route table whose per-route configuration
// of one of the chain's filters is of another filter's type.
func checkRouteFilterKinds(fs []*httpFilter, t *router.Table) error {
	for _, rt := range t.Routes() {
		ext, _ := rt.Ext.(*routeExt)
		if ext == nil || len(ext.filters) == 0 {
			continue
		}
		for _, f := range fs {
			if rf := ext.filters[f.name]; rf != nil && rf.kind != f.kind {
				return fmt.Errorf("route %q: typed_per_filter_config[%q] configures %v, but the chain's filter of that name is %v", rt.Name, f.name, rf.kind, f.kind)
			}
		}
	}
	return nil
}

// routeBuckets lists the local rate limit buckets a compiled table uses.
func routeBuckets(t *router.Table, into map[string]*tokenBucket) {
	for _, rt := range t.Routes() {
		ext, _ := rt.Ext.(*routeExt)
		if ext == nil {
			continue
		}
		for _, rf := range ext.filters {
			if l := rf.local; l != nil {
				into[l.bucket.key] = l.bucket
				for _, d := range l.descriptors {
					into[d.bucket.key] = d.bucket
				}
			}
		}
	}
}

// filterRun is one request's pass through its chain's filters.
type filterRun struct {
	h         *handler
	w         http.ResponseWriter
	req       *http.Request
	route     *router.Route
	start     time.Time
	path      string // normalised
	pathQuery string // :path: path, and "?" and the raw query when there is one
	scheme    string
	// meta is the request's dynamic metadata, by namespace.
	meta map[string]*structpb.Struct
	// resp holds the response header edits of the filters that let the
	// request through, in filter order; they apply last filter first.
	resp [][]hdrOp
	// code and bytes: the status and body size of a filter's answer.
	code  int
	bytes int64
}

// runFilters runs the chain's filters for a request that matched rt. done:
// a filter answered the request (fr.code and fr.bytes say how).
func (h *handler) runFilters(w http.ResponseWriter, req *http.Request, chain *chainConfig, rt *router.Route, path, scheme string, start time.Time) (fr *filterRun, done bool) {
	fr = &filterRun{h: h, w: w, req: req, route: rt, start: start, path: path, pathQuery: path, scheme: scheme}
	if q := req.URL.RawQuery; q != "" {
		fr.pathQuery = path + "?" + q
	}
	ext, _ := rt.Ext.(*routeExt)
	for _, f := range chain.filters {
		var rf *routeFilter
		if ext != nil {
			rf = ext.filters[f.name]
		}
		var stop bool
		switch f.kind {
		case filterLocalRateLimit:
			stop = fr.localRateLimit(f, rf)
		case filterExtAuthz:
			stop = fr.extAuthz(f, rf)
		case filterRateLimit:
			stop = fr.rateLimit(f, rf)
		}
		if stop {
			return fr, true
		}
	}
	return fr, false
}

// addResponse records what a filter adds to the response.
func (fr *filterRun) addResponse(ops []hdrOp) {
	if len(ops) > 0 {
		fr.resp = append(fr.resp, ops)
	}
}

// applyResponse edits the response headers as the filters asked, the last
// filter's edits first (response headers pass the filters in reverse).
func (fr *filterRun) applyResponse(h http.Header) {
	for i := len(fr.resp) - 1; i >= 0; i-- {
		applyHeaderOps(h, fr.resp[i], false)
	}
}

// reply answers the request for a filter: status code, body and headers
// (edit, applied after the defaults); a gRPC request gets its gRPC form.
func (fr *filterRun) reply(code int, body string, edit func(http.Header)) {
	w, req := fr.w, fr.req
	hdr := w.Header()
	if isGRPCRequest(req) {
		hdr["Content-Type"] = []string{"application/grpc"}
		hdr["Grpc-Status"] = []string{strconv.Itoa(grpcStatusOf(code))}
		if body != "" {
			hdr["Grpc-Message"] = []string{grpcMessage(body)}
		}
		if edit != nil {
			edit(hdr)
		}
		fr.applyResponse(hdr)
		hdr["Content-Length"] = []string{"0"}
		fr.code = http.StatusOK
		w.WriteHeader(http.StatusOK)
		return
	}
	if body != "" {
		hdr["Content-Type"] = []string{"text/plain"}
	}
	if edit != nil {
		edit(hdr)
	}
	fr.applyResponse(hdr)
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	fr.code = code
	w.WriteHeader(code)
	if body != "" && req.Method != http.MethodHead {
		n, _ := w.Write([]byte(body))
		fr.bytes = int64(n)
	}
}

// setMetadata stores dynamic metadata under a namespace, merging with what
// is there.
func (fr *filterRun) setMetadata(ns string, s *structpb.Struct) {
	if fr.meta == nil {
		fr.meta = map[string]*structpb.Struct{}
	}
	cur := fr.meta[ns]
	if cur == nil {
		fr.meta[ns] = s
		return
	}
	merged := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(cur.GetFields())+len(s.GetFields()))}
	for k, v := range cur.GetFields() {
		merged.Fields[k] = v
	}
	for k, v := range s.GetFields() {
		merged.Fields[k] = v
	}
	fr.meta[ns] = merged
}

// localAddr is the address the request's connection was accepted on.
func (fr *filterRun) localAddr() net.Addr {
	if rw, ok := fr.w.(*respWriter); ok {
		return rw.c.nc.LocalAddr()
	}
	a, _ := fr.req.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return a
}

// filteredWriter applies the filters' response header edits when the
// response head is written.
type filteredWriter struct {
	http.ResponseWriter
	fr     *filterRun
	edited bool
}

func (w *filteredWriter) edit() {
	if !w.edited {
		w.edited = true
		w.fr.applyResponse(w.ResponseWriter.Header())
	}
}

func (w *filteredWriter) WriteHeader(code int) {
	if code >= 200 {
		w.edit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *filteredWriter) Write(p []byte) (int, error) {
	w.edit()
	return w.ResponseWriter.Write(p)
}

func (w *filteredWriter) Flush() {
	w.edit()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *filteredWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	return hj.Hijack()
}

func (w *filteredWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isGRPCRequest reports whether Envoy takes the request for gRPC:
// content-type application/grpc, alone or followed by '+' or ';'.
func isGRPCRequest(req *http.Request) bool {
	vs := req.Header["Content-Type"]
	if len(vs) == 0 {
		return false
	}
	ct := vs[0]
	const p = "application/grpc"
	if !strings.HasPrefix(ct, p) {
		return false
	}
	return len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';'
}

// grpcStatusOf maps an HTTP status to a gRPC status code as Envoy does.
func grpcStatusOf(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// grpcMessage percent-encodes a grpc-message value.
func grpcMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// hdrAction is how a header edit applies.
type hdrAction uint8

const (
	hdrSet               hdrAction = iota // replace every value, or add
	hdrAdd                                // add a value
	hdrAppend                             // join to the existing value with ","; nothing when absent
	hdrAddIfAbsent                        // add when absent
	hdrOverwriteIfExists                  // replace when present
)

type hdrOp struct {
	key    string // canonical
	value  string
	action hdrAction
}

// headerOps turns the header options a service answered into edits. For
// the request headers (toRequest), the deprecated append=true joins the
// value to the existing one; for response headers it adds a value. Without
// append, append_action says how.
func headerOps(opts []*corev3.HeaderValueOption, toRequest bool) []hdrOp {
	if len(opts) == 0 {
		return nil
	}
	out := make([]hdrOp, 0, len(opts))
	for _, o := range opts {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		if v == "" && len(o.GetHeader().GetRawValue()) > 0 {
			v = string(o.GetHeader().GetRawValue())
		}
		key, ok := editableHeader(k, v)
		if !ok {
			continue
		}
		op := hdrOp{key: key, value: v}
		appendSet, appendValue := legacyAppend(o)
		switch {
		case appendSet && appendValue && toRequest:
			op.action = hdrAppend
		case appendSet && appendValue:
			op.action = hdrAdd
		case appendSet:
			op.action = hdrSet
		default:
			switch o.GetAppendAction() {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				op.action = hdrAdd
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				op.action = hdrAddIfAbsent
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				op.action = hdrOverwriteIfExists
			default:
				op.action = hdrSet
			}
		}
		out = append(out, op)
	}
	return out
}

// legacyAppend reads the deprecated append field, which services still
// send and which, when set, takes precedence over append_action.
func legacyAppend(o *corev3.HeaderValueOption) (set, value bool) {
	a := o.GetAppend() //lint:ignore SA1019 honoured as Envoy honours it
	return a != nil, a.GetValue()
}

// editableHeader returns the canonical key of a header a service may edit.
func editableHeader(k, v string) (string, bool) {
	if k == "" || k[0] == ':' || !validToken(k) {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return "", false
		}
	}
	key := textproto.CanonicalMIMEHeaderKey(k)
	switch key {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection":
		return "", false
	}
	return key, true
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// applyHeaderOps edits h. In a local reply (local), the first replacing
// edit of a header drops what the reply had, and later ones add to it, so
// that a service can send several values (Set-Cookie).
func applyHeaderOps(h http.Header, ops []hdrOp, local bool) {
	var replaced map[string]bool
	for _, op := range ops {
		switch op.action {
		case hdrSet:
			if !local {
				h[op.key] = []string{op.value}
				continue
			}
			if !replaced[op.key] {
				if replaced == nil {
					replaced = map[string]bool{}
				}
				replaced[op.key] = true
				delete(h, op.key)
			}
			h[op.key] = append(h[op.key], op.value)
		case hdrAdd:
			h[op.key] = append(h[op.key], op.value)
		case hdrAppend:
			if vv := h[op.key]; len(vv) > 0 {
				h[op.key] = []string{strings.Join(vv, ",") + "," + op.value}
			}
		case hdrAddIfAbsent:
			if _, ok := h[op.key]; !ok {
				h[op.key] = []string{op.value}
			}
		case hdrOverwriteIfExists:
			if _, ok := h[op.key]; ok {
				h[op.key] = []string{op.value}
			}
		}
	}
}

// grpcClient is the channel the filter calls (nil: none).
func (f *httpFilter) grpcClient() *grpcClient {
	switch {
	case f.authz != nil:
		return f.authz.client
	case f.rl != nil:
		return f.rl.client
	}
	return nil
}
