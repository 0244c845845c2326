package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/proxy/router"
)

// Defaults of the ratelimit filter, as in Envoy.
const (
	defaultRateLimitTimeout       = 20 * time.Millisecond
	defaultRateLimitStatusOnError = http.StatusInternalServerError
	// maxHitsAddend is the largest hits_addend.number Envoy takes.
	maxHitsAddend = 1000000000
)

// rlFilter is a compiled envoy.filters.http.ratelimit.
type rlFilter struct {
	domain        string
	client        *grpcClient
	timeout       time.Duration // 0: none
	failClosed    bool          // failure_mode_deny
	statusOnError int

	allowed, denied, errored, failedOpen prometheus.Counter
}

func compileRateLimitFilter(name string, c *ratelimitv3.RateLimit, env *compileEnv) (*rlFilter, error) {
	if c.GetDomain() == "" {
		return nil, errors.New("domain: required")
	}
	svc := c.GetRateLimitService()
	if svc == nil {
		return nil, errors.New("rate_limit_service: required")
	}
	if v := svc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("rate_limit_service.transport_api_version: %v is not supported (V3 only)", v)
	}
	if svc.GetGrpcService() == nil {
		return nil, errors.New("rate_limit_service.grpc_service: required")
	}
	if svc.GetGrpcService().Timeout != nil {
		return nil, errors.New("rate_limit_service.grpc_service.timeout: the ratelimit filter's own timeout bounds the call; set timeout instead")
	}
	client, _, err := env.grpcService(svc.GetGrpcService(), 0)
	if err != nil {
		return nil, fmt.Errorf("rate_limit_service.grpc_service.%w", err)
	}
	timeout := defaultRateLimitTimeout
	if c.Timeout != nil {
		if err := c.GetTimeout().CheckValid(); err != nil || c.GetTimeout().AsDuration() < 0 {
			return nil, fmt.Errorf("timeout: %v is not a duration", c.GetTimeout())
		}
		timeout = c.GetTimeout().AsDuration()
	}
	status, err := httpStatus(c.GetStatusOnError(), defaultRateLimitStatusOnError)
	if err != nil {
		return nil, fmt.Errorf("status_on_error: %w", err)
	}
	m, gw := env.r.metrics, env.r.metrics.gateway
	return &rlFilter{
		domain:        c.GetDomain(),
		client:        client,
		timeout:       timeout,
		failClosed:    c.GetFailureModeDeny(),
		statusOnError: status,
		allowed:       m.rlChecks.WithLabelValues(gw, name, "allowed"),
		denied:        m.rlChecks.WithLabelValues(gw, name, "denied"),
		errored:       m.rlChecks.WithLabelValues(gw, name, "error"),
		failedOpen:    m.rlFailOpen.WithLabelValues(gw, name),
	}, nil
}

// rlRoute is a RateLimitPerRoute.
type rlRoute struct {
	limits []*rateLimitPolicy
}

func compileRateLimitRoute(c *ratelimitv3.RateLimitPerRoute) (*rlRoute, error) {
	limits, err := compileRateLimits(c.GetRateLimits(), true)
	if err != nil {
		return nil, err
	}
	return &rlRoute{limits: limits}, nil
}

// rateLimitPolicy is one RateLimit: its actions make one descriptor, or
// none when one of them finds nothing.
type rateLimitPolicy struct {
	actions []rlAction
	hits    *wrapperspb.UInt64Value // hits_addend.number; nil: none
}

type actionKind uint8

const (
	actGenericKey actionKind = iota
	actRequestHeader
	actHeaderValueMatch
	actRemoteAddressMatch
	actMetadata
)

// rlAction is a compiled RateLimit.Action.
type rlAction struct {
	kind  actionKind
	key   string // descriptor key
	value string // descriptor value (generic_key, header_value_match, remote_address_match)
	// request_headers: the header (canonical), or a pseudo-header.
	header string
	// header_value_match.
	headers []*router.HeaderMatch
	expect  bool
	// remote_address_match.
	ranges   []netip.Prefix
	invert   bool
	clientIP bool // the value is the client's address
	// metadata.
	namespace string
	path      []string
}

