package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ir"
)

// The HTTP filters of policies, in the order they run, each emitted only in
// the connection managers of chains where some route needs it:
//
//   - LocalRateLimitFilter: per-proxy token buckets; disabled at filter level,
//     enabled by each limited route's LocalRateLimit.
//   - ExtAuthzFilter (failure_mode_allow false) and ExtAuthzFailOpenFilter
//     (true): the external authorization service, called with the route's
//     policy ID in context_extensions[AuthzPolicyKey]; routes without a
//     policy (or with the other failure mode) disable it.
//   - RateLimitFilter (failure_mode_deny false) and RateLimitFailClosedFilter
//     (true): the global rate-limit service, domain RateLimitDomain, with the
//     descriptors of each route's RateLimitPerRoute.
//
// A failure mode is a filter-level setting in Envoy, so each mode is its own
// filter instance and each route enables the one of its policy. A filter
// that cannot decide answers 503 (status_on_error) when it fails closed.
const (
	LocalRateLimitFilter      = "envoy.filters.http.local_ratelimit"
	ExtAuthzFilter            = "envoy.filters.http.ext_authz"
	ExtAuthzFailOpenFilter    = "envoy.filters.http.ext_authz/fail-open"
	RateLimitFilter           = "envoy.filters.http.ratelimit"
	RateLimitFailClosedFilter = "envoy.filters.http.ratelimit/fail-closed"

	// AuthzCluster and RateLimitCluster are the clusters of the services.
	AuthzCluster     = "sekisho/authz"
	RateLimitCluster = "sekisho/ratelimit"

	// AuthzPolicyKey is the context extension that names the policy.
	AuthzPolicyKey = "sekisho.policy"
	// RateLimitDomain is the domain of every rate-limit request.
	RateLimitDomain = "sekisho"

	// Descriptor entry keys: RuleKey's value is the rule ID and comes first.
	RuleKey   = "sekisho.rule"
	ScopeKey  = "sekisho.scope"
	MatchKey  = "sekisho.match"
	ClientKey = "client"

	// ClientAddressFormat is the descriptor value of a Distinct client CIDR.
	ClientAddressFormat = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
)

// Timeouts of the policy filters. The rate-limit service answers within its
// own deadline (20ms by default, failure mode applied), so the proxy's
// timeout only covers a service that cannot be reached.
const (
	AuthzTimeout     = 500 * time.Millisecond
	RateLimitTimeout = 100 * time.Millisecond
)

// chainFilters says which policy filters a chain's routes need.
type chainFilters struct {
	local, authz, authzOpen, rl, rlClosed bool
}

func filtersOf(fc *ir.FilterChain) chainFilters {
	var f chainFilters
	for _, vh := range fc.VirtualHosts {
		for _, r := range vh.Routes {
			if r == nil {
				continue
			}
			if r.Auth != nil {
				if r.Auth.FailOpen {
					f.authzOpen = true
				} else {
					f.authz = true
				}
			}
			if rl := r.RateLimit; rl != nil {
				if len(rl.Local) > 0 {
					f.local = true
				}
				if len(rl.Global) > 0 {
					if rl.FailClosed {
						f.rlClosed = true
					} else {
						f.rl = true
					}
				}
			}
		}
	}
	return f
}

