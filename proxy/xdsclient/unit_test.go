package xdsclient

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeStream records what an adsStream sends.
type fakeStream struct {
	grpc.ClientStream
	sent []*discoveryv3.DiscoveryRequest
}

func (f *fakeStream) Send(r *discoveryv3.DiscoveryRequest) error {
	f.sent = append(f.sent, r)
	return nil
}

func (f *fakeStream) Recv() (*discoveryv3.DiscoveryResponse, error) {
	return nil, errors.New("fake stream does not receive")
}

// newTestStream returns a stream of a client with an applier that records.
func newTestStream(t *testing.T) (*adsStream, *fakeStream, *recorder) {
	t.Helper()
	rec := &recorder{}
	c, err := New(Options{Address: "127.0.0.1:1", Node: &corev3.Node{Id: "unit", Cluster: gatewayKey}, Applier: rec, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fs := &fakeStream{}
	return &adsStream{c: c, stream: fs, nonces: map[string]string{}, sent: map[string][]string{}}, fs, rec
}

func anys(t *testing.T, ms ...*anypb.Any) []*anypb.Any { return ms }

func TestMalformedResponsesAreNACKed(t *testing.T) {
	goodCluster := mustAny(t, buildCluster("backend-a", clusterSpec{timeout: time.Second}))
	badHCM := buildListener(t, "https-443", listenerSpec{port: 443, route: "r", secret: "s"})
	badHCM.FilterChains[0].Filters[0].GetTypedConfig().Value = []byte{0xff, 0xff, 0xff}
	wrapped := mustAny(t, &discoveryv3.Resource{Name: "wrapped-x", Resource: &anypb.Any{TypeUrl: ClusterType, Value: []byte{0xff, 0xff}}})

	tests := []struct {
		name     string
		typeURL  string
		res      []*anypb.Any
		wantText []string
	}{
		{"unknown type", "type.googleapis.com/example.Unknown", anys(t, goodCluster), []string{"unsupported resource type", "example.Unknown"}},
		{"resource of another type", ListenerType, anys(t, goodCluster), []string{"lds resource #0", ClusterType}},
		{"undecodable resource", ClusterType, anys(t, goodCluster, &anypb.Any{TypeUrl: ClusterType, Value: []byte{0xff, 0xff}}), []string{"cds resource #1"}},
		{"undecodable wrapped resource", ClusterType, anys(t, wrapped), []string{`cds resource "wrapped-x"`}},
		{"duplicate name", ClusterType, anys(t, goodCluster, goodCluster), []string{`cds resource "backend-a": duplicate name`}},
		{"unnamed resource", ClusterType, anys(t, mustAny(t, &clusterv3.Cluster{})), []string{"cds resource #0", "no name"}},
		{"undecodable connection manager", ListenerType, anys(t, mustAny(t, badHCM)), []string{`listener "https-443"`, "HttpConnectionManager"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, fs, rec := newTestStream(t)
			resp := &discoveryv3.DiscoveryResponse{TypeUrl: tc.typeURL, VersionInfo: "v2", Nonce: "n1", Resources: tc.res}
			if err := s.handle(resp); err != nil {
				t.Fatalf("handle: %v", err)
			}
			if rec.count() != 0 {
				t.Errorf("applier called for a malformed response")
			}
			if s.c.Current() != nil {
				t.Errorf("Current() set by a malformed response")
			}
			if len(fs.sent) != 1 {
				t.Fatalf("sent %d requests, want one NACK", len(fs.sent))
			}
			req := fs.sent[0]
			if req.GetErrorDetail() == nil || req.GetErrorDetail().GetCode() != 3 {
				t.Fatalf("request %v is not a NACK with INVALID_ARGUMENT", req)
			}
			if req.GetResponseNonce() != "n1" || req.GetVersionInfo() != "" || req.GetTypeUrl() != tc.typeURL {
				t.Errorf("NACK nonce %q version %q type %q, want n1, \"\" (nothing accepted), %s",
					req.GetResponseNonce(), req.GetVersionInfo(), req.GetTypeUrl(), tc.typeURL)
			}
			if req.GetNode().GetId() != "unit" {
				t.Errorf("first request of the stream carries node %v, want id unit", req.GetNode())
			}
			for _, w := range tc.wantText {
				if !strings.Contains(req.GetErrorDetail().GetMessage(), w) {
					t.Errorf("NACK message %q does not contain %q", req.GetErrorDetail().GetMessage(), w)
				}
			}
			if got := s.c.Status().Types[tc.typeURL]; got.LastNACK != req.GetErrorDetail().GetMessage() || got.LastNACKVersion != "v2" {
				t.Errorf("status %+v does not record the NACK of v2", got)
			}
		})
	}
}

func TestWrappedResourcesDecode(t *testing.T) {
	inner := mustAny(t, buildCluster("backend-a", clusterSpec{timeout: time.Second}))
	d, err := decodeResponse(ClusterType, anys(t, mustAny(t, &discoveryv3.Resource{Name: "backend-a", Resource: inner})))
	if err != nil {
		t.Fatalf("decoding a wrapped cluster: %v", err)
	}
	if got := d.clusters["backend-a"].GetConnectTimeout().AsDuration(); got != time.Second {
		t.Errorf("wrapped cluster timeout %v, want 1s", got)
	}
}

func TestClusterRemovalPrunesEndpointsAtOnce(t *testing.T) {
	s, fs, rec := newTestStream(t)
	cds := func(version string, names ...string) *discoveryv3.DiscoveryResponse {
		r := &discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, VersionInfo: version, Nonce: "c" + version}
		for _, n := range names {
			r.Resources = append(r.Resources, mustAny(t, buildCluster(n, clusterSpec{timeout: time.Second})))
		}
		return r
	}
	if err := s.handle(cds("1", "a", "b")); err != nil {
		t.Fatalf("handle CDS: %v", err)
	}
	last := fs.sent[len(fs.sent)-1]
	if last.GetTypeUrl() != EndpointType || !slices.Equal(last.GetResourceNames(), []string{"a", "b"}) {
		t.Fatalf("after CDS the client sent %v, want an EDS subscription to [a b]", last)
	}
	eds := &discoveryv3.DiscoveryResponse{TypeUrl: EndpointType, VersionInfo: "e1", Nonce: "e1", Resources: anys(t,
		mustAny(t, buildCLA("a", clusterSpec{port: 1})), mustAny(t, buildCLA("b", clusterSpec{port: 2})),
		mustAny(t, buildCLA("not-subscribed", clusterSpec{port: 3})))}
	if err := s.handle(eds); err != nil {
		t.Fatalf("handle EDS: %v", err)
	}
	if got := sortedKeys(s.c.Current().Endpoints); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("endpoints %v, want [a b] (unsubscribed names dropped)", got)
	}

	applied := rec.count()
	if err := s.handle(cds("2", "a")); err != nil {
		t.Fatalf("handle CDS: %v", err)
	}
	if rec.count() != applied+1 {
		t.Fatalf("CDS removal not applied")
	}
	cur := s.c.Current()
	if got := sortedKeys(cur.Endpoints); !slices.Equal(got, []string{"a"}) {
		t.Errorf("endpoints after the cluster removal %v, want [a]", got)
	}
	if cur.Versions[EndpointType] != "e1" || cur.Versions[ClusterType] != "2" {
		t.Errorf("versions %v, want cds 2 and eds e1", cur.Versions)
	}
	last = fs.sent[len(fs.sent)-1]
	if last.GetTypeUrl() != EndpointType || !slices.Equal(last.GetResourceNames(), []string{"a"}) ||
		last.GetResponseNonce() != "e1" || last.GetVersionInfo() != "e1" {
		t.Errorf("subscription update %v, want EDS [a] with version and nonce e1", last)
	}
	// A response equal to the view, same version: ACKed, not applied again.
	applied = rec.count()
	if err := s.handle(cds("2", "a")); err != nil {
		t.Fatalf("handle CDS: %v", err)
	}
	if rec.count() != applied {
		t.Errorf("an unchanged response was applied again")
	}
	if ack := fs.sent[len(fs.sent)-1]; ack.GetErrorDetail() != nil || ack.GetVersionInfo() != "2" || ack.GetResponseNonce() != "c2" {
		t.Errorf("answer to an unchanged response %v, want ACK of version 2", ack)
	}
}

