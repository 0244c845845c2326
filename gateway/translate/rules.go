package translate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/ir"
)

// ruleError is why a rule cannot be programmed.
type ruleError struct {
	field string
	msg   string
}

// ruleCtx collects what one rule does, whatever its route kind.
type ruleCtx struct {
	rc      *routeCtx
	idx     int
	field   string
	errs    []ruleError
	matches []ir.Match

	reqHeaders  *ir.HeaderModifier
	respHeaders *ir.HeaderModifier
	redirect    *ir.Redirect
	rewrite     *ir.URLRewrite
	mirrors     []ir.Mirror
	backends    []ir.WeightedBackend
	invalidW    uint32
	timeout     time.Duration
	perTry      time.Duration
	retry       *ir.Retry
	grpc        bool
	// grpcChars holds, for each of matches, the characters of the service and
	// of the method it names (the GRPCRoute precedence).
	grpcChars [][2]int
	name      string
}

func (r *ruleCtx) fail(field, format string, args ...any) {
	r.errs = append(r.errs, ruleError{field: r.field + field, msg: fmt.Sprintf(format, args...)})
}

func (t *translator) httpRules(rc *routeCtx, route *gwv1.HTTPRoute) {
	rc.rules = len(route.Spec.Rules)
	for i := range route.Spec.Rules {
		rule := &route.Spec.Rules[i]
		r := &ruleCtx{rc: rc, idx: i, field: fmt.Sprintf("spec.rules[%d]", i)}
		if rule.Name != nil {
			r.name = string(*rule.Name)
		}
		if len(rule.Matches) == 0 {
			r.matches = append(r.matches, ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}})
		}
		for j := range rule.Matches {
			r.matches = append(r.matches, t.httpMatch(r, &rule.Matches[j], fmt.Sprintf(".matches[%d]", j)))
		}
		for j := range rule.Filters {
			t.httpFilter(r, &rule.Filters[j], fmt.Sprintf(".filters[%d]", j), nil)
		}
		if rule.Timeouts != nil {
			r.timeout = parseDuration(r, ".timeouts.request", rule.Timeouts.Request)
			r.perTry = parseDuration(r, ".timeouts.backendRequest", rule.Timeouts.BackendRequest)
			if r.timeout > 0 && r.perTry > r.timeout {
				r.fail(".timeouts.backendRequest", "backendRequest timeout %s is longer than the request timeout %s", r.perTry, r.timeout)
			}
		}
		if rule.Retry != nil {
			t.httpRetry(r, rule.Retry)
		}
		if rule.SessionPersistence != nil {
			r.fail(".sessionPersistence", "sessionPersistence is not supported")
		}
		for j := range rule.BackendRefs {
			br := &rule.BackendRefs[j]
			t.backendRef(r, j, br.BackendRef, len(br.Filters), func(k int, f string, wb *ir.WeightedBackend) {
				t.httpFilter(r, &br.Filters[k], f, wb)
			})
		}
		t.finishRule(r)
	}
}

// backendRef adds the j-th backendRef of a rule, after applying its n
// filters with filter (which gets the filter's index and field path).
func (t *translator) backendRef(r *ruleCtx, j int, br gwv1.BackendRef, n int, filter func(k int, field string, wb *ir.WeightedBackend)) {
	f := fmt.Sprintf(".backendRefs[%d]", j)
	var wb ir.WeightedBackend
	for k := 0; k < n; k++ {
		filter(k, fmt.Sprintf("%s.filters[%d]", f, k), &wb)
	}
	t.addBackend(r, br.BackendObjectReference, br.Weight, f, wb)
}