// httpFilters returns the chain's HTTP filters, router last.
func (t *translator) httpFilters(f chainFilters, router *anypb.Any) ([]*hcmv3.HttpFilter, error) {
	var out []*hcmv3.HttpFilter
	add := func(name string, m validatable) error {
		a, err := toAny(m)
		if err != nil {
			return fmt.Errorf("http filter %q: %w", name, err)
		}
		out = append(out, &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}})
		return nil
	}
	if f.local {
		if err := add(LocalRateLimitFilter, &localrlv3.LocalRateLimit{StatPrefix: "local_rate_limit"}); err != nil {
			return nil, err
		}
	}
	if f.authz || f.authzOpen {
		if len(t.gw.AuthzService) == 0 {
			return nil, errors.New("authzService: routes have auth but the gateway names no authorization service")
		}
	}
	for _, m := range []struct {
		on   bool
		name string
		open bool
	}{{f.authz, ExtAuthzFilter, false}, {f.authzOpen, ExtAuthzFailOpenFilter, true}} {
		if !m.on {
			continue
		}
		if err := add(m.name, &extauthzv3.ExtAuthz{
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AuthzCluster}},
				Timeout:         durationpb.New(AuthzTimeout),
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
			FailureModeAllow:    m.open,
			StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		}); err != nil {
			return nil, err
		}
	}
	if (f.rl || f.rlClosed) && len(t.gw.RateLimitService) == 0 {
		return nil, errors.New("rateLimitService: routes have global rate limits but the gateway names no rate-limit service")
	}
	for _, m := range []struct {
		on     bool
		name   string
		closed bool
	}{{f.rl, RateLimitFilter, false}, {f.rlClosed, RateLimitFailClosedFilter, true}} {
		if !m.on {
			continue
		}
		rl := &ratelimitv3.RateLimit{
			Domain:          RateLimitDomain,
			FailureModeDeny: m.closed,
			Timeout:         durationpb.New(RateLimitTimeout),
			RateLimitService: &rlconfv3.RateLimitServiceConfig{
				GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: RateLimitCluster}}},
				TransportApiVersion: corev3.ApiVersion_V3,
			},
		}
		if m.closed {
			rl.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
		}
		if err := add(m.name, rl); err != nil {
			return nil, err
		}
	}
	out = append(out, &hcmv3.HttpFilter{Name: RouterFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}})
	return out, nil
}

// disabledAuthz is the per-route config that turns an ext_authz filter off.
func disabledAuthz() (*anypb.Any, error) {
	return toAny(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})
}

// vhostPolicies turns the chain's ext_authz filters off for requests that no
// route of the virtual host takes.
func vhostPolicies(vh *routev3.VirtualHost, f chainFilters) error {
	for _, m := range []struct {
		on   bool
		name string
	}{{f.authz, ExtAuthzFilter}, {f.authzOpen, ExtAuthzFailOpenFilter}} {
		if !m.on {
			continue
		}
		a, err := disabledAuthz()
		if err != nil {
			return err
		}
		if vh.TypedPerFilterConfig == nil {
			vh.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		vh.TypedPerFilterConfig[m.name] = a
	}
	return nil
}

// routePolicies sets the route's per-filter configs.
func routePolicies(route *routev3.Route, r *ir.Route, f chainFilters) error {
	set := func(name string, m validatable) error {
		a, err := toAny(m)
		if err != nil {
			return err
		}
		if route.TypedPerFilterConfig == nil {
			route.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		route.TypedPerFilterConfig[name] = a
		return nil
	}
	// ext_authz: the route's policy on the filter of its failure mode, every
	// other ext_authz filter of the chain off.
	for _, m := range []struct {
		on   bool
		name string
		open bool
	}{{f.authz, ExtAuthzFilter, false}, {f.authzOpen, ExtAuthzFailOpenFilter, true}} {
		if !m.on {
			continue
		}
		if r.Auth != nil && r.Auth.FailOpen == m.open {
			if r.Auth.Policy == "" {
				return errors.New("auth.policy: empty")
			}
			if err := set(m.name, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{
				CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: map[string]string{AuthzPolicyKey: r.Auth.Policy}},
			}}); err != nil {
				return fmt.Errorf("auth: %w", err)
			}
			continue
		}
		if err := set(m.name, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}}); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	rl := r.RateLimit
	if rl == nil {
		return nil
	}
	if len(rl.Global) > 0 {
		per := &ratelimitv3.RateLimitPerRoute{}
		for i, g := range rl.Global {
			x, err := globalRateLimit(g)
			if err != nil {
				return fmt.Errorf("rateLimit.global[%d]: %w", i, err)
			}
			per.RateLimits = append(per.RateLimits, x)
		}
		name := RateLimitFilter
		if rl.FailClosed {
			name = RateLimitFailClosedFilter
		}
		if err := set(name, per); err != nil {
			return fmt.Errorf("rateLimit.global: %w", err)
		}
	}
	if len(rl.Local) > 0 {
		x, err := localRateLimit(rl.Local)
		if err != nil {
			return fmt.Errorf("rateLimit.local: %w", err)
		}
		if err := set(LocalRateLimitFilter, x); err != nil {
			return fmt.Errorf("rateLimit.local: %w", err)
		}
	}
	return nil
}

