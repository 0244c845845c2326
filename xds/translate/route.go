package translate

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ir"
)

// translateRouteConfig builds the route table of one filter chain.
func (t *translator) translateRouteConfig(fc *ir.FilterChain) (*routev3.RouteConfiguration, error) {
	rc := &routev3.RouteConfiguration{
		Name: fc.Name,
		// The invalid share of a Forward goes to a cluster that is never
		// defined; see InvalidBackendCluster.
		ValidateClusters: wrapperspb.Bool(false),
		// Hostnames match whatever port the client put in Host, as the
		// Gateway API's hostname semantics need.
		IgnorePortInHostMatching: true,
		VirtualHosts:             make([]*routev3.VirtualHost, 0, len(fc.VirtualHosts)),
	}
	filters := filtersOf(fc)
	vhostNames := map[string]bool{}
	domains := map[string]string{} // domain -> virtual host
	for i, vh := range fc.VirtualHosts {
		if vh == nil {
			return nil, fmt.Errorf("virtualHosts[%d] is nil", i)
		}
		if vh.Name == "" {
			return nil, fmt.Errorf("virtualHosts[%d]: name is empty", i)
		}
		if vhostNames[vh.Name] {
			return nil, fmt.Errorf("virtual host %q: name is used twice", vh.Name)
		}
		vhostNames[vh.Name] = true
		if len(vh.Domains) == 0 {
			return nil, fmt.Errorf("virtual host %q: domains: a virtual host needs at least one domain", vh.Name)
		}
		for _, d := range vh.Domains {
			if d == "" {
				return nil, fmt.Errorf("virtual host %q: domains: empty domain", vh.Name)
			}
			if other, ok := domains[d]; ok {
				return nil, fmt.Errorf("virtual host %q: domains: %q is also a domain of virtual host %q", vh.Name, d, other)
			}
			domains[d] = vh.Name
		}
		out := &routev3.VirtualHost{
			Name:    vh.Name,
			Domains: append([]string(nil), vh.Domains...),
			Routes:  make([]*routev3.Route, 0, len(vh.Routes)),
		}
		for j, r := range vh.Routes {
			if r == nil {
				return nil, fmt.Errorf("virtual host %q: routes[%d] is nil", vh.Name, j)
			}
			route, err := t.translateRoute(r)
			if err == nil {
				err = routePolicies(route, r, filters)
			}
			if err != nil {
				return nil, fmt.Errorf("virtual host %q: route %q: %w", vh.Name, r.Name, err)
			}
			out.Routes = append(out.Routes, route)
		}
		if err := vhostPolicies(out, filters); err != nil {
			return nil, fmt.Errorf("virtual host %q: %w", vh.Name, err)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, out)
	}
	return rc, nil
}