func (t *translator) grpcRules(rc *routeCtx, route *gwv1.GRPCRoute) {
	rc.rules = len(route.Spec.Rules)
	for i := range route.Spec.Rules {
		rule := &route.Spec.Rules[i]
		r := &ruleCtx{rc: rc, idx: i, field: fmt.Sprintf("spec.rules[%d]", i), grpc: true}
		if rule.Name != nil {
			r.name = string(*rule.Name)
		}
		if len(rule.Matches) == 0 {
			r.matches = append(r.matches, ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}, Headers: []ir.HeaderMatch{grpcContentType}})
			r.grpcChars = append(r.grpcChars, [2]int{})
		}
		for j := range rule.Matches {
			r.matches = append(r.matches, t.grpcMatch(r, &rule.Matches[j], fmt.Sprintf(".matches[%d]", j)))
		}
		for j := range rule.Filters {
			t.grpcFilter(r, &rule.Filters[j], fmt.Sprintf(".filters[%d]", j), nil)
		}
		if rule.SessionPersistence != nil {
			r.fail(".sessionPersistence", "sessionPersistence is not supported")
		}
		for j := range rule.BackendRefs {
			br := &rule.BackendRefs[j]
			t.backendRef(r, j, br.BackendRef, len(br.Filters), func(k int, f string, wb *ir.WeightedBackend) {
				t.grpcFilter(r, &br.Filters[k], f, wb)
			})
		}
		t.finishRule(r)
	}
}

var httpMethods = map[gwv1.HTTPMethod]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true,
}

func (t *translator) httpMatch(r *ruleCtx, m *gwv1.HTTPRouteMatch, field string) ir.Match {
	out := ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}}
	if m.Path != nil {
		typ := deref(m.Path.Type, gwv1.PathMatchPathPrefix)
		val := deref(m.Path.Value, "/")
		switch typ {
		case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
			if !strings.HasPrefix(val, "/") {
				r.fail(field+".path.value", "path %q must start with /", val)
			}
			if strings.Contains(val, "//") || strings.ContainsAny(val, "?#") {
				r.fail(field+".path.value", "path %q must not contain //, ? or #", val)
			}
			out.Path.Type = ir.MatchExact
			if typ == gwv1.PathMatchPathPrefix {
				out.Path.Type = ir.MatchPrefix
			}
		case gwv1.PathMatchRegularExpression:
			if err := t.checkRegex(val); err != nil {
				r.fail(field+".path.value", "%v", err)
			}
			out.Path.Type = ir.MatchRegex
		default:
			r.fail(field+".path.type", "path match type %q is not supported", typ)
		}
		out.Path.Value = val
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, stringMatch(string(h.Name), string(deref(h.Type, gwv1.HeaderMatchExact)), h.Value))
	}
	out.Headers = t.stringMatches(r, field+".headers", "header", true, out.Headers)
	for _, q := range m.QueryParams {
		out.QueryParams = append(out.QueryParams, stringMatch(string(q.Name), string(deref(q.Type, gwv1.QueryParamMatchExact)), q.Value))
	}
	out.QueryParams = t.stringMatches(r, field+".queryParams", "query parameter", false, out.QueryParams)
	if m.Method != nil {
		if !httpMethods[*m.Method] {
			r.fail(field+".method", "method %q is not supported", *m.Method)
		}
		out.Method = string(*m.Method)
	}
	return out
}

// grpcContentType is added to every GRPCRoute match, so that gRPC routes take
// only gRPC requests and never merge with the HTTPRoutes of the same hostname
// (the GRPCRoute spec forbids merging the two).
var grpcContentType = ir.HeaderMatch{Name: "content-type", Type: ir.MatchRegex, Value: `application/grpc(\+[A-Za-z0-9._-]+)?(;.*)?`}

