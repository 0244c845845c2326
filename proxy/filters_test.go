package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

// protocols are the two ways a plaintext listener serves: sekisho's own
// HTTP/1.1 server, and net/http for h2c.
var protocols = []struct {
	name   string
	client *http.Client
	proto  string // as the CheckRequest names it
}{
	{"http1", client, "HTTP/1.1"},
	{"h2c", h2cClient(), "HTTP/2"},
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{
		Transport:     &http.Transport{Protocols: &p, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// closeIdleFirst closes the clients' idle connections before the runtime
// (started earlier) closes, so that it does not wait for them.
func closeIdleFirst(t testing.TB, cls ...*http.Client) {
	t.Cleanup(func() {
		for _, cl := range cls {
			cl.CloseIdleConnections()
		}
	})
}

// do sends a request (hdr: name, value, ...; "host" sets the Host) and
// reads the whole response.
func do(t testing.TB, cl *http.Client, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

func setOpt(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func addOpt(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}
}

// legacyOpt is a header option with the deprecated append field, which
// services still send.
func legacyOpt(k, v string, app bool) *corev3.HeaderValueOption {
	//lint:ignore SA1019 the deprecated field is what this exercises
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(app)}
}

// authzAnswers scripts the authorization service by the route's policy.
func authzAnswers(req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	okStatus := &rpcstatus.Status{Code: int32(codes.OK)}
	switch req.GetAttributes().GetContextExtensions()["sekisho.policy"] {
	case "ns/allow":
		claims, _ := structpb.NewStruct(map[string]any{"claims": map[string]any{"sub": "alice", "n": 3.0}})
		return &authv3.CheckResponse{
			Status: okStatus,
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					setOpt("x-user", "alice"),
					addOpt("x-tag", "t2"),
					legacyOpt("x-list", "b", true),
					setOpt("host", "evil.example"),
				},
				HeadersToRemove:         []string{"x-secret"},
				ResponseHeadersToAdd:    []*corev3.HeaderValueOption{addOpt("set-cookie", "sess=1"), setOpt("x-authz", "yes")},
				QueryParametersToRemove: []string{"code"},
			}},
			DynamicMetadata: claims,
		}, nil
	case "ns/deny":
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found},
				Headers: []*corev3.HeaderValueOption{
					setOpt("location", "https://login.example/start"),
					addOpt("set-cookie", "a=1"),
					addOpt("set-cookie", "b=2"),
					setOpt("www-authenticate", `Bearer realm="x"`),
				},
				Body: "denied\n",
			}},
		}, nil
	case "ns/unauthenticated":
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Body:   "who are you",
			}},
		}, nil
	}
	return nil, status.Error(codes.Internal, "no such policy")
}

func TestExtAuthz(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) { testExtAuthz(t, p.client, p.proto) })
	}
}

