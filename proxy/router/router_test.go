package router

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func direct(name string, m *routev3.RouteMatch) *routev3.Route {
	return &routev3.Route{Name: name, Match: m, Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}}
}

func exactSM(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func regexSM(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}}
}

func testTable(t *testing.T) *Table {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{
		{Name: "exact", Domains: []string{"api.example.com"}, Routes: []*routev3.Route{
			direct("exact-path", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/v1/users"}}),
			direct("get-only", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/v1"},
				Headers: []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("GET")}}}}),
			direct("hdr", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/v1"},
				Headers: []*routev3.HeaderMatcher{{Name: "x-version", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regexSM("b[0-9]+")}}}}),
			direct("not-canary", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/v1"},
				Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true}}}),
			direct("query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exactSM("on now")}}}}),
			direct("regex", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/items/[0-9]+"}}}),
			direct("rest", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}),
		}},
		{Name: "wild-long", Domains: []string{"*.eu.example.com"}, Routes: []*routev3.Route{direct("wild-long", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}})}},
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{direct("wild", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}})}},
		{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{direct("any", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/only"}})}},
	}}
	tb, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMatch(t *testing.T) {
	tb := testTable(t)
	for _, tc := range []struct {
		host, method, path, query string
		hdr                       map[string]string
		want                      string
	}{
		{"api.example.com", "POST", "/v1/users", "", nil, "exact-path"},
		{"API.example.com:8443", "POST", "/v1/users", "", nil, "exact-path"},
		{"api.example.com", "GET", "/v1/users/1", "", nil, "get-only"},
		{"api.example.com", "GET", "/v1", "", nil, "get-only"},
		{"api.example.com", "POST", "/v1/x", "", map[string]string{"X-Version": "b12", "X-Canary": "1"}, "hdr"},
		{"api.example.com", "POST", "/v1/x", "", map[string]string{"X-Version": "b12x", "X-Canary": "1"}, "rest"},
		{"api.example.com", "POST", "/v1/x", "", nil, "not-canary"},
		{"api.example.com", "POST", "/v10", "", nil, "rest"}, // not element-wise under /v1
		{"api.example.com", "POST", "/a", "debug=on+now", map[string]string{"X-Canary": "1"}, "query"},
		{"api.example.com", "POST", "/a", "x=1&debug=on%20now", nil, "query"},
		{"api.example.com", "POST", "/a", "debug=off", nil, "rest"},
		{"api.example.com", "POST", "/items/42", "", nil, "regex"},
		{"api.example.com", "POST", "/items/42/x", "", nil, "rest"},
		{"a.eu.example.com", "GET", "/", "", nil, "wild-long"},
		{"a.b.example.com", "GET", "/", "", nil, "wild"},
		{"example.com", "GET", "/only", "", nil, "any"},
		{"example.com", "GET", "/other", "", nil, ""},
	} {
		r := &http.Request{Method: tc.method, Header: http.Header{}, URL: &url.URL{RawQuery: tc.query}}
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		got := ""
		if rt := tb.Match(tc.host, tc.path, r); rt != nil {
			got = rt.Name
		}
		if got != tc.want {
			t.Errorf("%s %s %s?%s %v: matched %q, want %q", tc.host, tc.method, tc.path, tc.query, tc.hdr, got, tc.want)
		}
	}
}

func TestWeightedPick(t *testing.T) {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
		Clusters: []*routev3.WeightedCluster_ClusterWeight{
			{Name: "a", Weight: wrapperspb.UInt32(1)},
			{Name: "zero", Weight: wrapperspb.UInt32(0)},
			{Name: "b", Weight: wrapperspb.UInt32(9)},
		}}}}
	f, err := compileForward(ra)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 100000
	for i := 0; i < n; i++ {
		c, _ := f.PickCluster()
		counts[c]++
	}
	// Expected a = 10000; 6 standard deviations is about 570.
	if counts["zero"] != 0 || counts["a"] < 9400 || counts["a"] > 10600 || counts["a"]+counts["b"] != n {
		t.Errorf("pick counts %v, want about 1:9 and nothing for zero", counts)
	}
}

