package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

type desiredState = map[string]map[resourcev3.Type][]types.Resource

func mustSet(t *testing.T, s *Server, d desiredState) {
	t.Helper()
	if err := s.Set(context.Background(), d); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// wantVersions hashes a fixture the way the server does, to check the
// versions it serves.
func wantVersions(t *testing.T, byType map[resourcev3.Type][]types.Resource) map[resourcev3.Type]string {
	t.Helper()
	sets, err := hashGateway(byType)
	if err != nil {
		t.Fatalf("hashing fixture: %v", err)
	}
	return versionsOf(sets)
}

func clusterTimeouts(t *testing.T, r *discovery.DiscoveryResponse) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, a := range r.GetResources() {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			t.Fatalf("decoding cluster: %v", err)
		}
		out[c.GetName()] = c.GetConnectTimeout().AsDuration()
	}
	return out
}

func TestSotWPushesOnlyChangedTypes(t *testing.T) {
	env := startServer(t)
	f1 := defaultFixture()
	mustSet(t, env.srv, desiredState{"ns/gw": f1.build(t)})
	want1 := wantVersions(t, f1.build(t))

	c := newSotwClient(t, env.addr, &corev3.Node{Id: "proxy-1", Cluster: "ns/gw"})
	c.subscribe(resourcev3.ClusterType)
	c.subscribe(resourcev3.ListenerType)
	c.subscribe(resourcev3.EndpointType, "backend-a", "backend-b")
	c.subscribe(resourcev3.RouteType, "route-a")
	c.subscribe(resourcev3.SecretType, "gateway-cert")

	wantCount := map[string]int{
		resourcev3.ClusterType: 2, resourcev3.ListenerType: 1, resourcev3.EndpointType: 2,
		resourcev3.RouteType: 1, resourcev3.SecretType: 1,
	}
	got := map[string]*discovery.DiscoveryResponse{}
	for range wantCount {
		r := c.next()
		if _, dup := got[r.GetTypeUrl()]; dup {
			t.Fatalf("type %s sent twice in the initial exchange", r.GetTypeUrl())
		}
		got[r.GetTypeUrl()] = r
		c.ack(r)
	}
	for typeURL, n := range wantCount {
		r := got[typeURL]
		if len(r.GetResources()) != n {
			t.Errorf("%s: got %d resources, want %d", typeURL, len(r.GetResources()), n)
		}
		if r.GetVersionInfo() != want1[typeURL] || r.GetVersionInfo() == "" {
			t.Errorf("%s: version %q, want content hash %q", typeURL, r.GetVersionInfo(), want1[typeURL])
		}
	}

	// One cluster changes: only CDS is pushed, with a new version.
	f2 := defaultFixture()
	f2.timeout["backend-a"] = 2 * time.Second
	mustSet(t, env.srv, desiredState{"ns/gw": f2.build(t)})
	r := c.next()
	if r.GetTypeUrl() != resourcev3.ClusterType {
		t.Fatalf("after a cluster change got %s, want only CDS", r.GetTypeUrl())
	}
	if r.GetVersionInfo() == want1[resourcev3.ClusterType] {
		t.Fatalf("CDS version unchanged (%s) after a cluster change", r.GetVersionInfo())
	}
	if got := clusterTimeouts(t, r)["backend-a"]; got != 2*time.Second {
		t.Errorf("backend-a connect timeout %v, want 2s", got)
	}
	c.ack(r)

	// Then an endpoint changes: the next response must be EDS, which shows
	// that LDS, RDS, SDS (and CDS again) were not re-sent in between.
	f3 := f2
	f3.endpointPort = map[string]uint32{"backend-b": 9001}
	mustSet(t, env.srv, desiredState{"ns/gw": f3.build(t)})
	r = c.next()
	if r.GetTypeUrl() != resourcev3.EndpointType {
		t.Fatalf("after an endpoint change got %s, want EDS", r.GetTypeUrl())
	}
	c.ack(r)
	edsVersion := r.GetVersionInfo()
	eventually(t, "EDS ACK recorded", func() bool {
		n, ok := findNode(env.srv, "proxy-1")
		return ok && n.Types[resourcev3.EndpointType].AckedVersion == edsVersion && n.Gateway == "ns/gw"
	})
	n, _ := findNode(env.srv, "proxy-1")
	if v := n.Types[resourcev3.ListenerType].AckedVersion; v != want1[resourcev3.ListenerType] {
		t.Errorf("LDS acked version %q, want %q", v, want1[resourcev3.ListenerType])
	}
}