func (t *translator) translateRoute(r *ir.Route) (*routev3.Route, error) {
	if r.Name == "" {
		return nil, errors.New("name is empty")
	}
	match, err := translateMatch(&r.Match)
	if err != nil {
		return nil, err
	}
	route := &routev3.Route{
		Name:     r.Name,
		Match:    match,
		Metadata: routeMetadata(r),
	}
	if route.RequestHeadersToAdd, route.RequestHeadersToRemove, err = headerMutation(r.RequestHeaders); err != nil {
		return nil, fmt.Errorf("requestHeaders: %w", err)
	}
	if route.ResponseHeadersToAdd, route.ResponseHeadersToRemove, err = headerMutation(r.ResponseHeaders); err != nil {
		return nil, fmt.Errorf("responseHeaders: %w", err)
	}

	actions := 0
	for _, set := range []bool{r.Forward != nil, r.Redirect != nil, r.DirectResponse != nil} {
		if set {
			actions++
		}
	}
	if actions != 1 {
		return nil, fmt.Errorf("exactly one of forward, redirect and directResponse must be set, not %d", actions)
	}
	switch {
	case r.Forward != nil:
		err = t.forward(route, r.Forward, &r.Match.Path)
		if err != nil {
			err = fmt.Errorf("forward: %w", err)
		}
	case r.Redirect != nil:
		err = redirect(route, r.Redirect, &r.Match.Path, t.listenerPort)
		if err != nil {
			err = fmt.Errorf("redirect: %w", err)
		}
	default:
		err = directResponse(route, r.DirectResponse.StatusCode, r.DirectResponse.Body)
		if err != nil {
			err = fmt.Errorf("directResponse: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	return route, nil
}

// routeMetadata is the route's filter_metadata[MetadataNamespace].
func routeMetadata(r *ir.Route) *corev3.Metadata {
	fields := map[string]*structpb.Value{
		"route":     structpb.NewStringValue(r.Name),
		"kind":      structpb.NewStringValue(r.Source.Kind),
		"namespace": structpb.NewStringValue(r.Source.Namespace),
		"name":      structpb.NewStringValue(r.Source.Name),
		"rule":      structpb.NewNumberValue(float64(r.Source.Rule)),
		"match":     structpb.NewNumberValue(float64(r.Source.Match)),
	}
	if r.Source.RuleName != "" {
		fields["ruleName"] = structpb.NewStringValue(r.Source.RuleName)
	}
	if r.Forward != nil && r.Forward.GRPC {
		fields["grpc"] = structpb.NewBoolValue(true)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		MetadataNamespace: {Fields: fields},
	}}
}

// elementPrefix is the element-wise prefix a PathPrefix value stands for: the
// value without its trailing "/" (which the spec says is ignored), and "" for "/".
func elementPrefix(value string) string {
	return strings.TrimSuffix(value, "/")
}

func translateMatch(m *ir.Match) (*routev3.RouteMatch, error) {
	rm := &routev3.RouteMatch{}
	p := m.Path
	switch p.Type {
	case ir.MatchExact:
		if !strings.HasPrefix(p.Value, "/") {
			return nil, fmt.Errorf("match.path.value: %q does not start with '/'", p.Value)
		}
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Value}
	case ir.MatchPrefix:
		if !strings.HasPrefix(p.Value, "/") {
			return nil, fmt.Errorf("match.path.value: %q does not start with '/'", p.Value)
		}
		if strings.ContainsAny(p.Value, "?#") {
			return nil, fmt.Errorf("match.path.value: %q contains '?' or '#'", p.Value)
		}
		prefix := elementPrefix(p.Value)
		switch {
		case prefix == "":
			// "/" is a prefix of every path, element-wise or not.
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		case strings.HasSuffix(prefix, "/"):
			return nil, fmt.Errorf("match.path.value: %q ends with more than one '/'", p.Value)
		default:
			rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: prefix}
		}
	case ir.MatchRegex:
		sr, err := regexMatcher(p.Value)
		if err != nil {
			return nil, fmt.Errorf("match.path.value: %w", err)
		}
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: sr}
	default:
		return nil, fmt.Errorf("match.path.type: %q is not supported", p.Type)
	}

	if m.Method != "" {
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name: ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Method},
			}},
		})
	}
	for i, h := range m.Headers {
		if h.Name == "" {
			return nil, fmt.Errorf("match.headers[%d].name is empty", i)
		}
		sm, err := stringMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d] (%s): %w", i, h.Name, err)
		}
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			Name:                 h.Name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
		})
	}
	for i, q := range m.QueryParams {
		if q.Name == "" {
			return nil, fmt.Errorf("match.queryParams[%d].name is empty", i)
		}
		sm, err := stringMatcher(q)
		if err != nil {
			return nil, fmt.Errorf("match.queryParams[%d] (%s): %w", i, q.Name, err)
		}
		rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm},
		})
	}
	return rm, nil
}

func stringMatcher(h ir.HeaderMatch) (*matcherv3.StringMatcher, error) {
	switch h.Type {
	case ir.MatchExact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Value}}, nil
	case ir.MatchRegex:
		sr, err := regexMatcher(h.Value)
		if err != nil {
			return nil, err
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: sr}}, nil
	default:
		return nil, fmt.Errorf("type: %q is not supported", h.Type)
	}
}

// regexMatcher checks that re is a regular expression sekisho's proxies can
// run (RE2 syntax, as Go's regexp accepts it) and wraps it.
func regexMatcher(re string) (*matcherv3.RegexMatcher, error) {
	if re == "" {
		return nil, errors.New("regular expression is empty")
	}
	if _, err := regexp.Compile(re); err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", re, err)
	}
	return &matcherv3.RegexMatcher{Regex: re}, nil
}