func TestRewritesAndRedirects(t *testing.T) {
	rt := &Route{pathKind: pathSeparated, path: "/old"}
	f := &Forward{prefixRewrite: "/new", hasPrefix: true}
	if got := f.RewritePath(rt, "/old/x"); got != "/new/x" {
		t.Errorf("prefix rewrite: %q", got)
	}
	re, subst, err := compileRewriteRegex(&matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/v([0-9])/(.*)$"}, Substitution: `/api/\2?v=\1$`})
	if err != nil {
		t.Fatal(err)
	}
	f = &Forward{regexRewrite: re, regexSubst: subst}
	if got := f.RewritePath(rt, "/v2/items"); got != "/api/items?v=2$" {
		t.Errorf("regex rewrite: %q", got)
	}
	d := &Redirect{Scheme: "https", Port: 443, Code: 301}
	if got := d.Location(rt, "http", "a.example:80", "/p", "q=1"); got != "https://a.example/p?q=1" {
		t.Errorf("redirect: %q", got)
	}
	d = &Redirect{Port: 8080, Code: 302}
	if got := d.Location(rt, "http", "a.example", "/p", ""); got != "http://a.example:8080/p" {
		t.Errorf("redirect with port: %q", got)
	}
}

func TestCompileRefuses(t *testing.T) {
	for name, r := range map[string]*routev3.Route{
		"bad regex": direct("x", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}),
		"pseudo header": direct("x", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("/")}}}}),
		"retry_on": {Name: "x", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "refused-stream"}}}},
		"host header": {Name: "x", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "host", Value: "h"}}},
			Action:              &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}},
	} {
		rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{r}}}}
		if _, err := Compile(rc); err == nil {
			t.Errorf("%s: Compile accepted it", name)
		}
	}
}

func bigTable(b testing.TB, n int) *Table {
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}}
	for i := 0; i < n; i++ {
		vh.Routes = append(vh.Routes, direct(fmt.Sprintf("r%d", i), &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: fmt.Sprintf("/svc%d/api", i)}}))
	}
	vh.Routes = append(vh.Routes, direct("fallback", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}))
	tb, err := Compile(&routev3.RouteConfiguration{Name: "big", VirtualHosts: []*routev3.VirtualHost{vh}})
	if err != nil {
		b.Fatal(err)
	}
	return tb
}

func TestBigTableIndexKeepsOrder(t *testing.T) {
	tb := bigTable(t, 1000)
	r := &http.Request{Method: "GET", Header: http.Header{}, URL: &url.URL{}}
	for path, want := range map[string]string{"/svc999/api/x": "r999", "/svc5/api": "r5", "/svc5/other": "fallback", "/nope": "fallback", "/": "fallback"} {
		if got := tb.Match("h", path, r); got == nil || got.Name != want {
			t.Errorf("%s: got %v, want %s", path, got, want)
		}
	}
}

func BenchmarkMatch10000Routes(b *testing.B) {
	tb := bigTable(b, 10000)
	r := &http.Request{Method: "GET", Header: http.Header{}, URL: &url.URL{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rt := tb.Match("api.example.com", "/svc9999/api/items", r); rt == nil || rt.Name != "r9999" {
			b.Fatal("wrong route")
		}
	}
}

func BenchmarkMatch10000RoutesLinear(b *testing.B) {
	tb := bigTable(b, 10000)
	for _, vh := range tb.exact {
		vh.bySegment = nil
	}
	tb.any.bySegment = nil
	r := &http.Request{Method: "GET", Header: http.Header{}, URL: &url.URL{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rt := tb.Match("api.example.com", "/svc9999/api/items", r); rt == nil || rt.Name != "r9999" {
			b.Fatal("wrong route")
		}
	}
}

func TestHeaderMatchPseudoHeaders(t *testing.T) {
	r := &http.Request{Method: "POST", Host: "api.example", Header: http.Header{"X-Tier": {"free", "trial"}}, URL: &url.URL{}}
	for _, tc := range []struct {
		m    *routev3.HeaderMatcher
		want bool
	}{
		{&routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regexSM(`/v1/[a-z]+(\?.*)?`)}}, true},
		{&routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("/v1/items")}}, false},
		{&routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("POST")}}, true},
		{&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("api.example")}}, true},
		{&routev3.HeaderMatcher{Name: ":scheme", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("https")}}, true},
		{&routev3.HeaderMatcher{Name: "x-tier", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("free,trial")}}, true},
		{&routev3.HeaderMatcher{Name: "x-none", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, false},
		{&routev3.HeaderMatcher{Name: "x-none", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true}, true},
	} {
		m, err := CompileHeaderMatch(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Matches(r, "/v1/items?x=1", "https"); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.m, got, tc.want)
		}
	}
	if _, err := CompileHeaderMatch(&routev3.HeaderMatcher{Name: ":status", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}); err == nil {
		t.Error(":status compiled")
	}
	// Route matches still take :method only.
	_, err := Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		direct("p", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}),
	}}}})
	if err == nil || !strings.Contains(err.Error(), `match.headers[0]: pseudo-header ":path" is not supported`) {
		t.Errorf("route with a :path matcher: %v", err)
	}
}

func TestReadsHeaders(t *testing.T) {
	if !testTable(t).ReadsHeaders() {
		t.Error("a table with header matches does not read headers")
	}
	if bigTable(t, 3).ReadsHeaders() {
		t.Error("a table of path matches reads headers")
	}
	methodOnly, err := Compile(&routev3.RouteConfiguration{Name: "m", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{
		direct("get", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactSM("GET")}}}}),
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	if methodOnly.ReadsHeaders() {
		t.Error("a match on the method alone reads headers")
	}
}