// descEntry is one entry of a descriptor.
type descEntry struct{ key, value string }

// downstreamAddressFormat is the one substitution a remote_address_match
// descriptor value may hold.
const downstreamAddressFormat = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"

// compileRateLimits compiles a rate_limits list; hits: hits_addend is
// allowed.
func compileRateLimits(rls []*routev3.RateLimit, hits bool) ([]*rateLimitPolicy, error) {
	var out []*rateLimitPolicy
	for i, rl := range rls {
		p := &rateLimitPolicy{}
		if ha := rl.GetHitsAddend(); ha != nil {
			if !hits {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend: not supported by this filter", i)
			}
			if ha.GetNumber() == nil {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend: number is required", i)
			}
			if ha.GetNumber().GetValue() > maxHitsAddend {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend.number: %d is over %d", i, ha.GetNumber().GetValue(), maxHitsAddend)
			}
			p.hits = wrapperspb.UInt64(ha.GetNumber().GetValue())
		}
		if len(rl.GetActions()) == 0 {
			return nil, fmt.Errorf("rate_limits[%d].actions: at least one action is required", i)
		}
		for j, a := range rl.GetActions() {
			act, err := compileAction(a)
			if err != nil {
				return nil, fmt.Errorf("rate_limits[%d].actions[%d].%w", i, j, err)
			}
			p.actions = append(p.actions, act)
		}
		out = append(out, p)
	}
	return out, nil
}

// compileAction compiles one action; an error starts with the action's
// field name.
func compileAction(a *routev3.RateLimit_Action) (rlAction, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_GenericKey_:
		g := s.GenericKey
		act := rlAction{kind: actGenericKey, key: g.GetDescriptorKey(), value: g.GetDescriptorValue()}
		if act.key == "" {
			act.key = "generic_key"
		}
		if act.value == "" {
			return act, errors.New("generic_key.descriptor_value: required")
		}
		return act, nil
	case *routev3.RateLimit_Action_RequestHeaders_:
		h := s.RequestHeaders
		act := rlAction{kind: actRequestHeader, key: h.GetDescriptorKey()}
		if act.key == "" {
			return act, errors.New("request_headers.descriptor_key: required")
		}
		switch n := h.GetHeaderName(); {
		case n == "":
			return act, errors.New("request_headers.header_name: required")
		case strings.HasPrefix(n, ":"):
			switch n {
			case ":method", ":path", ":authority", ":scheme":
				act.header = n
			default:
				return act, fmt.Errorf("request_headers.header_name: pseudo-header %q is not supported", n)
			}
		default:
			act.header = textproto.CanonicalMIMEHeaderKey(n)
		}
		return act, nil
	case *routev3.RateLimit_Action_HeaderValueMatch_:
		h := s.HeaderValueMatch
		act := rlAction{kind: actHeaderValueMatch, key: h.GetDescriptorKey(), value: h.GetDescriptorValue(), expect: true}
		if act.key == "" {
			act.key = "header_match"
		}
		if act.value == "" {
			return act, errors.New("header_value_match.descriptor_value: required")
		}
		if h.ExpectMatch != nil {
			act.expect = h.GetExpectMatch().GetValue()
		}
		if len(h.GetHeaders()) == 0 {
			return act, errors.New("header_value_match.headers: at least one matcher is required")
		}
		for k, hm := range h.GetHeaders() {
			m, err := router.CompileHeaderMatch(hm)
			if err != nil {
				return act, fmt.Errorf("header_value_match.headers[%d]%w", k, err)
			}
			act.headers = append(act.headers, m)
		}
		return act, nil
	case *routev3.RateLimit_Action_RemoteAddressMatch_:
		r := s.RemoteAddressMatch
		act := rlAction{kind: actRemoteAddressMatch, key: r.GetDescriptorKey(), value: r.GetDescriptorValue()}
		if act.key == "" {
			act.key = "remote_address_match"
		}
		switch {
		case act.value == downstreamAddressFormat:
			act.clientIP = true
		case act.value == "":
			return act, errors.New("remote_address_match.descriptor_value: required")
		case strings.Contains(act.value, "%"):
			return act, fmt.Errorf("remote_address_match.descriptor_value: %q: the only substitution supported is the whole value %s", act.value, downstreamAddressFormat)
		}
		am := r.GetAddressMatcher()
		if am == nil {
			return act, errors.New("remote_address_match.address_matcher: required")
		}
		act.invert = am.GetInvertMatch()
		for k, c := range am.GetRanges() {
			ip, err := netip.ParseAddr(c.GetAddressPrefix())
			if err != nil || ip.Zone() != "" {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d].address_prefix: %q is not an IP address", k, c.GetAddressPrefix())
			}
			bits := 0
			if c.GetPrefixLen() != nil {
				bits = int(c.GetPrefixLen().GetValue())
			}
			if bits > ip.BitLen() {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d].prefix_len: %d is longer than the address (%d bits)", k, bits, ip.BitLen())
			}
			pfx, err := ip.Prefix(bits)
			if err != nil {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d]: %w", k, err)
			}
			act.ranges = append(act.ranges, pfx)
		}
		if len(act.ranges) == 0 {
			return act, errors.New("remote_address_match.address_matcher.ranges: at least one range is required")
		}
		return act, nil
	case *routev3.RateLimit_Action_Metadata:
		m := s.Metadata
		act := rlAction{kind: actMetadata, key: m.GetDescriptorKey()}
		if act.key == "" {
			return act, errors.New("metadata.descriptor_key: required")
		}
		if m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			return act, fmt.Errorf("metadata.source: %v is not supported (DYNAMIC only)", m.GetSource())
		}
		mk := m.GetMetadataKey()
		if mk.GetKey() == "" {
			return act, errors.New("metadata.metadata_key.key: required")
		}
		if len(mk.GetPath()) == 0 {
			return act, errors.New("metadata.metadata_key.path: at least one segment is required")
		}
		act.namespace = mk.GetKey()
		for k, seg := range mk.GetPath() {
			if seg.GetKey() == "" {
				return act, fmt.Errorf("metadata.metadata_key.path[%d].key: required", k)
			}
			act.path = append(act.path, seg.GetKey())
		}
		return act, nil
	case nil:
		return rlAction{}, errors.New("action_specifier: required")
	default:
		return rlAction{}, fmt.Errorf("action_specifier: %T is not supported", s)
	}
}