func testExtAuthz(t *testing.T, cl *http.Client, proto string) {
	az := &fakeAuthz{answer: authzAnswers}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	var routes []*ir.Route
	for _, n := range []string{"allow", "deny", "open", "failopen"} {
		r := route(n, prefix("/"+n))
		r.Forward = fwd(c.Name)
		routes = append(routes, r)
	}
	direct := route("direct", prefix("/direct"))
	direct.DirectResponse = &ir.DirectResponse{StatusCode: 200, Body: "direct"}
	routes = append(routes, direct)

	s := filterGateway(t, routes, azAddr, deadAddr(t), c)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, extAuthzConfig(false)), httpFilterOf(t, fAuthzOpen, extAuthzConfig(true)))
	// Off unless a route turns it on, as the control plane emits it.
	setPerRoute(t, s, "", fAuthz, authzDisabled())
	setPerRoute(t, s, "", fAuthzOpen, authzDisabled())
	setPerRoute(t, s, "allow", fAuthz, authzPolicy("ns/allow"))
	setPerRoute(t, s, "deny", fAuthz, authzPolicy("ns/deny"))
	setPerRoute(t, s, "direct", fAuthz, authzPolicy("ns/deny"))
	setPerRoute(t, s, "failopen", fAuthzOpen, authzPolicy("ns/allow"))
	reg := prometheus.NewRegistry()
	rt, addr := startRuntime(t, s, "default/eg/http", func(o *Options) { o.Registerer = reg })
	closeIdleFirst(t, client, protocols[1].client)

	// Allowed: the service's headers go upstream and downstream.
	resp, body := do(t, cl, "GET", "http://"+addr+"/allow/x?code=secret&q=1", "host", "app.example",
		"X-User", "mallory", "X-Secret", "s", "X-List", "a", "X-Tag", "t1")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("allowed request: %d %q", resp.StatusCode, body)
	}
	got := be.last(t)
	if v := got.Header.Values("X-User"); !slices.Equal(v, []string{"alice"}) {
		t.Errorf("upstream X-User = %q, want [alice] (set by the service)", v)
	}
	if v := got.Header.Values("X-Tag"); !slices.Equal(v, []string{"t1", "t2"}) {
		t.Errorf("upstream X-Tag = %q, want [t1 t2] (added)", v)
	}
	if v := got.Header.Values("X-List"); !slices.Equal(v, []string{"a,b"}) {
		t.Errorf("upstream X-List = %q, want [a,b] (append)", v)
	}
	if got.Header.Get("X-Secret") != "" {
		t.Error("X-Secret reached the backend; the service removed it")
	}
	if got.Host != "app.example" {
		t.Errorf("upstream Host = %q: the service may not change it", got.Host)
	}
	if got.URL.RawQuery != "q=1" {
		t.Errorf("upstream query %q, want q=1 (code removed)", got.URL.RawQuery)
	}
	if v := resp.Header.Values("Set-Cookie"); !slices.Equal(v, []string{"sess=1"}) || resp.Header.Get("X-Authz") != "yes" {
		t.Errorf("downstream headers %v, want the service's Set-Cookie and X-Authz", resp.Header)
	}
	checks := az.taken()
	if len(checks) != 1 {
		t.Fatalf("%d checks, want 1", len(checks))
	}
	a := checks[0].GetAttributes()
	h := a.GetRequest().GetHttp()
	if ext := a.GetContextExtensions(); len(ext) != 1 || ext["sekisho.policy"] != "ns/allow" {
		t.Errorf("context_extensions = %v, want the route's", ext)
	}
	want := map[string]string{":path": "/allow/x?code=secret&q=1", ":method": "GET", ":authority": "app.example", ":scheme": "http",
		"x-user": "mallory", "x-secret": "s", "x-forwarded-proto": "http", "x-forwarded-for": "127.0.0.1"}
	for k, v := range want {
		if h.GetHeaders()[k] != v {
			t.Errorf("check header %s = %q, want %q", k, h.GetHeaders()[k], v)
		}
	}
	if h.GetPath() != "/allow/x?code=secret&q=1" || h.GetMethod() != "GET" || h.GetHost() != "app.example" || h.GetScheme() != "http" || h.GetProtocol() != proto || h.GetId() == "" {
		t.Errorf("check http = path %q method %q host %q scheme %q protocol %q id %q", h.GetPath(), h.GetMethod(), h.GetHost(), h.GetScheme(), h.GetProtocol(), h.GetId())
	}
	if sa := a.GetSource().GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() == 0 {
		t.Errorf("source address %v", sa)
	}
	_, lport, _ := net.SplitHostPort(addr)
	if da := a.GetDestination().GetAddress().GetSocketAddress(); strconv.Itoa(int(da.GetPortValue())) != lport {
		t.Errorf("destination address %v, want the listener's port %s", da, lport)
	}
	if a.GetRequest().GetTime() == nil {
		t.Error("check without request time")
	}

	// Denied: the service's status, headers (both cookies) and body.
	for _, path := range []string{"/deny", "/direct"} {
		resp, body = do(t, cl, "GET", "http://"+addr+path)
		if resp.StatusCode != 302 || body != "denied\n" {
			t.Errorf("%s: %d %q, want the denial", path, resp.StatusCode, body)
		}
		if v := resp.Header.Values("Set-Cookie"); !slices.Equal(v, []string{"a=1", "b=2"}) {
			t.Errorf("%s: Set-Cookie %q, want both", path, v)
		}
		if resp.Header.Get("Location") != "https://login.example/start" || resp.Header.Get("Www-Authenticate") != `Bearer realm="x"` {
			t.Errorf("%s: denial headers %v", path, resp.Header)
		}
	}
	if n := len(az.taken()); n != 2 {
		t.Errorf("%d checks for the denied requests, want 2", n)
	}
	select {
	case r := <-be.got:
		t.Errorf("a denied request reached the backend: %s", r.URL)
	default:
	}

	// Disabled: no check.
	if resp, _ := do(t, cl, "GET", "http://"+addr+"/open"); resp.StatusCode != 200 {
		t.Errorf("/open: %d", resp.StatusCode)
	}
	be.last(t)
	if n := len(az.taken()); n != 0 {
		t.Errorf("a route with the filter disabled was checked %d times", n)
	}
	filter := func(name, result string) map[string]string {
		return map[string]string{"gateway": "default/eg", "filter": name, "result": result}
	}
	if v := counterValue(t, reg, "sekisho_ext_authz_checks_total", filter(fAuthz, "allowed")); v != 1 {
		t.Errorf("allowed checks: %v, want 1", v)
	}
	if v := counterValue(t, reg, "sekisho_ext_authz_checks_total", filter(fAuthz, "denied")); v != 2 {
		t.Errorf("denied checks: %v, want 2", v)
	}

	// The service goes away (its endpoint moves to a dead address).
	down := cloneSnapshot(s)
	moveEndpoint(t, down, authzName, deadAddr(t))
	if err := rt.Apply(down); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, cl, "GET", "http://"+addr+"/allow"); resp.StatusCode != 503 {
		t.Errorf("fail-closed with the service down: %d, want 503 (status_on_error)", resp.StatusCode)
	}
	if resp, body := do(t, cl, "GET", "http://"+addr+"/failopen"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("fail-open with the service down: %d %q, want 200", resp.StatusCode, body)
	}
	if got := be.last(t); got.Header.Get("X-Envoy-Auth-Failure-Mode-Allowed") != "true" {
		t.Errorf("fail-open request upstream without x-envoy-auth-failure-mode-allowed: %v", got.Header)
	}
	if v := counterValue(t, reg, "sekisho_ext_authz_failure_open_total", map[string]string{"filter": fAuthzOpen}); v != 1 {
		t.Errorf("failure_open_total = %v, want 1", v)
	}
	if v := counterValue(t, reg, "sekisho_ext_authz_checks_total", filter(fAuthz, "error")); v != 1 {
		t.Errorf("error checks of the fail-closed filter: %v, want 1", v)
	}

	// Back up again, on a new address: the channel follows the endpoints.
	az2 := &fakeAuthz{answer: authzAnswers}
	up := cloneSnapshot(s)
	moveEndpoint(t, up, authzName, serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az2) }))
	if err := rt.Apply(up); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, cl, "GET", "http://"+addr+"/allow"); resp.StatusCode != 200 {
		t.Errorf("with the service back: %d", resp.StatusCode)
	}
	if n := len(az2.taken()); n != 1 {
		t.Errorf("the new endpoint got %d checks, want 1", n)
	}
}