func (t *translator) grpcMatch(r *ruleCtx, m *gwv1.GRPCRouteMatch, field string) ir.Match {
	out := ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}}
	var chars [2]int
	defer func() { r.grpcChars = append(r.grpcChars, chars) }()
	if mm := m.Method; mm != nil {
		svc, meth := deref(mm.Service, ""), deref(mm.Method, "")
		chars = [2]int{len(svc), len(meth)}
		switch deref(mm.Type, gwv1.GRPCMethodMatchExact) {
		case gwv1.GRPCMethodMatchExact:
			if strings.Contains(svc, "/") {
				r.fail(field+".method.service", "service %q must not contain /", svc)
			}
			if strings.Contains(meth, "/") {
				r.fail(field+".method.method", "method %q must not contain /", meth)
			}
			switch {
			case svc != "" && meth != "":
				out.Path = ir.PathMatch{Type: ir.MatchExact, Value: "/" + svc + "/" + meth}
			case svc != "":
				out.Path = ir.PathMatch{Type: ir.MatchPrefix, Value: "/" + svc + "/"}
			case meth != "":
				out.Path = ir.PathMatch{Type: ir.MatchRegex, Value: "/[^/]+/" + regexp.QuoteMeta(meth)}
			}
		case gwv1.GRPCMethodMatchRegularExpression:
			if svc != "" {
				if err := t.checkRegex(svc); err != nil {
					r.fail(field+".method.service", "%v", err)
				}
			}
			if meth != "" {
				if err := t.checkRegex(meth); err != nil {
					r.fail(field+".method.method", "%v", err)
				}
			}
			if svc != "" || meth != "" {
				s, mt := "[^/]+", "[^/]+"
				if svc != "" {
					s = "(?:" + svc + ")"
				}
				if meth != "" {
					mt = "(?:" + meth + ")"
				}
				out.Path = ir.PathMatch{Type: ir.MatchRegex, Value: "/" + s + "/" + mt}
			}
		default:
			r.fail(field+".method.type", "method match type %q is not supported", *mm.Type)
		}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, stringMatch(string(h.Name), string(deref(h.Type, gwv1.GRPCHeaderMatchExact)), h.Value))
	}
	out.Headers = t.stringMatches(r, field+".headers", "header", true, out.Headers)
	if !slices.ContainsFunc(out.Headers, func(h ir.HeaderMatch) bool { return h.Name == grpcContentType.Name }) {
		out.Headers = append(out.Headers, grpcContentType)
	}
	return out
}

func headerModifier(f *gwv1.HTTPHeaderFilter) *ir.HeaderModifier {
	hm := &ir.HeaderModifier{}
	for _, h := range f.Set {
		hm.Set = append(hm.Set, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	for _, h := range f.Add {
		hm.Add = append(hm.Add, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	hm.Remove = append(hm.Remove, f.Remove...)
	return hm
}

// httpFilter applies one filter to the rule, or to the backend wb when it is
// a backendRef's own filter.
func (t *translator) httpFilter(r *ruleCtx, f *gwv1.HTTPRouteFilter, field string, wb *ir.WeightedBackend) {
	missing := func(name string) { r.fail(field+"."+name, "filter of type %s needs %s", f.Type, name) }
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestHeaderModifier:
		if f.RequestHeaderModifier == nil {
			missing("requestHeaderModifier")
			return
		}
		if wb != nil {
			wb.RequestHeaders = headerModifier(f.RequestHeaderModifier)
		} else {
			r.reqHeaders = headerModifier(f.RequestHeaderModifier)
		}
		return
	case gwv1.HTTPRouteFilterResponseHeaderModifier:
		if f.ResponseHeaderModifier == nil {
			missing("responseHeaderModifier")
			return
		}
		if wb != nil {
			wb.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
		} else {
			r.respHeaders = headerModifier(f.ResponseHeaderModifier)
		}
		return
	}
	if wb != nil {
		r.fail(field+".type", "filter type %q is not supported on a backendRef", f.Type)
		return
	}
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestRedirect:
		if f.RequestRedirect == nil {
			missing("requestRedirect")
			return
		}
		t.redirect(r, f.RequestRedirect, field+".requestRedirect")
	case gwv1.HTTPRouteFilterURLRewrite:
		if f.URLRewrite == nil {
			missing("urlRewrite")
			return
		}
		rw := &ir.URLRewrite{}
		if f.URLRewrite.Hostname != nil {
			rw.Hostname = string(*f.URLRewrite.Hostname)
		}
		rw.Path = t.pathModifier(r, f.URLRewrite.Path, field+".urlRewrite.path")
		r.rewrite = rw
	case gwv1.HTTPRouteFilterRequestMirror:
		if f.RequestMirror == nil {
			missing("requestMirror")
			return
		}
		t.mirror(r, f.RequestMirror, field+".requestMirror")
	default:
		r.fail(field+".type", "filter type %q is not supported", f.Type)
	}
}

func (t *translator) grpcFilter(r *ruleCtx, f *gwv1.GRPCRouteFilter, field string, wb *ir.WeightedBackend) {
	switch f.Type {
	case gwv1.GRPCRouteFilterRequestHeaderModifier:
		t.httpFilter(r, &gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f.RequestHeaderModifier}, field, wb)
	case gwv1.GRPCRouteFilterResponseHeaderModifier:
		t.httpFilter(r, &gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier}, field, wb)
	case gwv1.GRPCRouteFilterRequestMirror:
		t.httpFilter(r, &gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: f.RequestMirror}, field, wb)
	default:
		r.fail(field+".type", "filter type %q is not supported", f.Type)
	}
}

