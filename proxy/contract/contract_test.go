package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/xds/translate"
)

// TestGoldensHonoured translates every golden IR input of the xDS translator
// and fails on any field the proxy does not honour.
func TestGoldensHonoured(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("..", "..", "xds", "translate", "testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 20 {
		t.Fatalf("found %d golden inputs, want at least 20", len(inputs))
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			gw := &ir.Gateway{}
			if err := yaml.UnmarshalStrict(data, gw); err != nil {
				t.Fatalf("decoding %s: %v", in, err)
			}
			res, err := translate.Translate(gw)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			var msgs []proto.Message
			for _, x := range res.Listeners {
				msgs = append(msgs, x)
			}
			for _, x := range res.Routes {
				msgs = append(msgs, x)
			}
			for _, x := range res.Clusters {
				msgs = append(msgs, x)
			}
			for _, x := range res.Endpoints {
				msgs = append(msgs, x)
			}
			for _, x := range res.Secrets {
				msgs = append(msgs, x)
			}
			for _, m := range msgs {
				if bad := Unhonoured(m); len(bad) > 0 {
					t.Errorf("%s: not honoured: %v", m.ProtoReflect().Descriptor().FullName(), bad)
				}
			}
		})
	}
}

func TestUnhonouredFindsFields(t *testing.T) {
	// A field the proxy does not honour, at top level.
	rc := &routev3.RouteConfiguration{Name: "r", MostSpecificHeaderMutationsWins: true}
	bad := Unhonoured(rc)
	if len(bad) != 1 || !strings.Contains(bad[0], "envoy.config.route.v3.RouteConfiguration.most_specific_header_mutations_wins") {
		t.Fatalf("Unhonoured = %v, want most_specific_header_mutations_wins", bad)
	}
	// Nested inside an Any typed config.
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", XffNumTrustedHops: 2, NormalizePath: wrapperspb.Bool(true)}
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}},
	}}}
	bad = Unhonoured(l)
	if len(bad) != 1 || !strings.Contains(bad[0], "xff_num_trusted_hops") || !strings.Contains(bad[0], "filter_chains[0]") {
		t.Fatalf("Unhonoured = %v, want xff_num_trusted_hops inside the chain", bad)
	}
	// An Any of a type the proxy does not know.
	other, err := anypb.New(&routev3.Route{})
	if err != nil {
		t.Fatal(err)
	}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: other}
	bad = Unhonoured(l)
	if len(bad) != 1 || !strings.Contains(bad[0], "typed config envoy.config.route.v3.Route") {
		t.Fatalf("Unhonoured = %v, want the unknown typed config", bad)
	}
	if err := Check("listener", "l", l); err == nil || !strings.Contains(err.Error(), `listener "l"`) {
		t.Fatalf("Check = %v, want an error naming the listener", err)
	}
}

func TestRegistryNamesExist(t *testing.T) {
	// Every registered field must name a real field, or the registry rots.
	for _, f := range Fields() {
		i := strings.LastIndex(f, ".")
		if !fieldExists(f[:i], f[i+1:]) {
			t.Errorf("registry names %s, which is not a known field", f)
		}
	}
	if fieldExists("envoy.config.route.v3.RouteAction", "no_such_field") {
		t.Fatal("fieldExists finds a field that does not exist")
	}
}