// descriptors writes a request's descriptors as "k=v,k=v#hits_addend".
func descriptors(req *rlsv3.RateLimitRequest) []string {
	var out []string
	for _, d := range req.GetDescriptors() {
		var parts []string
		for _, e := range d.GetEntries() {
			parts = append(parts, e.GetKey()+"="+e.GetValue())
		}
		s := strings.Join(parts, ",")
		if d.GetHitsAddend() != nil {
			s += "#" + strconv.FormatUint(d.GetHitsAddend().GetValue(), 10)
		}
		out = append(out, s)
	}
	return out
}

func headerMatch(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

func exactM(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func regexM(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}}
}

func remoteAddr(key, value string, cidrs ...string) *routev3.RateLimit_Action {
	am := &matcherv3.AddressMatcher{}
	for _, c := range cidrs {
		ip, bits, _ := strings.Cut(c, "/")
		n, _ := strconv.Atoi(bits)
		am.Ranges = append(am.Ranges, &xdscorev3.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(uint32(n))})
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddressMatch_{RemoteAddressMatch: &routev3.RateLimit_Action_RemoteAddressMatch{
		DescriptorKey: key, DescriptorValue: value, AddressMatcher: am}}}
}

func requestHeader(header, key string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
		HeaderName: header, DescriptorKey: key}}}
}

func headerValueMatch(key, value string, hs ...*routev3.HeaderMatcher) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
		DescriptorKey: key, DescriptorValue: value, ExpectMatch: wrapperspb.Bool(true), Headers: hs}}}
}

func metadataAction(key, ns string, path ...string) *routev3.RateLimit_Action {
	mk := &metadatav3.MetadataKey{Key: ns}
	for _, p := range path {
		mk.Path = append(mk.Path, &metadatav3.MetadataKey_PathSegment{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: p}})
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
		DescriptorKey: key, MetadataKey: mk, Source: routev3.RateLimit_Action_MetaData_DYNAMIC}}}
}

func rlPerRoute(limits ...*routev3.RateLimit) *ratelimitv3.RateLimitPerRoute {
	return &ratelimitv3.RateLimitPerRoute{RateLimits: limits}
}

func limit(actions ...*routev3.RateLimit_Action) *routev3.RateLimit {
	return &routev3.RateLimit{Actions: actions}
}

// rlsAnswers limits the requests with an "over" entry.
func rlsAnswers(req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	for _, d := range req.GetDescriptors() {
		for _, e := range d.GetEntries() {
			if e.GetKey() == "over" {
				return &rlsv3.RateLimitResponse{
					OverallCode:          rlsv3.RateLimitResponse_OVER_LIMIT,
					ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-ratelimit-limit", Value: "10"}},
					RawBody:              []byte("slow down"),
				}, nil
			}
		}
	}
	return &rlsv3.RateLimitResponse{
		OverallCode:          rlsv3.RateLimitResponse_OK,
		ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-rl", Value: "ok"}},
		RequestHeadersToAdd:  []*corev3.HeaderValue{{Key: "x-rl-req", Value: "yes"}},
	}, nil
}

