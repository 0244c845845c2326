package proxy

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rlconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

// The filter names the control plane gives its HTTP filters.
const (
	fLocal      = "envoy.filters.http.local_ratelimit"
	fAuthz      = "envoy.filters.http.ext_authz"
	fAuthzOpen  = "envoy.filters.http.ext_authz/fail-open"
	fRL         = "envoy.filters.http.ratelimit"
	fRLClosed   = "envoy.filters.http.ratelimit/fail-closed"
	authzName   = "sekisho/authz"
	rlsName     = "sekisho/ratelimit"
	testTimeout = 2 * time.Second
)

// fakeAuthz is a scripted Authorization service that records its checks.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mu     sync.Mutex
	checks []*authv3.CheckRequest
	answer func(*authv3.CheckRequest) (*authv3.CheckResponse, error)
}

func (f *fakeAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f.mu.Lock()
	f.checks = append(f.checks, req)
	f.mu.Unlock()
	return f.answer(req)
}

// taken returns the checks received since the last call.
func (f *fakeAuthz) taken() []*authv3.CheckRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.checks
	f.checks = nil
	return out
}

// fakeRLS is a scripted RateLimitService that records its requests.
type fakeRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu     sync.Mutex
	reqs   []*rlsv3.RateLimitRequest
	answer func(*rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)
}

func (f *fakeRLS) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return f.answer(req)
}

func (f *fakeRLS) taken() []*rlsv3.RateLimitRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.reqs
	f.reqs = nil
	return out
}

// serveGRPC serves on 127.0.0.1 and returns the address.
func serveGRPC(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// deadAddr is a 127.0.0.1 address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// filterGateway is httpGateway with the authorization and rate limit
// service clusters (h2c) at authzAddr and rlsAddr.
func filterGateway(t testing.TB, routes []*ir.Route, authzAddr, rlsAddr string, clusters ...*ir.Cluster) *xdsclient.Snapshot {
	t.Helper()
	svc := func(name, addr string) *ir.Cluster {
		return &ir.Cluster{Name: name, Protocol: ir.AppProtocolH2C, LoadBalancer: ir.LoadBalancerRoundRobin, Endpoints: []ir.Endpoint{endpointOf(t, addr)}}
	}
	clusters = append(clusters, svc(authzName, authzAddr), svc(rlsName, rlsAddr))
	return snapshotOf(t, httpGateway(routes, clusters...))
}

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func httpFilterOf(t testing.TB, name string, m proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, m)}}
}

// setHTTPFilters gives every connection manager of s these filters, then
// the router.
func setHTTPFilters(t testing.TB, s *xdsclient.Snapshot, fs ...*hcmv3.HttpFilter) {
	t.Helper()
	fs = append(fs, httpFilterOf(t, routerFilterName, &routerv3.Router{}))
	for _, l := range s.Listeners {
		for _, fc := range l.GetFilterChains() {
			f := fc.GetFilters()[0]
			h := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			h.HttpFilters = fs
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, h)}
		}
	}
}

func extAuthzConfig(failOpen bool) *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: authzName}},
			Timeout:         durationpb.New(testTimeout),
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    failOpen,
		StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
}

func rateLimitConfig(failClosed bool) *ratelimitv3.RateLimit {
	c := &ratelimitv3.RateLimit{
		Domain:          "sekisho",
		FailureModeDeny: failClosed,
		Timeout:         durationpb.New(testTimeout),
		RateLimitService: &rlconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: rlsName}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
	}
	if failClosed {
		c.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
	}
	return c
}

// setPerRoute sets a route's typed_per_filter_config entry (routeName "":
// every virtual host's).
func setPerRoute(t testing.TB, s *xdsclient.Snapshot, routeName, filter string, m proto.Message) {
	t.Helper()
	found := false
	for _, rc := range s.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			if routeName == "" {
				if vh.TypedPerFilterConfig == nil {
					vh.TypedPerFilterConfig = map[string]*anypb.Any{}
				}
				vh.TypedPerFilterConfig[filter] = anyOf(t, m)
				found = true
				continue
			}
			for _, r := range vh.GetRoutes() {
				if r.GetName() != routeName {
					continue
				}
				if r.TypedPerFilterConfig == nil {
					r.TypedPerFilterConfig = map[string]*anypb.Any{}
				}
				r.TypedPerFilterConfig[filter] = anyOf(t, m)
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("no route %q", routeName)
	}
}

func authzDisabled() *extauthzv3.ExtAuthzPerRoute {
	return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}}
}

func authzPolicy(policy string) *extauthzv3.ExtAuthzPerRoute {
	return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions: map[string]string{"sekisho.policy": policy},
	}}}
}

func genericKey(k, v string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
}

func bucketOf(max, perFill uint32, every time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(perFill), FillInterval: durationpb.New(every)}
}

// cloneSnapshot is a deep copy of s, for a new version of it.
func cloneSnapshot(s *xdsclient.Snapshot) *xdsclient.Snapshot {
	out := &xdsclient.Snapshot{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
	for k, v := range s.Listeners {
		out.Listeners[k] = proto.Clone(v).(*listenerv3.Listener)
	}
	for k, v := range s.Routes {
		out.Routes[k] = proto.Clone(v).(*routev3.RouteConfiguration)
	}
	for k, v := range s.Clusters {
		out.Clusters[k] = proto.Clone(v).(*clusterv3.Cluster)
	}
	for k, v := range s.Endpoints {
		out.Endpoints[k] = proto.Clone(v).(*endpointv3.ClusterLoadAssignment)
	}
	for k, v := range s.Secrets {
		out.Secrets[k] = proto.Clone(v).(*tlsv3.Secret)
	}
	return out
}

// moveEndpoint points a cluster's only endpoint at addr.
func moveEndpoint(t testing.TB, s *xdsclient.Snapshot, cluster, addr string) {
	t.Helper()
	ep := endpointOf(t, addr)
	sa := s.Endpoints[cluster].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	sa.Address = ep.Address
	sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: ep.Port}
}

// counterValue is the value of a counter series with these labels (0 when
// there is none).
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