// TestFilterConfigsChecked: the walk enters the HTTP filters' typed configs
// (in http_filters and in typed_per_filter_config) and finds what the proxy
// does not honour there.
func TestFilterConfigsChecked(t *testing.T) {
	anyOf := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	listener := func(fs ...*hcmv3.HttpFilter) *listenerv3.Listener {
		hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", HttpFilters: fs}
		return &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(hcm)}}},
		}}}
	}
	filter := func(name string, m proto.Message) *hcmv3.HttpFilter {
		return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(m)}}
	}
	authz := &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sekisho/authz"}},
			Timeout:         durationpb.New(500 * time.Millisecond),
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    true,
		StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
	rl := &ratelimitv3.RateLimit{
		Domain: "sekisho", FailureModeDeny: true, Timeout: durationpb.New(50 * time.Millisecond),
		RateLimitService: &rlconfv3.RateLimitServiceConfig{
			GrpcService:         &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sekisho/ratelimit"}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
	l := listener(filter("envoy.filters.http.local_ratelimit", &localrlv3.LocalRateLimit{StatPrefix: "local_rate_limit"}),
		filter("envoy.filters.http.ext_authz/fail-open", authz), filter("envoy.filters.http.ratelimit/fail-closed", rl),
		filter("envoy.filters.http.router", &routerv3.Router{}))
	if bad := Unhonoured(l); len(bad) != 0 {
		t.Errorf("the filters the control plane emits: not honoured: %v", bad)
	}

	authz.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: 10}
	rl.EnableXRatelimitHeaders = ratelimitv3.RateLimit_DRAFT_VERSION_03
	bad := Unhonoured(listener(filter("a", authz), filter("r", rl)))
	if len(bad) != 2 || !strings.Contains(strings.Join(bad, " "), "ExtAuthz.with_request_body") || !strings.Contains(strings.Join(bad, " "), "RateLimit.enable_x_ratelimit_headers") {
		t.Errorf("Unhonoured = %v, want with_request_body and enable_x_ratelimit_headers", bad)
	}

	pct := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}, RuntimeKey: "local_rate_limit_enabled"}
	local := &localrlv3.LocalRateLimit{
		StatPrefix:     "local_rate_limit",
		TokenBucket:    &typev3.TokenBucket{MaxTokens: 10, TokensPerFill: wrapperspb.UInt32(10), FillInterval: durationpb.New(time.Second)},
		FilterEnabled:  pct,
		FilterEnforced: pct,
		Descriptors: []*commonrlv3.LocalRateLimitDescriptor{{
			Entries:     []*commonrlv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}},
			TokenBucket: &typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(time.Minute)},
		}},
		RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
			GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: "k", DescriptorValue: "v"}}}}}},
	}
	global := &ratelimitv3.RateLimitPerRoute{RateLimits: []*routev3.RateLimit{{
		HitsAddend: &routev3.RateLimit_HitsAddend{Number: wrapperspb.UInt64(2)},
		Actions: []*routev3.RateLimit_Action{
			{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "x-user", DescriptorKey: "user"}}},
			{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorKey: "m", DescriptorValue: "1", ExpectMatch: wrapperspb.Bool(true),
				Headers: []*routev3.HeaderMatcher{{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a.*"}}}}}}}}},
			{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddressMatch_{RemoteAddressMatch: &routev3.RateLimit_Action_RemoteAddressMatch{
				DescriptorKey: "client", DescriptorValue: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
				AddressMatcher: &matcherv3.AddressMatcher{Ranges: []*xdscorev3.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}}}},
			{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{DescriptorKey: "sub",
				MetadataKey: &metadatav3.MetadataKey{Key: "envoy.filters.http.ext_authz", Path: []*metadatav3.MetadataKey_PathSegment{
					{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "claims"}}, {Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "sub"}}}}}}},
		},
	}}}
	check := &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions: map[string]string{"sekisho.policy": "ns/p"}}}}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.ext_authz": anyOf(&extauthzv3.ExtAuthzPerRoute{
			Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})},
		Routes: []*routev3.Route{{Name: "r", TypedPerFilterConfig: map[string]*anypb.Any{
			"envoy.filters.http.local_ratelimit": anyOf(local),
			"envoy.filters.http.ratelimit":       anyOf(global),
			"envoy.filters.http.ext_authz":       anyOf(check),
		}}},
	}}}
	if bad := Unhonoured(rc); len(bad) != 0 {
		t.Errorf("the per-route configurations the control plane emits: not honoured: %v", bad)
	}

	global.RateLimits[0].Actions[0].GetRequestHeaders().SkipIfAbsent = true
	local.AlwaysConsumeDefaultTokenBucket = wrapperspb.Bool(false)
	check.GetCheckSettings().DisableRequestBodyBuffering = true
	rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{
		"envoy.filters.http.local_ratelimit": anyOf(local),
		"envoy.filters.http.ratelimit":       anyOf(global),
		"envoy.filters.http.ext_authz":       anyOf(check),
	}
	got := strings.Join(Unhonoured(rc), " ")
	for _, want := range []string{
		`typed_per_filter_config[envoy.filters.http.ratelimit]<RateLimitPerRoute>.rate_limits[0].actions[0].request_headers.skip_if_absent`,
		"LocalRateLimit.always_consume_default_token_bucket",
		"CheckSettings.disable_request_body_buffering",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Unhonoured = %s; want %s", got, want)
		}
	}
}