// headerMutation turns a modifier into header options (Set overwrites, Add
// appends) and names to remove.
func headerMutation(m *ir.HeaderModifier) ([]*corev3.HeaderValueOption, []string, error) {
	if m == nil {
		return nil, nil, nil
	}
	var add []*corev3.HeaderValueOption
	for i, h := range m.Set {
		if err := modifiableHeader(h.Name); err != nil {
			return nil, nil, fmt.Errorf("set[%d]: %w", i, err)
		}
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for i, h := range m.Add {
		if err := modifiableHeader(h.Name); err != nil {
			return nil, nil, fmt.Errorf("add[%d]: %w", i, err)
		}
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	for i, name := range m.Remove {
		if err := modifiableHeader(name); err != nil {
			return nil, nil, fmt.Errorf("remove[%d]: %w", i, err)
		}
	}
	return add, append([]string(nil), m.Remove...), nil
}

// modifiableHeader rejects the headers a route may not add, set or remove:
// pseudo-headers and Host (Envoy rejects a route table that modifies them; the
// host is rewritten with URLRewrite.Hostname instead).
func modifiableHeader(name string) error {
	switch {
	case name == "":
		return errors.New("header name is empty")
	case strings.HasPrefix(name, ":"), strings.EqualFold(name, "host"):
		return fmt.Errorf("header %q may not be modified", name)
	}
	return nil
}

func (t *translator) forward(route *routev3.Route, f *ir.Forward, path *ir.PathMatch) error {
	if len(f.Backends) == 0 {
		return errors.New("backends: a forward needs at least one backend (an all-invalid forward is a 500 direct response)")
	}
	var live []int
	var total uint64
	for i, b := range f.Backends {
		if !t.clusters[b.Cluster] {
			return fmt.Errorf("backends[%d].cluster: cluster %q is not in the gateway", i, b.Cluster)
		}
		if b.Weight > 0 {
			live = append(live, i)
			total += uint64(b.Weight)
		}
	}
	total += uint64(f.InvalidWeight)
	if total > math.MaxUint32 {
		return fmt.Errorf("backends: the weights add up to %d, more than %d", total, uint32(math.MaxUint32))
	}
	if len(live) == 0 {
		// No backend may take traffic: every request is answered 500.
		return directResponse(route, 500, "")
	}

	ra := &routev3.RouteAction{}
	single := len(live) == 1 && f.InvalidWeight == 0 &&
		f.Backends[live[0]].RequestHeaders == nil && f.Backends[live[0]].ResponseHeaders == nil
	if single {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: f.Backends[live[0]].Cluster}
	} else {
		wc := &routev3.WeightedCluster{Clusters: make([]*routev3.WeightedCluster_ClusterWeight, 0, len(live)+1)}
		for _, i := range live {
			b := &f.Backends[i]
			cw := &routev3.WeightedCluster_ClusterWeight{Name: b.Cluster, Weight: wrapperspb.UInt32(b.Weight)}
			var err error
			if cw.RequestHeadersToAdd, cw.RequestHeadersToRemove, err = headerMutation(b.RequestHeaders); err != nil {
				return fmt.Errorf("backends[%d].requestHeaders: %w", i, err)
			}
			if cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove, err = headerMutation(b.ResponseHeaders); err != nil {
				return fmt.Errorf("backends[%d].responseHeaders: %w", i, err)
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		if f.InvalidWeight > 0 {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   InvalidBackendCluster,
				Weight: wrapperspb.UInt32(f.InvalidWeight),
			})
			ra.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}

	if f.Rewrite != nil {
		if f.Rewrite.Hostname != "" {
			ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: f.Rewrite.Hostname}
		}
		if f.Rewrite.Path != nil {
			pr, err := rewritePath(f.Rewrite.Path, path)
			if err != nil {
				return fmt.Errorf("rewrite.path: %w", err)
			}
			ra.PrefixRewrite = pr.prefix
			ra.RegexRewrite = pr.regex
		}
	}

	for i, m := range f.Mirrors {
		if !t.clusters[m.Cluster] {
			return fmt.Errorf("mirrors[%d].cluster: cluster %q is not in the gateway", i, m.Cluster)
		}
		frac, err := fractionalPercent(m.Numerator, m.Denominator)
		if err != nil {
			return fmt.Errorf("mirrors[%d]: %w", i, err)
		}
		ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         m.Cluster,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: frac},
		})
	}

	if f.Timeout < 0 {
		return fmt.Errorf("timeout: %s is negative", f.Timeout)
	}
	// 0s: no timeout (Envoy's own default would be 15s).
	ra.Timeout = durationpb.New(f.Timeout)

	if f.PerTryTimeout < 0 {
		return fmt.Errorf("perTryTimeout: %s is negative", f.PerTryTimeout)
	}
	if f.Retry != nil || f.PerTryTimeout > 0 {
		rp := &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)}
		if f.PerTryTimeout > 0 {
			rp.PerTryTimeout = durationpb.New(f.PerTryTimeout)
		}
		if r := f.Retry; r != nil {
			if r.Attempts < 0 || int64(r.Attempts) > math.MaxUint32 {
				return fmt.Errorf("retry.attempts: %d is out of range", r.Attempts)
			}
			rp.NumRetries = wrapperspb.UInt32(uint32(r.Attempts))
			rp.RetryOn = "connect-failure,reset"
			if len(r.Codes) > 0 {
				rp.RetryOn += ",retriable-status-codes"
			}
			for j, c := range r.Codes {
				if c < 100 || c > 599 {
					return fmt.Errorf("retry.codes[%d]: %d is not an HTTP status code", j, c)
				}
				rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(c))
			}
			if r.Backoff < 0 {
				return fmt.Errorf("retry.backoff: %s is negative", r.Backoff)
			}
			if r.Backoff > 0 {
				rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.Backoff)}
			}
		}
		ra.RetryPolicy = rp
	}

	route.Action = &routev3.Route_Route{Route: ra}
	return nil
}