// deltaClient is a raw delta ADS client.
type deltaClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resp   chan *discovery.DeltaDiscoveryResponse
	errc   chan error
}

func newDeltaClient(t *testing.T, addr string) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, addr)).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening delta ADS stream: %v", err)
	}
	c := &deltaClient{t: t, stream: stream, resp: make(chan *discovery.DeltaDiscoveryResponse, 16), errc: make(chan error, 1)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resp <- r
		}
	}()
	return c
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("sending delta request: %v", err)
	}
}

func (c *deltaClient) next() *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resp:
		return r
	case err := <-c.errc:
		c.t.Fatalf("delta stream failed: %v", err)
	case <-time.After(waitTimeout):
		c.t.Fatalf("no delta response within %v", waitTimeout)
	}
	return nil
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	slices.Sort(out)
	return out
}

func TestDeltaSendsOnlyChangedAndRemoved(t *testing.T) {
	env := startServer(t)
	mustSet(t, env.srv, desiredState{"ns/gw": defaultFixture().build(t)})

	c := newDeltaClient(t, env.addr)
	c.send(&discovery.DeltaDiscoveryRequest{
		Node:    &corev3.Node{Id: "delta-1", Cluster: "ns/gw"},
		TypeUrl: resourcev3.ClusterType,
	})
	r := c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"backend-a", "backend-b"}) {
		t.Fatalf("initial delta resources %v, want [backend-a backend-b]", got)
	}
	initialVersions := map[string]string{}
	for _, res := range r.GetResources() {
		initialVersions[res.GetName()] = res.GetVersion()
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce()})

	f2 := defaultFixture()
	f2.timeout["backend-b"] = 3 * time.Second
	mustSet(t, env.srv, desiredState{"ns/gw": f2.build(t)})
	r = c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"backend-b"}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("after changing backend-b got resources %v removed %v, want only backend-b", got, r.GetRemovedResources())
	}
	if v := r.GetResources()[0].GetVersion(); v == initialVersions["backend-b"] || v == "" {
		t.Errorf("backend-b version %q did not change", v)
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce()})
	sysVersion := r.GetSystemVersionInfo()

	f3 := f2
	f3.clusters = []string{"backend-a"}
	mustSet(t, env.srv, desiredState{"ns/gw": f3.build(t)})
	r = c.next()
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"backend-b"}) {
		t.Fatalf("after removing backend-b got resources %v removed %v, want only removal of backend-b",
			deltaNames(r), r.GetRemovedResources())
	}
	eventually(t, "delta ACK recorded", func() bool {
		n, ok := findNode(env.srv, "delta-1")
		return ok && n.Delta && n.Types[resourcev3.ClusterType].AckedVersion == sysVersion
	})
}