func TestRateLimitDescriptors(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) { testRateLimitDescriptors(t, p.client) })
	}
}

func testRateLimitDescriptors(t *testing.T, cl *http.Client) {
	az := &fakeAuthz{answer: authzAnswers}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	rls := &fakeRLS{answer: rlsAnswers}
	rlsAddr := serveGRPC(t, func(s *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(s, rls) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	rl, open, none := route("rl", prefix("/rl")), route("open", prefix("/open")), route("none", prefix("/none"))
	rl.Forward, open.Forward, none.Forward = fwd(c.Name), fwd(c.Name), fwd(c.Name)
	s := filterGateway(t, []*ir.Route{rl, open, none}, azAddr, rlsAddr, c)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, extAuthzConfig(false)), httpFilterOf(t, fAuthzOpen, extAuthzConfig(true)),
		httpFilterOf(t, fRL, rateLimitConfig(false)))
	setPerRoute(t, s, "", fAuthz, authzDisabled())
	setPerRoute(t, s, "", fAuthzOpen, authzDisabled())
	setPerRoute(t, s, "rl", fAuthz, authzPolicy("ns/allow"))
	// The fail-open filter's metadata: under its name, and under the name
	// Envoy always uses.
	setPerRoute(t, s, "open", fAuthzOpen, authzPolicy("ns/allow"))
	setPerRoute(t, s, "open", fRL, rlPerRoute(limit(metadataAction("own", fAuthzOpen, "claims", "sub")), limit(metadataAction("envoy", fAuthz, "claims", "sub"))))
	first := limit(genericKey("sekisho.rule", "r1"), requestHeader("x-client", "user"))
	first.HitsAddend = &routev3.RateLimit_HitsAddend{Number: wrapperspb.UInt64(3)}
	setPerRoute(t, s, "rl", fRL, rlPerRoute(
		first,
		limit(headerValueMatch("m", "1", headerMatch(":method", exactM("GET")), headerMatch(":path", regexM(`/rl/a(\?.*)?`)))),
		limit(remoteAddr("net", "loopback", "127.0.0.0/8", "fd00::/8")),
		limit(remoteAddr("client", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "0.0.0.0/0")),
		limit(remoteAddr("net10", "ten", "10.0.0.0/8")),
		limit(metadataAction("sub", fAuthz, "claims", "sub")),
		limit(metadataAction("n", fAuthz, "claims", "n")), // not a string: nothing
		limit(headerValueMatch("over", "yes", &routev3.HeaderMatcher{Name: "x-over", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}})),
	))
	setPerRoute(t, s, "none", fRL, rlPerRoute(limit(requestHeader("x-absent", "a"))))
	reg := prometheus.NewRegistry()
	_, addr := startRuntime(t, s, "default/eg/http", func(o *Options) { o.Registerer = reg })
	closeIdleFirst(t, client, protocols[1].client)

	resp, _ := do(t, cl, "GET", "http://"+addr+"/rl/a?z=1", "X-Client", "bob")
	if resp.StatusCode != 200 || resp.Header.Get("X-Rl") != "ok" {
		t.Fatalf("allowed: %d %v", resp.StatusCode, resp.Header)
	}
	if got := be.last(t); got.Header.Get("X-Rl-Req") != "yes" {
		t.Errorf("upstream lacks the service's request header: %v", got.Header)
	}
	reqs := rls.taken()
	if len(reqs) != 1 || reqs[0].GetDomain() != "sekisho" {
		t.Fatalf("rate limit calls %v", reqs)
	}
	want := []string{"sekisho.rule=r1,user=bob#3", "m=1", "net=loopback", "client=127.0.0.1", "sub=alice"}
	if got := descriptors(reqs[0]); !slices.Equal(got, want) {
		t.Errorf("descriptors\n got %q\nwant %q", got, want)
	}

	// No x-client, POST: the policies that need them make no descriptor.
	do(t, cl, "POST", "http://"+addr+"/rl/a")
	be.last(t)
	reqs = rls.taken()
	want = []string{"net=loopback", "client=127.0.0.1", "sub=alice"}
	if len(reqs) != 1 || !slices.Equal(descriptors(reqs[0]), want) {
		t.Errorf("descriptors without x-client, POST: %v, want %q", reqs, want)
	}

	// Over the limit.
	resp, body := do(t, cl, "GET", "http://"+addr+"/rl/a", "X-Over", "1")
	if resp.StatusCode != 429 || body != "slow down" || resp.Header.Get("X-Envoy-Ratelimited") != "true" || resp.Header.Get("X-Ratelimit-Limit") != "10" {
		t.Errorf("over limit: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	rls.taken()

	do(t, cl, "GET", "http://"+addr+"/open")
	be.last(t)
	reqs = rls.taken()
	if want := []string{"own=alice", "envoy=alice"}; len(reqs) != 1 || !slices.Equal(descriptors(reqs[0]), want) {
		t.Errorf("metadata of the fail-open filter: %v, want %q", reqs, want)
	}

	// No descriptor: no call.
	if resp, _ := do(t, cl, "GET", "http://"+addr+"/none"); resp.StatusCode != 200 {
		t.Errorf("/none: %d", resp.StatusCode)
	}
	be.last(t)
	if n := len(rls.taken()); n != 0 {
		t.Errorf("%d rate limit calls for a request without descriptors", n)
	}
	for result, n := range map[string]float64{"allowed": 3, "denied": 1} {
		if v := counterValue(t, reg, "sekisho_ratelimit_checks_total", map[string]string{"filter": fRL, "result": result}); v != n {
			t.Errorf("ratelimit %s: %v, want %v", result, v, n)
		}
	}
}

func TestRateLimitServiceDown(t *testing.T) {
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	open, closed := route("open", prefix("/open")), route("closed", prefix("/closed"))
	open.Forward, closed.Forward = fwd(c.Name), fwd(c.Name)
	s := filterGateway(t, []*ir.Route{open, closed}, deadAddr(t), deadAddr(t), c)
	setHTTPFilters(t, s, httpFilterOf(t, fRL, rateLimitConfig(false)), httpFilterOf(t, fRLClosed, rateLimitConfig(true)))
	setPerRoute(t, s, "open", fRL, rlPerRoute(limit(genericKey("k", "v"))))
	setPerRoute(t, s, "closed", fRLClosed, rlPerRoute(limit(genericKey("k", "v"))))
	reg := prometheus.NewRegistry()
	_, addr := startRuntime(t, s, "default/eg/http", func(o *Options) { o.Registerer = reg })
	closeIdleFirst(t, client, protocols[1].client)
	for _, p := range protocols {
		if resp, body := do(t, p.client, "GET", "http://"+addr+"/open"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("%s: failure_mode_deny false, service down: %d %q, want 200", p.name, resp.StatusCode, body)
		}
		if resp, _ := do(t, p.client, "GET", "http://"+addr+"/closed"); resp.StatusCode != 503 {
			t.Errorf("%s: failure_mode_deny true, service down: %d, want 503", p.name, resp.StatusCode)
		}
	}
	if v := counterValue(t, reg, "sekisho_ratelimit_failure_open_total", map[string]string{"filter": fRL}); v != 2 {
		t.Errorf("failure_open_total = %v, want 2", v)
	}
	if v := counterValue(t, reg, "sekisho_ratelimit_checks_total", map[string]string{"filter": fRLClosed, "result": "error"}); v != 2 {
		t.Errorf("errors of the fail-closed filter = %v, want 2", v)
	}
}

func localLimit(tb *typev3.TokenBucket, enforced uint32) *localrlv3.LocalRateLimit {
	pct := func(n uint32) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}, RuntimeKey: "x"}
	}
	return &localrlv3.LocalRateLimit{StatPrefix: "local_rate_limit", TokenBucket: tb, FilterEnabled: pct(100), FilterEnforced: pct(enforced)}
}