// actionInput is what rate limit actions read of a request.
type actionInput struct {
	fr     *filterRun
	client netip.Addr // the client's address; invalid: unknown
	parsed bool
}

func (in *actionInput) clientAddr() netip.Addr {
	if !in.parsed {
		in.parsed = true
		if ap, err := netip.ParseAddrPort(in.fr.req.RemoteAddr); err == nil {
			in.client = ap.Addr()
		} else if a, err := netip.ParseAddr(remoteIP(in.fr.req.RemoteAddr)); err == nil {
			in.client = a
		}
	}
	return in.client
}

// entries appends the policy's descriptor entries to dst; ok is false when
// an action finds nothing (the policy makes no descriptor).
func (p *rateLimitPolicy) entries(in *actionInput, dst []descEntry) ([]descEntry, bool) {
	for i := range p.actions {
		e, ok := p.actions[i].entry(in)
		if !ok {
			return dst, false
		}
		dst = append(dst, e)
	}
	return dst, true
}

func (a *rlAction) entry(in *actionInput) (descEntry, bool) {
	fr := in.fr
	switch a.kind {
	case actGenericKey:
		return descEntry{a.key, a.value}, true
	case actRequestHeader:
		var v string
		switch a.header {
		case ":method":
			v = fr.req.Method
		case ":path":
			v = fr.pathQuery
		case ":authority":
			v = fr.req.Host
		case ":scheme":
			v = fr.scheme
		default:
			vs := fr.req.Header[a.header]
			if len(vs) == 0 {
				return descEntry{}, false
			}
			v = vs[0]
		}
		return descEntry{a.key, v}, true
	case actHeaderValueMatch:
		all := true
		for _, m := range a.headers {
			if !m.Matches(fr.req, fr.pathQuery, fr.scheme) {
				all = false
				break
			}
		}
		if all != a.expect {
			return descEntry{}, false
		}
		return descEntry{a.key, a.value}, true
	case actRemoteAddressMatch:
		ip := in.clientAddr()
		if !ip.IsValid() {
			return descEntry{}, false
		}
		ip = ip.Unmap().WithZone("")
		hit := false
		for _, r := range a.ranges {
			if r.Contains(ip) {
				hit = true
				break
			}
		}
		if hit == a.invert {
			return descEntry{}, false
		}
		if a.clientIP {
			return descEntry{a.key, ip.String()}, true
		}
		return descEntry{a.key, a.value}, true
	case actMetadata:
		s := fr.meta[a.namespace]
		if s == nil {
			return descEntry{}, false
		}
		var v *structpb.Value
		for i, k := range a.path {
			v = s.GetFields()[k]
			if v == nil {
				return descEntry{}, false
			}
			if i < len(a.path)-1 {
				if s = v.GetStructValue(); s == nil {
					return descEntry{}, false
				}
			}
		}
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || sv.StringValue == "" {
			return descEntry{}, false
		}
		return descEntry{a.key, sv.StringValue}, true
	}
	return descEntry{}, false
}

