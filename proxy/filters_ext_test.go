package proxy

import (
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/hcm"
)

// TestMergeRouteFilters: a route takes the entries of one level only as
// they are, and has the filter merge an entry both levels set (ext_authz
// merges context extensions: extauthz.TestMerge); a disabled entry wins
// whole.
func TestMergeRouteFilters(t *testing.T) {
	entry := func(m proto.Message) *hcm.RouteFilter {
		t.Helper()
		rf, err := compileRouteFilter(anyOf(t, m), ext.RouteBuild{})
		if err != nil {
			t.Fatal(err)
		}
		return rf
	}
	checks := func(kv ...string) *extauthzv3.ExtAuthzPerRoute {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: m}}}
	}
	vh := map[string]*hcm.RouteFilter{"a": entry(checks("x", "vh", "y", "vh")), "b": entry(authzDisabled())}
	rt := map[string]*hcm.RouteFilter{"a": entry(checks("y", "route")), "c": entry(authzDisabled())}
	m := mergeRouteFilters(vh, rt)
	if m["b"] != vh["b"] || m["c"] != rt["c"] {
		t.Errorf("entries of one level only: %+v %+v", m["b"], m["c"])
	}
	if a := m["a"]; a == rt["a"] || a == vh["a"] || a.Ext != rt["a"].Ext || a.Disabled {
		t.Errorf("entry of both levels not merged by its filter: %+v", a)
	}
	// A FilterConfig that disables the filter on the route wins whole.
	off := entry(&routev3.FilterConfig{Disabled: true})
	if m = mergeRouteFilters(vh, map[string]*hcm.RouteFilter{"a": off}); m["a"] != off || !off.Disabled {
		t.Error("the route's disabled entry lost to its virtual host's")
	}
}

// TestPerRouteWrappers: a typed_per_filter_config entry is seen through a
// FilterConfig and a TypedStruct; an optional entry no filter takes is
// ignored, any other is refused.
func TestPerRouteWrappers(t *testing.T) {
	value, err := structpb.NewStruct(map[string]any{"check_settings": map[string]any{"context_extensions": map[string]any{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := anyOf(t, &xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", Value: value})
	rf, err := compileRouteFilter(anyOf(t, &routev3.FilterConfig{Config: ts}), ext.RouteBuild{})
	if err != nil || rf == nil || rf.Ext == nil || rf.Ext.Name != "envoy.filters.http.ext_authz" || rf.Disabled {
		t.Fatalf("TypedStruct in a FilterConfig: %+v, %v", rf, err)
	}
	unknown := anyOf(t, &routev3.Route{})
	if rf, err := compileRouteFilter(anyOf(t, &routev3.FilterConfig{Config: unknown, IsOptional: true}), ext.RouteBuild{}); rf != nil || err != nil {
		t.Errorf("optional entry of an unknown type: %+v, %v; want it ignored", rf, err)
	}
	if _, err := compileRouteFilter(anyOf(t, &routev3.FilterConfig{Config: unknown}), ext.RouteBuild{}); err == nil ||
		!strings.Contains(err.Error(), "envoy.config.route.v3.Route is not the per-route configuration of a filter the proxy runs") {
		t.Errorf("required entry of an unknown type: %v", err)
	}
	if _, err := compileRouteFilter(anyOf(t, &routev3.FilterConfig{}), ext.RouteBuild{}); err == nil || !strings.Contains(err.Error(), "config: required") {
		t.Errorf("FilterConfig without a config: %v", err)
	}
}

// TestHTTPFilterTypedStruct: an http_filters typed_config may be a
// TypedStruct naming the filter's config by type_url; one of an unknown type
// is refused by that type's name.
func TestHTTPFilterTypedStruct(t *testing.T) {
	r := New(Options{})
	env := r.newCompileEnv(r.cfg.Load())
	defer env.discard()
	typed := func(typeURL string, fields map[string]any) *hcmv3.HttpFilter {
		value, err := structpb.NewStruct(fields)
		if err != nil {
			t.Fatal(err)
		}
		return &hcmv3.HttpFilter{Name: "local", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: anyOf(t, &xdstypev3.TypedStruct{TypeUrl: typeURL, Value: value})}}
	}
	router := httpFilterOf(t, routerFilterName, &routerv3.Router{})
	fc, err := compileHTTPFilters([]*hcmv3.HttpFilter{
		typed("type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", map[string]any{"stat_prefix": "x"}),
		router,
	}, env)
	if err != nil || fc == nil || len(fc.filters) != 1 || fc.filters[0].Ext.Name != "envoy.filters.http.local_ratelimit" {
		t.Fatalf("TypedStruct LocalRateLimit: %+v, %v", fc, err)
	}
	_, err = compileHTTPFilters([]*hcmv3.HttpFilter{typed("type.googleapis.com/envoy.config.route.v3.Route", nil), router}, env)
	if err == nil || !strings.Contains(err.Error(), `http_filters[0] "local": typed_config: envoy.config.route.v3.Route is not a filter the proxy runs`) {
		t.Errorf("TypedStruct of an unknown type: %v", err)
	}
}