func TestLocalRateLimit(t *testing.T) {
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	var routes []*ir.Route
	for _, n := range []string{"limited", "desc", "shadow", "free"} {
		r := route(n, prefix("/"+n))
		r.Forward = fwd(c.Name)
		routes = append(routes, r)
	}
	build := func(max uint32) *xdsclient.Snapshot {
		s := filterGateway(t, routes, deadAddr(t), deadAddr(t), c)
		setHTTPFilters(t, s, httpFilterOf(t, fLocal, &localrlv3.LocalRateLimit{StatPrefix: "local_rate_limit"}))
		setPerRoute(t, s, "limited", fLocal, localLimit(bucketOf(max, max, time.Second), 100))
		// The route's bucket barely refills; its descriptor's refills in 1s.
		d := localLimit(bucketOf(3, 3, time.Hour), 100)
		d.Descriptors = []*commonrlv3.LocalRateLimitDescriptor{{
			Entries:     []*commonrlv3.RateLimitDescriptor_Entry{{Key: "sekisho.local", Value: "ns/d"}},
			TokenBucket: bucketOf(2, 2, time.Second),
		}}
		d.RateLimits = []*routev3.RateLimit{limit(genericKey("sekisho.local", "ns/d"))}
		setPerRoute(t, s, "desc", fLocal, d)
		setPerRoute(t, s, "shadow", fLocal, localLimit(bucketOf(1, 1, time.Hour), 0))
		return s
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	rt, addr := startRuntime(t, build(3), "default/eg/http", func(o *Options) { o.Now, o.Registerer = clock.now, reg })
	closeIdleFirst(t, client, protocols[1].client)
	status := func(cl *http.Client, path string) int {
		t.Helper()
		resp, body := do(t, cl, "GET", "http://"+addr+path)
		if resp.StatusCode == 429 && (body != "local_rate_limited" || resp.Header.Get("X-Envoy-Ratelimited") != "true") {
			t.Errorf("%s: 429 %q %v", path, body, resp.Header)
		}
		return resp.StatusCode
	}
	codes := func(cl *http.Client, path string, n int) []int {
		var out []int
		for range n {
			out = append(out, status(cl, path))
		}
		return out
	}
	if got := codes(client, "/limited", 4); !slices.Equal(got, []int{200, 200, 200, 429}) {
		t.Errorf("max_tokens 3: %v", got)
	}
	if got := codes(protocols[1].client, "/limited", 1); !slices.Equal(got, []int{429}) {
		t.Errorf("h2c: the same bucket: %v", got)
	}
	// The descriptor's bucket (2) empties first; the route's (3) keeps what
	// the refused request did not take.
	if got := codes(client, "/desc", 3); !slices.Equal(got, []int{200, 200, 429}) {
		t.Errorf("descriptor bucket: %v", got)
	}
	if got := codes(client, "/shadow", 2); !slices.Equal(got, []int{200, 200}) {
		t.Errorf("not enforced: %v", got)
	}
	if got := codes(client, "/free", 5); slices.Contains(got, 429) {
		t.Errorf("a route without a limit: %v", got)
	}

	clock.advance(time.Second)
	if got := codes(client, "/limited", 4); !slices.Equal(got, []int{200, 200, 200, 429}) {
		t.Errorf("after a fill interval: %v", got)
	}
	// One token left in the route's bucket; the descriptor's is full again.
	if got := codes(client, "/desc", 2); !slices.Equal(got, []int{200, 429}) {
		t.Errorf("descriptor bucket after refill: %v (the route's bucket must have kept one token)", got)
	}

	// The same configuration again: the buckets carry over.
	if err := rt.Apply(build(3)); err != nil {
		t.Fatal(err)
	}
	if got := status(client, "/limited"); got != 429 {
		t.Errorf("after an update that keeps the bucket: %d, want 429", got)
	}
	// A new bucket configuration: a new (full) bucket.
	if err := rt.Apply(build(4)); err != nil {
		t.Fatal(err)
	}
	if got := codes(client, "/limited", 5); !slices.Equal(got, []int{200, 200, 200, 200, 429}) {
		t.Errorf("after the bucket changed: %v", got)
	}
	lbl := func(result string) map[string]string { return map[string]string{"filter": fLocal, "result": result} }
	if v := counterValue(t, reg, "sekisho_local_ratelimit_total", lbl("not_enforced")); v != 1 {
		t.Errorf("not_enforced = %v, want 1", v)
	}
	if v := counterValue(t, reg, "sekisho_local_ratelimit_total", lbl("denied")); v != 7 {
		t.Errorf("denied = %v, want 7", v)
	}
}

// TestFiltersGRPCReplies: a gRPC request a filter stops gets the gRPC form
// of the answer, as from Envoy.
func TestFiltersGRPCReplies(t *testing.T) {
	az := &fakeAuthz{answer: authzAnswers}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	rls := &fakeRLS{answer: rlsAnswers}
	rlsAddr := serveGRPC(t, func(s *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(s, rls) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	unauth, limited := route("unauth", prefix("/pkg.Auth")), route("limited", prefix("/pkg.Limited"))
	unauth.Forward, limited.Forward = fwd(c.Name), fwd(c.Name)
	s := filterGateway(t, []*ir.Route{unauth, limited}, azAddr, rlsAddr, c)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, extAuthzConfig(false)), httpFilterOf(t, fRL, rateLimitConfig(false)))
	setPerRoute(t, s, "", fAuthz, authzDisabled())
	setPerRoute(t, s, "unauth", fAuthz, authzPolicy("ns/unauthenticated"))
	setPerRoute(t, s, "limited", fRL, rlPerRoute(limit(genericKey("over", "yes"))))
	_, addr := startRuntime(t, s, "default/eg/http")
	closeIdleFirst(t, client, protocols[1].client)
	for _, tc := range []struct {
		path, status, message string
	}{
		{"/pkg.Auth/Call", "16", "who are you"},
		{"/pkg.Limited/Call", "14", "slow down"},
	} {
		resp, body := do(t, protocols[1].client, "POST", "http://"+addr+tc.path, "Content-Type", "application/grpc", "Te", "trailers")
		gs := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
		gm := resp.Header.Get("Grpc-Message") + resp.Trailer.Get("Grpc-Message")
		if resp.StatusCode != 200 || gs != tc.status || gm != strings.ReplaceAll(tc.message, " ", "%20") && gm != tc.message || body != "" {
			t.Errorf("%s: %d grpc-status %q grpc-message %q body %q, want 200 %s %q", tc.path, resp.StatusCode, gs, gm, body, tc.status, tc.message)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/grpc" {
			t.Errorf("%s: content-type %q", tc.path, ct)
		}
	}
	// A gRPC client reads the status.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Invoke(ctx, "/pkg.Auth/Call", &authv3.CheckRequest{}, &authv3.CheckResponse{})
	if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated || st.Message() != "who are you" {
		t.Errorf("gRPC client: %v, want Unauthenticated \"who are you\"", err)
	}
	err = conn.Invoke(ctx, "/pkg.Limited/Call", &authv3.CheckRequest{}, &authv3.CheckResponse{})
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable {
		t.Errorf("gRPC client, rate limited: %v, want Unavailable", err)
	}
}

func TestFilterConfigNACK(t *testing.T) {
	rls := &fakeRLS{answer: rlsAnswers}
	rlsAddr := serveGRPC(t, func(s *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(s, rls) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	r := route("rl", prefix("/"))
	r.Forward = fwd(c.Name)
	build := func(action *routev3.RateLimit_Action) *xdsclient.Snapshot {
		s := filterGateway(t, []*ir.Route{r}, deadAddr(t), rlsAddr, c)
		setHTTPFilters(t, s, httpFilterOf(t, fRL, rateLimitConfig(false)))
		setPerRoute(t, s, "rl", fRL, rlPerRoute(limit(action)))
		return s
	}
	good := build(remoteAddr("net", "loopback", "127.0.0.0/8"))
	rt, addr := startRuntime(t, good, "default/eg/http")
	closeIdleFirst(t, client, protocols[1].client)
	check := func(step string) {
		t.Helper()
		if resp, _ := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", step, resp.StatusCode)
		}
		be.last(t)
		reqs := rls.taken()
		if len(reqs) != 1 || !slices.Equal(descriptors(reqs[0]), []string{"net=loopback"}) {
			t.Fatalf("%s: the previous configuration does not serve: rate limit calls %v", step, reqs)
		}
	}
	check("the good configuration")

	withFilters := func(fs ...*hcmv3.HttpFilter) *xdsclient.Snapshot {
		s := build(remoteAddr("net", "loopback", "127.0.0.0/8"))
		setHTTPFilters(t, s, fs...)
		return s
	}
	for _, tc := range []struct {
		name string
		s    *xdsclient.Snapshot
		want []string
	}{
		{"bad CIDR", build(remoteAddr("net", "x", "10.0.0.300/8")),
			[]string{`routes[0] "rl"`, `typed_per_filter_config["envoy.filters.http.ratelimit"]`, "ranges[0].address_prefix", "10.0.0.300"}},
		{"prefix too long", build(remoteAddr("net", "x", "10.0.0.0/33")), []string{`"rl"`, "ranges[0].prefix_len"}},
		{"format specifier", build(remoteAddr("net", "%REQ(:path)%", "10.0.0.0/8")), []string{`"rl"`, "remote_address_match.descriptor_value"}},
		{"bad regex", build(headerValueMatch("m", "1", headerMatch(":path", regexM("(")))), []string{`"rl"`, "header_value_match.headers[0]", "safe_regex"}},
		{"pseudo-header", build(headerValueMatch("m", "1", headerMatch(":status", exactM("1")))), []string{"pseudo-header"}},
		{"route source metadata", build(&routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: "k", MetadataKey: &metadatav3.MetadataKey{Key: "ns", Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "a"}}}},
			Source: routev3.RateLimit_Action_MetaData_ROUTE_ENTRY}}}), []string{"metadata.source"}},
		{"missing cluster", withFilters(httpFilterOf(t, fRL, func() *ratelimitv3.RateLimit {
			c := rateLimitConfig(false)
			c.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().ClusterName = "sekisho/nope"
			return c
		}())), []string{`http_filters[0] "envoy.filters.http.ratelimit"`, "cluster_name", `"sekisho/nope" does not exist`}},
		{"cluster without HTTP/2", withFilters(httpFilterOf(t, fRL, func() *ratelimitv3.RateLimit {
			c := rateLimitConfig(false)
			c.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().ClusterName = "default/b:80"
			return c
		}())), []string{"HTTP/2"}},
		{"unhonoured field", withFilters(httpFilterOf(t, fRL, func() *ratelimitv3.RateLimit {
			c := rateLimitConfig(false)
			c.Stage = 1
			return c
		}())), []string{"envoy.extensions.filters.http.ratelimit.v3.RateLimit.stage"}},
		{"per-route config of another filter", func() *xdsclient.Snapshot {
			s := build(genericKey("k", "v"))
			setPerRoute(t, s, "rl", fRL, authzDisabled())
			return s
		}(), []string{`typed_per_filter_config["envoy.filters.http.ratelimit"]`, "configures ext_authz, but the chain's filter of that name is ratelimit"}},
		{"router not last", withFilters(httpFilterOf(t, routerFilterName, &routerv3.Router{})), []string{"router must be the last"}},
		{"short fill interval", func() *xdsclient.Snapshot {
			s := build(genericKey("k", "v"))
			setHTTPFilters(t, s, httpFilterOf(t, fLocal, &localrlv3.LocalRateLimit{StatPrefix: "l"}), httpFilterOf(t, fRL, rateLimitConfig(false)))
			setPerRoute(t, s, "rl", fLocal, localLimit(bucketOf(1, 1, 10*time.Millisecond), 100))
			return s
		}(), []string{`typed_per_filter_config["envoy.filters.http.local_ratelimit"]`, "token_bucket.fill_interval"}},
		{"local limit at filter level", withFilters(httpFilterOf(t, fLocal, localLimit(bucketOf(1, 1, time.Second), 100)), httpFilterOf(t, fRL, rateLimitConfig(false))),
			[]string{"per route"}},
		{"authz disabled false", func() *xdsclient.Snapshot {
			s := build(genericKey("k", "v"))
			setPerRoute(t, s, "rl", fAuthz, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: false}})
			return s
		}(), []string{"disabled"}},
	} {
		err := rt.Apply(tc.s)
		if err == nil {
			t.Errorf("%s: applied, want a NACK", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
		check("after the NACK of " + tc.name)
	}
}

// The filters follow the request's context: a check that cannot finish
// within the filter's timeout fails like an unreachable service.
func TestExtAuthzTimeout(t *testing.T) {
	release := make(chan struct{})
	az := &fakeAuthz{answer: func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		<-release
		return nil, errors.New("released")
	}}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	t.Cleanup(func() { close(release) }) // before the server stops
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	r := route("slow", prefix("/"))
	r.Forward = fwd(c.Name)
	s := filterGateway(t, []*ir.Route{r}, azAddr, deadAddr(t), c)
	cfg := extAuthzConfig(false)
	cfg.GetGrpcService().Timeout.Seconds, cfg.GetGrpcService().Timeout.Nanos = 0, int32(100*time.Millisecond)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, cfg))
	_, addr := startRuntime(t, s, "default/eg/http")
	closeIdleFirst(t, client, protocols[1].client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("check past its timeout: %d, want 503", resp.StatusCode)
	}
	names := []string{}
	for _, ch := range az.taken() {
		names = append(names, ch.GetAttributes().GetRequest().GetHttp().GetPath())
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"/"}) {
		t.Errorf("checks %v, want one for /", names)
	}
}