func TestNACKRecordedAndNotResent(t *testing.T) {
	env := startServer(t)
	f1 := defaultFixture()
	mustSet(t, env.srv, desiredState{"ns/gw": f1.build(t)})

	c := newSotwClient(t, env.addr, &corev3.Node{Id: "proxy-n", Cluster: "ns/gw"})
	c.subscribe(resourcev3.ClusterType)
	c.subscribe(resourcev3.ListenerType)
	var v1 string
	for range 2 {
		r := c.next()
		if r.GetTypeUrl() == resourcev3.ClusterType {
			v1 = r.GetVersionInfo()
		}
		c.ack(r)
	}

	f2 := defaultFixture()
	f2.timeout["backend-a"] = 7 * time.Second
	mustSet(t, env.srv, desiredState{"ns/gw": f2.build(t)})
	bad := c.next()
	if bad.GetTypeUrl() != resourcev3.ClusterType {
		t.Fatalf("got %s, want CDS", bad.GetTypeUrl())
	}
	const msg = "cluster backend-a: connect_timeout above proxy limit"
	c.nack(bad, v1, msg)

	eventually(t, "NACK recorded", func() bool {
		n, ok := findNode(env.srv, "proxy-n")
		return ok && n.Types[resourcev3.ClusterType].LastNACKMessage == msg
	})
	n, _ := findNode(env.srv, "proxy-n")
	ts := n.Types[resourcev3.ClusterType]
	if ts.AckedVersion != v1 || ts.LastNACKVersion != bad.GetVersionInfo() || ts.LastNACKAt.IsZero() || ts.LastNACKCode != 3 {
		t.Errorf("CDS status %+v, want acked %q and NACK of %q", ts, v1, bad.GetVersionInfo())
	}

	// The rejected CDS version is not pushed again: two listener changes
	// arrive back to back with nothing in between.
	for _, port := range []uint32{8081, 8082} {
		f := f2
		f.port = port
		mustSet(t, env.srv, desiredState{"ns/gw": f.build(t)})
		r := c.next()
		if r.GetTypeUrl() != resourcev3.ListenerType {
			t.Fatalf("after a listener change got %s (version %s), want LDS", r.GetTypeUrl(), r.GetVersionInfo())
		}
		l := &listenerv3.Listener{}
		if err := r.GetResources()[0].UnmarshalTo(l); err != nil {
			t.Fatalf("decoding listener: %v", err)
		}
		if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != port {
			t.Errorf("listener port %d, want %d", got, port)
		}
		c.ack(r)
	}

	if got := metricValue(t, env.reg, "sekisho_xds_nacks_total", map[string]string{"type_url": resourcev3.ClusterType}); got != 1 {
		t.Errorf("nacks_total{CDS} = %v, want 1", got)
	}
	if got := metricValue(t, env.reg, "sekisho_xds_pushes_total", map[string]string{"type_url": resourcev3.ClusterType}); got != 2 {
		t.Errorf("pushes_total{CDS} = %v, want 2", got)
	}
	if got := metricValue(t, env.reg, "sekisho_xds_connected_streams", nil); got != 1 {
		t.Errorf("connected_streams = %v, want 1", got)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, `"level":"ERROR","msg":"a proxy cannot serve the configuration`) || !strings.Contains(logs, msg) {
		t.Errorf("no ERROR log with the NACK message; logs:\n%s", logs)
	}

	// A fixed cluster is pushed and ACKed.
	f3 := f2
	f3.port = 8082
	f3.timeout = map[string]time.Duration{"backend-a": 4 * time.Second}
	mustSet(t, env.srv, desiredState{"ns/gw": f3.build(t)})
	r := c.next()
	if r.GetTypeUrl() != resourcev3.ClusterType || clusterTimeouts(t, r)["backend-a"] != 4*time.Second {
		t.Fatalf("got %s %v, want the fixed CDS", r.GetTypeUrl(), clusterTimeouts(t, r))
	}
	c.ack(r)
	eventually(t, "fixed CDS ACKed", func() bool {
		n, ok := findNode(env.srv, "proxy-n")
		return ok && n.Types[resourcev3.ClusterType].AckedVersion == r.GetVersionInfo()
	})
}

func TestInvalidSnapshotRefused(t *testing.T) {
	env := startServer(t)
	good := defaultFixture()
	mustSet(t, env.srv, desiredState{"ns/a": good.build(t), "ns/b": good.build(t)})
	goodLDS := wantVersions(t, good.build(t))[resourcev3.ListenerType]

	cb := newSotwClient(t, env.addr, &corev3.Node{Id: "proxy-b", Cluster: "ns/b"})
	cb.subscribe(resourcev3.ClusterType)
	first := cb.next()
	cb.ack(first)

	invalidCluster := good.build(t)
	invalidCluster[resourcev3.ClusterType][0].(*clusterv3.Cluster).ConnectTimeout.Seconds = -1

	missingRoute := good
	missingRoute.routeConfig = "route-missing"

	changedB := defaultFixture()
	changedB.timeout["backend-b"] = 9 * time.Second

	tests := []struct {
		name    string
		bad     map[resourcev3.Type][]types.Resource
		wantErr []string
		bTime   time.Duration
	}{
		{"rds name missing", missingRoute.build(t), []string{`"ns/a"`, "route"}, 9 * time.Second},
		{"cluster fails validation", invalidCluster, []string{`"ns/a"`, `"backend-a"`, "ConnectTimeout"}, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := defaultFixture()
			b.timeout["backend-b"] = tc.bTime
			err := env.srv.Set(context.Background(), desiredState{"ns/a": tc.bad, "ns/b": b.build(t)})
			if err == nil {
				t.Fatal("Set accepted an invalid snapshot")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "ns/b") {
				t.Errorf("error %q blames the valid gateway ns/b", err)
			}
			// The valid gateway was still updated.
			r := cb.next()
			if got := clusterTimeouts(t, r)["backend-b"]; got != tc.bTime {
				t.Errorf("ns/b backend-b timeout %v, want %v", got, tc.bTime)
			}
			cb.ack(r)
			// The refused gateway still serves its previous snapshot.
			ca := newSotwClient(t, env.addr, &corev3.Node{Id: "proxy-a-" + strings.ReplaceAll(tc.name, " ", "-"), Cluster: "ns/a"})
			ca.subscribe(resourcev3.ListenerType)
			lr := ca.next()
			if lr.GetVersionInfo() != goodLDS {
				t.Errorf("ns/a LDS version %q, want the previous %q", lr.GetVersionInfo(), goodLDS)
			}
		})
	}
	if got := metricValue(t, env.reg, "sekisho_xds_snapshot_rejections_total", nil); got != 2 {
		t.Errorf("snapshot_rejections_total = %v, want 2", got)
	}
}