// fractionalPercent expresses num/den exactly with the smallest denominator
// Envoy offers that can, or else rounded to the nearest millionth.
func fractionalPercent(num, den uint32) (*typev3.FractionalPercent, error) {
	if den == 0 {
		return nil, errors.New("denominator is 0")
	}
	if num > den {
		return nil, fmt.Errorf("fraction %d/%d is more than 1", num, den)
	}
	for _, d := range []struct {
		n    uint64
		kind typev3.FractionalPercent_DenominatorType
	}{
		{100, typev3.FractionalPercent_HUNDRED},
		{10000, typev3.FractionalPercent_TEN_THOUSAND},
		{1000000, typev3.FractionalPercent_MILLION},
	} {
		if uint64(num)*d.n%uint64(den) == 0 {
			return &typev3.FractionalPercent{Numerator: uint32(uint64(num) * d.n / uint64(den)), Denominator: d.kind}, nil
		}
	}
	n := (uint64(num)*1000000 + uint64(den)/2) / uint64(den)
	return &typev3.FractionalPercent{Numerator: uint32(n), Denominator: typev3.FractionalPercent_MILLION}, nil
}

// pathRewrite is at most one of a prefix rewrite and a regex rewrite; neither
// means the path is left as it is.
type pathRewrite struct {
	prefix string
	regex  *matcherv3.RegexMatchAndSubstitute
}

// fullPathPattern matches the whole of any path, once.
const fullPathPattern = `^/.*$`