// rateLimit runs a ratelimit filter; it reports whether it answered the
// request.
func (fr *filterRun) rateLimit(f *httpFilter, rf *routeFilter) bool {
	if rf == nil || rf.rl == nil || len(rf.rl.limits) == 0 {
		return false
	}
	in := &actionInput{fr: fr}
	var descs []*commonrlv3.RateLimitDescriptor
	var buf []descEntry
	for _, p := range rf.rl.limits {
		var ok bool
		buf, ok = p.entries(in, buf[:0])
		if !ok {
			continue
		}
		d := &commonrlv3.RateLimitDescriptor{Entries: make([]*commonrlv3.RateLimitDescriptor_Entry, len(buf)), HitsAddend: p.hits}
		for i, e := range buf {
			d.Entries[i] = &commonrlv3.RateLimitDescriptor_Entry{Key: e.key, Value: e.value}
		}
		descs = append(descs, d)
	}
	if len(descs) == 0 {
		return false
	}
	rl := f.rl
	ctx := fr.req.Context()
	var cancel context.CancelFunc = func() {}
	if rl.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, rl.timeout)
	}
	resp, err := rl.client.rls.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: rl.domain, Descriptors: descs})
	cancel()
	if err != nil {
		rl.errored.Inc()
		fr.h.rt.log.Debug("rate limit service call failed", "filter", f.name, "route", fr.route.Name, "error", err)
		if rl.failClosed {
			fr.reply(rl.statusOnError, "", nil)
			return true
		}
		rl.failedOpen.Inc()
		return false
	}
	respOps := serviceHeaders(resp.GetResponseHeadersToAdd())
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		rl.denied.Inc()
		fr.reply(http.StatusTooManyRequests, string(resp.GetRawBody()), func(h http.Header) {
			applyHeaderOps(h, respOps, false)
			h["X-Envoy-Ratelimited"] = []string{"true"}
		})
		return true
	}
	rl.allowed.Inc()
	applyHeaderOps(fr.req.Header, serviceHeaders(resp.GetRequestHeadersToAdd()), false)
	fr.addResponse(respOps)
	return false
}

// serviceHeaders turns the headers a rate limit service answered into
// edits that add them.
func serviceHeaders(hvs []*corev3.HeaderValue) []hdrOp {
	if len(hvs) == 0 {
		return nil
	}
	out := make([]hdrOp, 0, len(hvs))
	for _, hv := range hvs {
		v := hv.GetValue()
		if v == "" && len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		if key, ok := editableHeader(hv.GetKey(), v); ok {
			out = append(out, hdrOp{key: key, value: v, action: hdrAdd})
		}
	}
	return out
}