func (t *translator) pathModifier(r *ruleCtx, p *gwv1.HTTPPathModifier, field string) *ir.PathModifier {
	if p == nil {
		return nil
	}
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			r.fail(field+".replaceFullPath", "ReplaceFullPath needs replaceFullPath")
			return nil
		}
		return &ir.PathModifier{Type: ir.ReplaceFullPath, Value: *p.ReplaceFullPath}
	case gwv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			r.fail(field+".replacePrefixMatch", "ReplacePrefixMatch needs replacePrefixMatch")
			return nil
		}
		for _, m := range r.matches {
			if m.Path.Type != ir.MatchPrefix {
				r.fail(field+".type", "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match")
				return nil
			}
		}
		return &ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: *p.ReplacePrefixMatch}
	}
	r.fail(field+".type", "path modifier type %q is not supported", p.Type)
	return nil
}

var redirectCodes = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

func (t *translator) redirect(r *ruleCtx, f *gwv1.HTTPRequestRedirectFilter, field string) {
	rd := &ir.Redirect{StatusCode: deref(f.StatusCode, 302)}
	if !redirectCodes[rd.StatusCode] {
		r.fail(field+".statusCode", "status code %d is not a redirect code (301, 302, 303, 307, 308)", rd.StatusCode)
	}
	if f.Scheme != nil {
		switch *f.Scheme {
		case "http", "https":
			rd.Scheme = *f.Scheme
		default:
			r.fail(field+".scheme", "scheme %q is not http or https", *f.Scheme)
		}
	}
	if f.Hostname != nil {
		rd.Hostname = string(*f.Hostname)
	}
	switch {
	case f.Port != nil:
		if *f.Port < 1 || *f.Port > 65535 {
			r.fail(field+".port", "port %d is not a valid port", *f.Port)
		} else {
			rd.Port = uint32(*f.Port)
		}
	case rd.Scheme == "http":
		rd.Port = 80 // the spec: the scheme's well-known port
	case rd.Scheme == "https":
		rd.Port = 443
	}
	rd.Path = t.pathModifier(r, f.Path, field+".path")
	r.redirect = rd
}

func (t *translator) mirror(r *ruleCtx, f *gwv1.HTTPRequestMirrorFilter, field string) {
	num, den := uint32(1), uint32(1)
	switch {
	case f.Percent != nil && f.Fraction != nil:
		r.fail(field, "only one of percent and fraction may be set")
		return
	case f.Percent != nil:
		if *f.Percent < 0 || *f.Percent > 100 {
			r.fail(field+".percent", "percent %d is not between 0 and 100", *f.Percent)
			return
		}
		num, den = uint32(*f.Percent), 100
	case f.Fraction != nil:
		d := deref(f.Fraction.Denominator, 100)
		if d <= 0 || f.Fraction.Numerator < 0 || f.Fraction.Numerator > d {
			r.fail(field+".fraction", "fraction %d/%d is not between 0 and 1", f.Fraction.Numerator, d)
			return
		}
		num, den = uint32(f.Fraction.Numerator), uint32(d)
	}
	cluster, ok := t.resolveBackend(r, f.BackendRef, field+".backendRef")
	if !ok {
		return
	}
	r.mirrors = append(r.mirrors, ir.Mirror{Cluster: cluster, Numerator: num, Denominator: den})
}

var durationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

func parseDuration(r *ruleCtx, field string, d *gwv1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if !durationRE.MatchString(string(*d)) {
		r.fail(field, "duration %q is not a Gateway API duration (e.g. 1h30m, 500ms)", *d)
		return 0
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		r.fail(field, "parsing duration %q: %v", *d, err)
		return 0
	}
	return v
}