// rewritePath says how to rewrite the path as mod asks, for a route matched by m.
//
// ReplaceFullPath replaces the whole path (a regex rewrite of fullPathPattern).
// ReplacePrefixMatch replaces the element-wise prefix m matched, as the spec's
// table says (P is m's prefix without its trailing '/', R the replacement):
//
//   - R is "" or "/": the prefix is cut and the path keeps one leading '/':
//     "/P/bar" -> "/bar", "/P/" and "/P" -> "/". A prefix rewrite to "/"
//     would give "//bar", so this is the regex rewrite "^P/*" -> "/". When P
//     is also "/" (any path), the path is left as it is.
//   - P is "/": R (without a trailing '/') is put before the path:
//     "/bar" -> "R/bar", a prefix rewrite of "/" to "R/".
//   - otherwise: a prefix rewrite of P to R without its trailing '/': "/P/bar"
//     -> "R/bar", "/P/" -> "R/", "/P" -> "R".
func rewritePath(mod *ir.PathModifier, m *ir.PathMatch) (pathRewrite, error) {
	switch mod.Type {
	case ir.ReplaceFullPath:
		if !strings.HasPrefix(mod.Value, "/") {
			return pathRewrite{}, fmt.Errorf("value: %q does not start with '/'", mod.Value)
		}
		return pathRewrite{regex: &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: fullPathPattern},
			Substitution: escapeSubstitution(mod.Value),
		}}, nil
	case ir.ReplacePrefixMatch:
		if m.Type != ir.MatchPrefix {
			return pathRewrite{}, fmt.Errorf("type: ReplacePrefixMatch needs a PathPrefix match, not %q", m.Type)
		}
		if mod.Value != "" && !strings.HasPrefix(mod.Value, "/") {
			return pathRewrite{}, fmt.Errorf("value: %q does not start with '/'", mod.Value)
		}
		p := elementPrefix(m.Value)
		r := strings.TrimSuffix(mod.Value, "/")
		switch {
		case r == "" && p == "":
			return pathRewrite{}, nil
		case r == "":
			return pathRewrite{regex: &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(p) + "/*"},
				Substitution: "/",
			}}, nil
		case p == "":
			return pathRewrite{prefix: r + "/"}, nil
		default:
			return pathRewrite{prefix: r}, nil
		}
	default:
		return pathRewrite{}, fmt.Errorf("type: %q is not supported", mod.Type)
	}
}

// escapeSubstitution makes s a literal regex substitution (a backslash starts
// a capture group reference).
func escapeSubstitution(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// wellKnownPorts is the port a redirect to a scheme uses when it names no port.
var wellKnownPorts = map[string]uint32{"http": 80, "https": 443}

// redirect sets route's action to r. listenerPort is the port of the
// listener the route serves.
func redirect(route *routev3.Route, r *ir.Redirect, path *ir.PathMatch, listenerPort uint32) error {
	code, ok := redirectCodes[r.StatusCode]
	if !ok {
		return fmt.Errorf("statusCode: %d is not a redirect code (301, 302, 303, 307, 308)", r.StatusCode)
	}
	ra := &routev3.RedirectAction{
		HostRedirect: r.Hostname,
		PortRedirect: r.Port,
		ResponseCode: code,
	}
	if r.Port > 65535 {
		return fmt.Errorf("port: %d is not a TCP port", r.Port)
	}
	if r.Scheme != "" {
		port, ok := wellKnownPorts[r.Scheme]
		if !ok {
			return fmt.Errorf("scheme: %q is not supported (http, https)", r.Scheme)
		}
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
		if r.Port == 0 {
			// The spec: a redirect that names a scheme but no port goes to
			// the scheme's well-known port.
			ra.PortRedirect = port
		}
	} else if r.Port == 0 {
		// The spec: with neither scheme nor port, the redirect goes to the
		// Gateway listener's port (the proxy leaves out a port that is the
		// scheme's default).
		ra.PortRedirect = listenerPort
	}
	if r.Path != nil {
		if r.Path.Type == ir.ReplaceFullPath {
			if !strings.HasPrefix(r.Path.Value, "/") {
				return fmt.Errorf("path.value: %q does not start with '/'", r.Path.Value)
			}
			ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path.Value}
		} else {
			pr, err := rewritePath(r.Path, path)
			if err != nil {
				return fmt.Errorf("path: %w", err)
			}
			switch {
			case pr.regex != nil:
				ra.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: pr.regex}
			case pr.prefix != "":
				ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: pr.prefix}
			}
		}
	}
	route.Action = &routev3.Route_Redirect{Redirect: ra}
	return nil
}

func directResponse(route *routev3.Route, status int, body string) error {
	if status < 200 || status > 599 {
		return fmt.Errorf("statusCode: %d is not a final HTTP status code (200-599)", status)
	}
	dr := &routev3.DirectResponseAction{Status: uint32(status)}
	if body != "" {
		dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}
	}
	route.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
	return nil
}
