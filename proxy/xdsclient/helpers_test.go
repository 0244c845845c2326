package xdsclient

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sekisho/sekisho/xds/server"
)

const (
	waitTimeout = 5 * time.Second
	gatewayKey  = "ns/gw"
)

var allTypes = []string{ClusterType, EndpointType, ListenerType, RouteType, SecretType}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fixture describes one gateway's resources: every listener has an RDS
// connection manager and a TLS chain whose certificate comes from SDS.
type fixture struct {
	listeners map[string]listenerSpec // by name
	clusters  map[string]clusterSpec  // EDS clusters, each with a CLA
}

type listenerSpec struct {
	port   uint32
	route  string // route config the listener's HCM names, and is served
	secret string // SDS certificate secret, served
}

type clusterSpec struct {
	timeout time.Duration
	port    uint32 // endpoint port
}

func defaultFixture() fixture {
	return fixture{
		listeners: map[string]listenerSpec{"https-443": {port: 443, route: "route-a", secret: "cert-a"}},
		clusters:  map[string]clusterSpec{"backend-a": {timeout: time.Second, port: 9000}},
	}
}

// with returns a copy of f (maps copied) changed by fn.
func (f fixture) with(fn func(*fixture)) fixture {
	c := fixture{listeners: map[string]listenerSpec{}, clusters: map[string]clusterSpec{}}
	for k, v := range f.listeners {
		c.listeners[k] = v
	}
	for k, v := range f.clusters {
		c.clusters[k] = v
	}
	fn(&c)
	return c
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func mustAny(tb testing.TB, m proto.Message) *anypb.Any {
	tb.Helper()
	a, err := anypb.New(m)
	if err != nil {
		tb.Fatalf("building fixture: %v", err)
	}
	return a
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func buildListener(tb testing.TB, name string, spec listenerSpec) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: adsSource(), RouteConfigName: spec.route,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(tb, &routerv3.Router{})},
		}},
	}
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: spec.secret, SdsConfig: adsSource()}},
	}}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", spec.port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tb, hcm)},
			}},
			TransportSocket: &corev3.TransportSocket{
				Name:       "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tb, tlsCtx)},
			},
		}},
	}
}

func buildCluster(name string, spec clusterSpec) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(spec.timeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
}

func buildCLA(name string, spec clusterSpec) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress("127.0.0.1", spec.port),
				}},
			}},
		}},
	}
}

func (f fixture) build(tb testing.TB) map[resourcev3.Type][]types.Resource {
	tb.Helper()
	out := map[resourcev3.Type][]types.Resource{}
	routes := map[string]bool{}
	secrets := map[string]bool{}
	for _, name := range sortedKeys(f.listeners) {
		spec := f.listeners[name]
		out[resourcev3.ListenerType] = append(out[resourcev3.ListenerType], buildListener(tb, name, spec))
		routes[spec.route] = true
		secrets[spec.secret] = true
	}
	for _, rc := range sortedKeys(routes) {
		vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
		for _, c := range sortedKeys(f.clusters) {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + c}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c},
				}},
			})
		}
		out[resourcev3.RouteType] = append(out[resourcev3.RouteType], &routev3.RouteConfiguration{
			Name: rc, VirtualHosts: []*routev3.VirtualHost{vh},
		})
	}
	for _, name := range sortedKeys(f.clusters) {
		spec := f.clusters[name]
		out[resourcev3.ClusterType] = append(out[resourcev3.ClusterType], buildCluster(name, spec))
		out[resourcev3.EndpointType] = append(out[resourcev3.EndpointType], buildCLA(name, spec))
	}
	for _, s := range sortedKeys(secrets) {
		out[resourcev3.SecretType] = append(out[resourcev3.SecretType], &tlsv3.Secret{
			Name: s,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "chain of " + s}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "key of " + s}},
			}},
		})
	}
	return out
}

// controlPlane is a real xds/server serving on 127.0.0.1.
type controlPlane struct {
	srv    *server.Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startControlPlane serves a new server on addr ("127.0.0.1:0" for a free
// port) until stopped or the test ends. Listening on a just-freed address is
// retried briefly.
func startControlPlane(t *testing.T, addr string) *controlPlane {
	t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(waitTimeout)
	for {
		lis, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listening on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := server.New(server.Options{Logger: quietLogger(), ShutdownGrace: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{srv: srv, addr: lis.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { cp.done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cp.stop(t) })
	return cp
}

// stop stops serving and waits for Serve to return; calling it again is a no-op.
func (cp *controlPlane) stop(t *testing.T) {
	t.Helper()
	if cp.done == nil {
		return
	}
	cp.cancel()
	select {
	case err := <-cp.done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("Serve did not stop after cancel")
	}
	cp.done = nil
}

func (cp *controlPlane) set(t *testing.T, f fixture) {
	t.Helper()
	if err := cp.srv.Set(context.Background(), map[string]map[resourcev3.Type][]types.Resource{gatewayKey: f.build(t)}); err != nil {
		t.Fatalf("setting control plane state: %v", err)
	}
}

// node returns the server's view of the stream of nodeID.
func (cp *controlPlane) node(nodeID string) (server.NodeStatus, bool) {
	for _, n := range cp.srv.Nodes() {
		if n.NodeID == nodeID {
			return n, true
		}
	}
	return server.NodeStatus{}, false
}

// recorder is an Applier that records every view and can refuse some.
type recorder struct {
	mu      sync.Mutex
	applied []*Snapshot
	refuse  func(*Snapshot) error
}

func (r *recorder) Apply(s *Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		if err := r.refuse(s); err != nil {
			return err
		}
	}
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) setRefuse(fn func(*Snapshot) error) {
	r.mu.Lock()
	r.refuse = fn
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
}

// runningClient is a Client whose Run goroutine the test stops.
type runningClient struct {
	*Client
	rec    *recorder
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startClient(t *testing.T, addr, nodeID string) *runningClient {
	t.Helper()
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	c, err := New(Options{
		Address:    addr,
		Node:       &corev3.Node{Id: nodeID, Cluster: gatewayKey},
		Applier:    rec,
		Logger:     quietLogger(),
		Registerer: reg,
		Backoff:    Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningClient{Client: c, rec: rec, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rc.done <- c.Run(ctx) }()
	t.Cleanup(func() { rc.stop(t) })
	return rc
}

// stop cancels Run and waits for it; calling it again is a no-op.
func (rc *runningClient) stop(t *testing.T) {
	t.Helper()
	if rc.done == nil {
		return
	}
	rc.cancel()
	select {
	case err := <-rc.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("Run did not return within %v of cancel", waitTimeout)
	}
	rc.done = nil
}

// eventually polls cond until it holds or the wait times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allAcked reports whether the server saw ACKs, on an open stream of
// nodeID, of the client's accepted version of every type.
func allAcked(cp *controlPlane, c *Client, nodeID string) bool {
	cur := c.Current()
	n, ok := cp.node(nodeID)
	if cur == nil || !ok {
		return false
	}
	for _, typeURL := range allTypes {
		v := cur.Versions[typeURL]
		if v == "" || n.Types[typeURL].AckedVersion != v {
			return false
		}
	}
	return true
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

var errRefused = errors.New("refused by test applier")