func (t *translator) httpRetry(r *ruleCtx, rt *gwv1.HTTPRouteRetry) {
	attempts := deref(rt.Attempts, 1)
	if attempts < 0 {
		r.fail(".retry.attempts", "attempts %d must not be negative", attempts)
		return
	}
	backoff := parseDuration(r, ".retry.backoff", rt.Backoff)
	if attempts == 0 {
		return
	}
	ret := &ir.Retry{Attempts: attempts, Backoff: backoff}
	for k, c := range rt.Codes {
		if c < 400 || c > 599 {
			r.fail(fmt.Sprintf(".retry.codes[%d]", k), "status code %d is not between 400 and 599", c)
			continue
		}
		ret.Codes = append(ret.Codes, int(c))
	}
	r.retry = ret
}

// finishRule turns a rule into IR routes, or drops it when it is invalid.
func (t *translator) finishRule(r *ruleCtx) {
	rc := r.rc
	if len(r.errs) > 0 {
		var msgs []string
		for _, e := range r.errs {
			t.problem(rc.key, e.field, e.msg, false)
			msgs = append(msgs, e.field+": "+e.msg)
		}
		rc.droppedRules = append(rc.droppedRules, strings.Join(msgs, "; "))
		if rc.invalidMsg == "" {
			rc.invalidMsg = msgs[0]
		}
		return
	}
	var fwd *ir.Forward
	var direct *ir.DirectResponse
	if r.redirect == nil {
		if len(r.backends) == 0 {
			direct = &ir.DirectResponse{StatusCode: 500}
		} else {
			fwd = &ir.Forward{
				Backends: r.backends, InvalidWeight: r.invalidW, Rewrite: r.rewrite, Mirrors: r.mirrors,
				Timeout: r.timeout, PerTryTimeout: r.perTry, Retry: r.retry, GRPC: r.grpc,
			}
		}
	}
	created := rc.meta.CreationTimestamp.Unix()
	prefix := strings.ToLower(rc.kind) + "/" + rc.nsName + "/rule/"
	for j, m := range r.matches {
		route := &ir.Route{
			Name:   fmt.Sprintf("%s%d/match/%d", prefix, r.idx, j),
			Source: ir.RouteSource{Kind: rc.kind, Namespace: rc.meta.Namespace, Name: rc.meta.Name, Rule: r.idx, RuleName: r.name, Match: j},
			Match:  m, RequestHeaders: r.reqHeaders, ResponseHeaders: r.respHeaders,
			Forward: fwd, Redirect: r.redirect, DirectResponse: direct,
		}
		e := &routeEntry{route: route, pathLen: len(m.Path.Value), method: m.Method != "", headers: len(m.Headers),
			queries: len(m.QueryParams), created: created, owner: rc, rule: r.idx, match: j, grpc: r.grpc}
		if r.grpc && j < len(r.grpcChars) {
			e.grpcService, e.grpcMethod = r.grpcChars[j][0], r.grpcChars[j][1]
		}
		switch m.Path.Type {
		case ir.MatchExact:
			e.pathRank = 0
		case ir.MatchRegex:
			e.pathRank = 1
		default:
			e.pathRank = 2
		}
		rc.entries = append(rc.entries, e)
	}
}

// stringMatch builds an ir.HeaderMatch from a header or query parameter
// match as written: Type holds the Gateway API match type until
// stringMatches turns it into the IR's.
func stringMatch(name, typ, value string) ir.HeaderMatch {
	return ir.HeaderMatch{Name: name, Type: ir.MatchType(typ), Value: value}
}

// stringMatches checks header or query parameter matches as written (field
// is their list, e.g. "spec.rules[0].matches[1].headers"): only the first
// match of a name counts, as the spec says; header names are case-insensitive
// (lowered); regular expressions must compile.
func (t *translator) stringMatches(r *ruleCtx, field, what string, lowerNames bool, in []ir.HeaderMatch) []ir.HeaderMatch {
	out := in[:0]
	seen := map[string]bool{}
	for k, m := range in {
		if lowerNames {
			m.Name = strings.ToLower(m.Name)
		}
		if seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		switch m.Type {
		case "Exact":
			m.Type = ir.MatchExact
		case "RegularExpression":
			m.Type = ir.MatchRegex
			if err := t.checkRegex(m.Value); err != nil {
				r.fail(fmt.Sprintf("%s[%d].value", field, k), "%v", err)
			}
		default:
			r.fail(fmt.Sprintf("%s[%d].type", field, k), "%s match type %q is not supported", what, m.Type)
		}
		out = append(out, m)
	}
	return out
}