func genericKey(key, value string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: key, DescriptorValue: value}}}
}

// globalRateLimit is one rule's descriptor for one route. Its entries are,
// in order: the rule ID; the route's scope when the rule is not shared; a
// static "sekisho.match" entry when the rule has header, method or path
// conditions (produced only when they all hold); the client CIDR entry; one
// entry per Distinct header; one per claim (read from the dynamic metadata
// the route's ext_authz filter stores under "claims").
func globalRateLimit(g ir.GlobalRateLimit) (*routev3.RateLimit, error) {
	if g.Rule == "" {
		return nil, errors.New("rule: empty")
	}
	out := &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{genericKey(RuleKey, g.Rule)}}
	if g.Scope != "" {
		out.Actions = append(out.Actions, genericKey(ScopeKey, g.Scope))
	}
	var conds []*routev3.HeaderMatcher
	for i, h := range g.Headers {
		if h.Name == "" {
			return nil, fmt.Errorf("headers[%d].name: empty", i)
		}
		if h.Distinct {
			continue
		}
		sm, err := stringMatcher(ir.HeaderMatch{Name: h.Name, Type: h.Type, Value: h.Value})
		if err != nil {
			return nil, fmt.Errorf("headers[%d]: %w", i, err)
		}
		conds = append(conds, &routev3.HeaderMatcher{Name: h.Name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}})
	}
	if len(g.Methods) > 0 {
		for i, m := range g.Methods {
			if m == "" || strings.ContainsAny(m, "|()") {
				return nil, fmt.Errorf("methods[%d]: %q is not a method", i, m)
			}
		}
		re, err := regexMatcher(strings.Join(quoteAll(g.Methods), "|"))
		if err != nil {
			return nil, fmt.Errorf("methods: %w", err)
		}
		conds = append(conds, &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re}}}})
	}
	if g.Path != nil {
		expr, err := pathRegex(g.Path)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		re, err := regexMatcher(expr)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		conds = append(conds, &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re}}}})
	}
	if len(conds) > 0 {
		out.Actions = append(out.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
			HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorKey: MatchKey, DescriptorValue: "1", ExpectMatch: wrapperspb.Bool(true), Headers: conds}}})
	}
	if len(g.ClientCIDRs) > 0 {
		am := &matcherv3.AddressMatcher{}
		for i, c := range g.ClientCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("clientCIDRs[%d]: %w", i, err)
			}
			am.Ranges = append(am.Ranges, &xdscorev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))})
		}
		value := "in-range"
		if g.DistinctClient {
			value = ClientAddressFormat
		}
		out.Actions = append(out.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddressMatch_{
			RemoteAddressMatch: &routev3.RateLimit_Action_RemoteAddressMatch{DescriptorKey: ClientKey, DescriptorValue: value, AddressMatcher: am}}})
	}
	for _, h := range g.Headers {
		if !h.Distinct {
			continue
		}
		out.Actions = append(out.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: h.Name, DescriptorKey: "header." + h.Name}}})
	}
	if len(g.Claims) > 0 {
		// Envoy's ext_authz keeps its dynamic metadata under its extension
		// name, whatever the filter instance is called.
		ns := ExtAuthzFilter
		for i, c := range g.Claims {
			if c == "" {
				return nil, fmt.Errorf("claims[%d]: empty", i)
			}
			out.Actions = append(out.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{
				Metadata: &routev3.RateLimit_Action_MetaData{
					DescriptorKey: "claim." + c,
					MetadataKey: &metadatav3.MetadataKey{Key: ns, Path: []*metadatav3.MetadataKey_PathSegment{
						{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "claims"}},
						{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: c}},
					}},
					Source: routev3.RateLimit_Action_MetaData_DYNAMIC,
				}}})
		}
	}
	if g.Cost > 1 {
		out.HitsAddend = &routev3.RateLimit_HitsAddend{Number: wrapperspb.UInt64(uint64(g.Cost))}
	}
	return out, nil
}

func quoteAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = regexp.QuoteMeta(s)
	}
	return out
}

// pathRegex is a whole-string expression over ":path" (path and query) that
// holds when the path part matches m as a route's path match would.
func pathRegex(m *ir.PathMatch) (string, error) {
	const query = `(\?.*)?`
	switch m.Type {
	case ir.MatchExact:
		return regexp.QuoteMeta(m.Value) + query, nil
	case ir.MatchPrefix:
		v := strings.TrimSuffix(m.Value, "/")
		if v == "" {
			return `/.*`, nil
		}
		return regexp.QuoteMeta(v) + `([/?].*)?`, nil
	case ir.MatchRegex:
		if _, err := regexp.Compile(m.Value); err != nil {
			return "", fmt.Errorf("regular expression %q: %w", m.Value, err)
		}
		return `(?:` + m.Value + `)` + query, nil
	}
	return "", fmt.Errorf("type: %q is not supported", m.Type)
}

// localRateLimit is a route's per-proxy buckets: the first rule is the
// route's token bucket, each other rule a descriptor of its own (a generic
// key naming the rule) that every request produces, so a request needs a
// token from every bucket.
func localRateLimit(rules []ir.LocalRateLimit) (*localrlv3.LocalRateLimit, error) {
	bucket := func(i int, r ir.LocalRateLimit) (*typev3.TokenBucket, error) {
		if r.Requests == 0 {
			return nil, fmt.Errorf("[%d].requests: must be at least 1", i)
		}
		if r.Per <= 0 {
			return nil, fmt.Errorf("[%d].per: must be positive", i)
		}
		return &typev3.TokenBucket{MaxTokens: r.Requests, TokensPerFill: wrapperspb.UInt32(r.Requests), FillInterval: durationpb.New(r.Per)}, nil
	}
	tb, err := bucket(0, rules[0])
	if err != nil {
		return nil, err
	}
	hundred := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	out := &localrlv3.LocalRateLimit{
		StatPrefix:     "local_rate_limit",
		TokenBucket:    tb,
		FilterEnabled:  &corev3.RuntimeFractionalPercent{DefaultValue: hundred.DefaultValue, RuntimeKey: "local_rate_limit_enabled"},
		FilterEnforced: &corev3.RuntimeFractionalPercent{DefaultValue: hundred.DefaultValue, RuntimeKey: "local_rate_limit_enforced"},
	}
	for i, r := range rules[1:] {
		b, err := bucket(i+1, r)
		if err != nil {
			return nil, err
		}
		out.Descriptors = append(out.Descriptors, &commonrlv3.LocalRateLimitDescriptor{
			Entries:     []*commonrlv3.RateLimitDescriptor_Entry{{Key: "sekisho.local", Value: r.Name}},
			TokenBucket: b,
		})
		out.RateLimits = append(out.RateLimits, &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{genericKey("sekisho.local", r.Name)}})
	}
	return out, nil
}

// serviceCluster is the IR cluster of one of sekisho's services (gRPC, h2c):
// one endpoint per replica.
func serviceCluster(name string, addrs []ir.ServiceAddress) (*ir.Cluster, error) {
	c := &ir.Cluster{Name: name, Protocol: ir.AppProtocolH2C, LoadBalancer: ir.LoadBalancerRoundRobin}
	for i, a := range addrs {
		if a.Address == "" || a.Port == 0 || a.Port > 65535 {
			return nil, fmt.Errorf("[%d]: address %q port %d is not a service address", i, a.Address, a.Port)
		}
		c.Endpoints = append(c.Endpoints, ir.Endpoint{Address: a.Address, Port: a.Port, Ready: true})
	}
	return c, nil
}