func TestReferencesOf(t *testing.T) {
	sds := func(name string, withSource bool) *tlsv3.SdsSecretConfig {
		c := &tlsv3.SdsSecretConfig{Name: name}
		if withSource {
			c.SdsConfig = adsSource()
		}
		return c
	}
	upstream := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("ca", true)},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("static-client-cert", false)},
	}}
	s := emptySnapshot()
	s.Clusters = map[string]*clusterv3.Cluster{
		"eds":     buildCluster("eds", clusterSpec{}),
		"service": {Name: "service", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "svc-name"}},
		"static": {Name: "static", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			TransportSocket: &corev3.TransportSocket{Name: "tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, upstream)}}},
	}
	l1 := buildListener(t, "l1", listenerSpec{route: "r1", secret: "c1"})
	l2 := buildListener(t, "l2", listenerSpec{route: "r2", secret: "c1"})
	l2.DefaultFilterChain = buildListener(t, "x", listenerSpec{route: "r0", secret: "c0"}).FilterChains[0]
	inline := &hcmv3.HttpConnectionManager{StatPrefix: "inline", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{}}
	l2.FilterChains = append(l2.FilterChains, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
		Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, inline)},
	}}})
	s.Listeners = map[string]*listenerv3.Listener{"l1": l1, "l2": l2}

	r, err := referencesOf(s)
	if err != nil {
		t.Fatalf("referencesOf: %v", err)
	}
	if want := []string{"eds", "svc-name"}; !slices.Equal(r.endpoints, want) {
		t.Errorf("EDS names %v, want %v", r.endpoints, want)
	}
	if want := []string{"r0", "r1", "r2"}; !slices.Equal(r.routes, want) {
		t.Errorf("RDS names %v, want %v", r.routes, want)
	}
	if want := []string{"c0", "c1", "ca"}; !slices.Equal(r.secrets, want) {
		t.Errorf("SDS names %v, want %v", r.secrets, want)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: -1}.withDefaults()
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, b.delay(n))
	}
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	def := Backoff{}.withDefaults()
	if def.Initial != DefaultBackoffInitial || def.Max != DefaultBackoffMax || def.Jitter != DefaultBackoffJitter {
		t.Errorf("defaults %+v", def)
	}
	j := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}.withDefaults()
	for range 100 {
		if d := j.delay(2); d < 100*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("jittered delay %v outside [100ms, 200ms]", d)
		}
	}
}

func TestNewValidates(t *testing.T) {
	node := &corev3.Node{Id: "p"}
	for name, o := range map[string]Options{
		"no address": {Node: node, Applier: &recorder{}},
		"no node id": {Address: "127.0.0.1:1", Node: &corev3.Node{}, Applier: &recorder{}},
		"no applier": {Address: "127.0.0.1:1", Node: node},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted invalid options", name)
		}
	}
}
