package proxy

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/proto"

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