func TestUnknownGatewayWaitsAndRemovalEmpties(t *testing.T) {
	env := startServer(t)
	other := defaultFixture()
	mustSet(t, env.srv, desiredState{"ns/other": other.build(t)})

	co := newSotwClient(t, env.addr, &corev3.Node{Id: "other-1", Cluster: "ns/other"})
	co.subscribe(resourcev3.ClusterType)
	co.ack(co.next())

	// No cluster set: the key is the node id.
	late := newSotwClient(t, env.addr, &corev3.Node{Id: "ns/late"})
	late.subscribe(resourcev3.ClusterType)
	eventually(t, "late node registered", func() bool {
		n, ok := findNode(env.srv, "ns/late")
		return ok && n.Gateway == "ns/late"
	})

	changed := defaultFixture()
	changed.timeout["backend-a"] = 6 * time.Second
	mustSet(t, env.srv, desiredState{"ns/other": changed.build(t)})
	co.ack(co.next()) // a push happened for the known gateway...
	late.expectNothing(200 * time.Millisecond)

	mustSet(t, env.srv, desiredState{"ns/other": changed.build(t), "ns/late": defaultFixture().build(t)})
	r := late.next()
	if r.GetTypeUrl() != resourcev3.ClusterType || len(r.GetResources()) != 2 {
		t.Fatalf("late gateway got %s with %d resources, want CDS with 2", r.GetTypeUrl(), len(r.GetResources()))
	}
	late.ack(r)

	// Removing the gateway while its proxy is connected empties its config,
	// and re-adding it is pushed to the same stream.
	mustSet(t, env.srv, desiredState{"ns/other": changed.build(t)})
	r = late.next()
	if len(r.GetResources()) != 0 {
		t.Fatalf("removed gateway got %d clusters, want 0", len(r.GetResources()))
	}
	late.ack(r)
	mustSet(t, env.srv, desiredState{"ns/other": changed.build(t), "ns/late": defaultFixture().build(t)})
	if r = late.next(); len(r.GetResources()) != 2 {
		t.Fatalf("re-added gateway got %d clusters, want 2", len(r.GetResources()))
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	srv := New(Options{Logger: quietLogger(), ShutdownGrace: 100 * time.Millisecond})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()

	// An open ADS stream that never ends on its own.
	c := newSotwClient(t, lis.Addr().String(), &corev3.Node{Id: "p", Cluster: "ns/none"})
	c.subscribe(resourcev3.ClusterType)
	eventually(t, "stream registered", func() bool { _, ok := findNode(srv, "p"); return ok })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after cancel")
	}
	select {
	case err := <-c.errc:
		if err == nil {
			t.Error("stream ended without error")
		}
	case <-time.After(waitTimeout):
		t.Fatal("client stream still open after Serve returned")
	}
	if _, err := net.Dial("tcp", lis.Addr().String()); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
	eventually(t, "streams closed", func() bool { return len(srv.Nodes()) == 0 })
}

func TestServeReturnsListenerError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	_ = lis.Close()
	err = New(Options{Logger: quietLogger()}).Serve(context.Background(), lis)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed listener returned %v, want a wrapped net.ErrClosed", err)
	}
}