// The translator's output for policies (its golden input) is applied as a
// whole: every filter, per-route configuration and service cluster in it is
// honoured.
func TestTranslatorPoliciesApply(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "xds", "translate", "testdata", "policies.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gw := &ir.Gateway{}
	if err := yaml.UnmarshalStrict(data, gw); err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(t, gw)
	rt, _ := startRuntime(t, s, "default/eg/http-8080")
	cfg := rt.cfg.Load()
	var names, grpc []string
	for _, lc := range cfg.listeners {
		for _, ch := range lc.chains {
			if ch.filters == nil {
				continue
			}
			for _, f := range ch.filters.filters {
				names = append(names, f.Name)
			}
			grpc = append(grpc, ch.filters.clusters()...)
		}
	}
	if len(names) == 0 {
		t.Fatal("no HTTP filters compiled from the translator's output")
	}
	if !slices.Contains(grpc, authzName) || !slices.Contains(grpc, rlsName) {
		t.Errorf("gRPC channels %v, want the authorization and rate limit services'", grpc)
	}
}

// CDS may drop the authorization service's cluster before LDS drops the
// filter that calls it: the cluster stays meanwhile.
func TestServiceClusterMakeBeforeBreak(t *testing.T) {
	az := &fakeAuthz{answer: authzAnswers}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	r := route("allow", prefix("/"))
	r.Forward = fwd(c.Name)
	s := filterGateway(t, []*ir.Route{r}, azAddr, deadAddr(t), c)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, extAuthzConfig(false)))
	setPerRoute(t, s, "allow", fAuthz, authzPolicy("ns/allow"))
	rt, addr := startRuntime(t, s, "default/eg/http")
	closeIdleFirst(t, client)

	cds := cloneSnapshot(s)
	delete(cds.Clusters, authzName)
	delete(cds.Endpoints, authzName)
	if err := rt.Apply(cds); err != nil {
		t.Fatalf("CDS without the service's cluster, the filter still in LDS: %v", err)
	}
	if resp, _ := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
		t.Errorf("after the cluster left CDS: %d, want 200 (checked by the service)", resp.StatusCode)
	}
	be.last(t)
	if n := len(az.taken()); n != 1 {
		t.Errorf("%d checks, want 1", n)
	}
}
