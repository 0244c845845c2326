package xdsclient

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/xds/server"
)

// waitView waits until c's view is exactly what f builds and the server
// saw it ACKed, then checks it field by field (reporting the differences
// on a timeout).
func waitView(t *testing.T, cp *controlPlane, c *runningClient, f fixture) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !viewEqual(t, c.Current(), f) || !allAcked(cp, c.Client, c.opts.Node.GetId()) {
		if time.Now().After(deadline) {
			checkView(t, c.Current(), f)
			t.Fatalf("timed out after %v waiting for the view to be applied and ACKed", waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkView(t, c.Current(), f)
}

// viewEqual reports whether got holds exactly the resources f builds.
func viewEqual(t *testing.T, got *Snapshot, f fixture) bool {
	t.Helper()
	if got == nil {
		return false
	}
	want := f.build(t)
	var gotList []types.Resource
	for _, typeURL := range allTypes {
		gotList = gotList[:0]
		switch typeURL {
		case ClusterType:
			for _, k := range sortedKeys(got.Clusters) {
				gotList = append(gotList, got.Clusters[k])
			}
		case EndpointType:
			for _, k := range sortedKeys(got.Endpoints) {
				gotList = append(gotList, got.Endpoints[k])
			}
		case ListenerType:
			for _, k := range sortedKeys(got.Listeners) {
				gotList = append(gotList, got.Listeners[k])
			}
		case RouteType:
			for _, k := range sortedKeys(got.Routes) {
				gotList = append(gotList, got.Routes[k])
			}
		case SecretType:
			for _, k := range sortedKeys(got.Secrets) {
				gotList = append(gotList, got.Secrets[k])
			}
		}
		w := want[typeURL]
		if len(w) != len(gotList) {
			return false
		}
		for i := range w {
			if !proto.Equal(w[i], gotList[i]) {
				return false
			}
		}
	}
	return true
}

// checkView fails unless every type of got holds exactly the resources f
// builds.
func checkView(t *testing.T, got *Snapshot, f fixture) {
	t.Helper()
	if got == nil {
		t.Fatalf("no view applied")
	}
	want := f.build(t)
	checkType(t, "listeners", got.Listeners, want[resourcev3.ListenerType], func(r types.Resource) string { return r.(*listenerv3.Listener).GetName() })
	checkType(t, "routes", got.Routes, want[resourcev3.RouteType], func(r types.Resource) string { return r.(*routev3.RouteConfiguration).GetName() })
	checkType(t, "clusters", got.Clusters, want[resourcev3.ClusterType], func(r types.Resource) string { return r.(*clusterv3.Cluster).GetName() })
	checkType(t, "endpoints", got.Endpoints, want[resourcev3.EndpointType], func(r types.Resource) string {
		return r.(*endpointv3.ClusterLoadAssignment).GetClusterName()
	})
	checkType(t, "secrets", got.Secrets, want[resourcev3.SecretType], func(r types.Resource) string { return r.(*tlsv3.Secret).GetName() })
}

func checkType[M proto.Message](t *testing.T, what string, got map[string]M, want []types.Resource, nameOf func(types.Resource) string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d resources %v, want %d", what, len(got), sortedKeys(got), len(want))
	}
	for _, w := range want {
		name := nameOf(w)
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %q missing", what, name)
			continue
		}
		if !proto.Equal(g, w) {
			t.Errorf("%s: %q differs:\n got %v\nwant %v", what, name, g, w)
		}
	}
}

func TestReceivesFullViewAndACKsEveryType(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f := defaultFixture()
	cp.set(t, f)
	c := startClient(t, cp.addr, "proxy-1")

	waitView(t, cp, c, f)
	cur := c.Current()
	n, _ := cp.node("proxy-1")
	if n.Gateway != gatewayKey {
		t.Errorf("server maps the proxy to gateway %q, want %q", n.Gateway, gatewayKey)
	}
	for _, typeURL := range allTypes {
		if ts := n.Types[typeURL]; !ts.LastNACKAt.IsZero() {
			t.Errorf("%s: unexpected NACK %q", typeURL, ts.LastNACKMessage)
		}
	}

	st := c.Status()
	if !st.Connected {
		t.Errorf("Status().Connected = false while the stream is open")
	}
	wantSubs := map[string][]string{EndpointType: {"backend-a"}, RouteType: {"route-a"}, SecretType: {"cert-a"}}
	for typeURL, want := range wantSubs {
		if got := st.Types[typeURL].Subscribed; !slices.Equal(got, want) {
			t.Errorf("%s subscribed to %v, want %v", shortType(typeURL), got, want)
		}
	}
	for _, typeURL := range allTypes {
		if st.Types[typeURL].Version != cur.Versions[typeURL] {
			t.Errorf("%s: status version %q, view version %q", shortType(typeURL), st.Types[typeURL].Version, cur.Versions[typeURL])
		}
		if got := metricValue(t, c.reg, "sekisho_proxy_xds_updates_total", map[string]string{"type": shortType(typeURL), "result": "ack"}); got < 1 {
			t.Errorf("updates_total{type=%s,result=ack} = %v, want >= 1", shortType(typeURL), got)
		}
	}
	if got := metricValue(t, c.reg, "sekisho_proxy_xds_connected", nil); got != 1 {
		t.Errorf("connected gauge = %v, want 1", got)
	}
	c.rec.mu.Lock()
	last := c.rec.applied[len(c.rec.applied)-1]
	c.rec.mu.Unlock()
	if last != cur {
		t.Errorf("Current() is not the last view handed to the applier")
	}
}

func TestChangedClusterIsApplied(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f1 := defaultFixture()
	cp.set(t, f1)
	c := startClient(t, cp.addr, "proxy-1")
	waitView(t, cp, c, f1)
	v1 := c.Current().Versions[ClusterType]
	applied := c.rec.count()

	f2 := f1.with(func(f *fixture) { f.clusters["backend-a"] = clusterSpec{timeout: 3 * time.Second, port: 9000} })
	cp.set(t, f2)
	eventually(t, "the changed cluster applied", func() bool {
		cur := c.Current()
		return cur.Clusters["backend-a"].GetConnectTimeout().AsDuration() == 3*time.Second
	})
	if c.rec.count() <= applied {
		t.Errorf("no new Apply for the changed cluster")
	}
	cur := c.Current()
	if cur.Versions[ClusterType] == v1 {
		t.Errorf("CDS version still %q after a change", v1)
	}
	waitView(t, cp, c, f2)

	// A new cluster: the client subscribes to its endpoints too.
	f3 := f2.with(func(f *fixture) { f.clusters["backend-b"] = clusterSpec{timeout: time.Second, port: 9200} })
	cp.set(t, f3)
	waitView(t, cp, c, f3)
	if got := c.Status().Types[EndpointType].Subscribed; !slices.Equal(got, []string{"backend-a", "backend-b"}) {
		t.Errorf("EDS subscription %v, want [backend-a backend-b]", got)
	}

	// The cluster removed: its endpoints leave the view and the subscription.
	cp.set(t, f2)
	waitView(t, cp, c, f2)
	if got := c.Status().Types[EndpointType].Subscribed; !slices.Equal(got, []string{"backend-a"}) {
		t.Errorf("EDS subscription %v after removal, want [backend-a]", got)
	}
}

func TestRefusedUpdateIsNACKedAndPreviousViewKept(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f1 := defaultFixture()
	cp.set(t, f1)
	c := startClient(t, cp.addr, "proxy-1")
	waitView(t, cp, c, f1)
	before := c.Current()
	keptVersion := before.Versions[ClusterType]

	c.rec.setRefuse(func(s *Snapshot) error {
		if s.Clusters["backend-a"].GetConnectTimeout().AsDuration() == 7*time.Second {
			return errRefused
		}
		return nil
	})
	cp.set(t, f1.with(func(f *fixture) { f.clusters["backend-a"] = clusterSpec{timeout: 7 * time.Second, port: 9000} }))

	eventually(t, "the NACK at the server", func() bool {
		n, ok := cp.node("proxy-1")
		return ok && !n.Types[ClusterType].LastNACKAt.IsZero()
	})
	n, _ := cp.node("proxy-1")
	ts := n.Types[ClusterType]
	if !strings.Contains(ts.LastNACKMessage, errRefused.Error()) {
		t.Errorf("NACK message %q does not carry the applier's error %q", ts.LastNACKMessage, errRefused)
	}
	if ts.LastNACKCode != 3 {
		t.Errorf("NACK code %d, want 3 (INVALID_ARGUMENT)", ts.LastNACKCode)
	}
	if ts.AckedVersion != keptVersion {
		t.Errorf("server sees acked CDS version %q, want the kept %q", ts.AckedVersion, keptVersion)
	}
	if c.Current() != before {
		t.Errorf("Current() changed after a refused update")
	}
	st := c.Status().Types[ClusterType]
	if !strings.Contains(st.LastNACK, errRefused.Error()) || st.Version != keptVersion || st.LastNACKVersion == keptVersion {
		t.Errorf("status after NACK: %+v, want the refusal, kept version %q", st, keptVersion)
	}
	if got := metricValue(t, c.reg, "sekisho_proxy_xds_updates_total", map[string]string{"type": "cds", "result": "nack"}); got != 1 {
		t.Errorf("updates_total{type=cds,result=nack} = %v, want 1", got)
	}

	f3 := f1.with(func(f *fixture) { f.clusters["backend-a"] = clusterSpec{timeout: 4 * time.Second, port: 9000} })
	cp.set(t, f3)
	waitView(t, cp, c, f3)
}

func TestKeepsViewWhileDisconnectedAndReconnects(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f := defaultFixture()
	cp.set(t, f)
	c := startClient(t, cp.addr, "proxy-1")
	waitView(t, cp, c, f)
	before := c.Current()
	applied := c.rec.count()

	cp.stop(t)
	eventually(t, "disconnected status", func() bool { return !c.Status().Connected })
	if c.Current() != before {
		t.Errorf("Current() changed while disconnected")
	}
	if c.Status().LastError == nil {
		t.Errorf("Status().LastError is nil after the stream was lost")
	}
	if got := metricValue(t, c.reg, "sekisho_proxy_xds_connected", nil); got != 0 {
		t.Errorf("connected gauge = %v while disconnected, want 0", got)
	}

	// The same content on a new server: the client resumes with its
	// versions, ACKs them, and has nothing to apply.
	cp2 := startControlPlane(t, cp.addr)
	cp2.set(t, f)
	eventually(t, "ACKs on the restarted server", func() bool { return allAcked(cp2, c.Client, "proxy-1") })
	if !c.Status().Connected {
		t.Errorf("Status().Connected = false after reconnecting")
	}
	if got := c.rec.count(); got != applied {
		t.Errorf("unchanged content re-applied: %d applies, want %d", got, applied)
	}
	if c.Current() != before {
		t.Errorf("Current() replaced though the content did not change")
	}
	if got := metricValue(t, c.reg, "sekisho_proxy_xds_reconnects_total", nil); got < 1 {
		t.Errorf("reconnects_total = %v, want >= 1", got)
	}

	f2 := f.with(func(f *fixture) { f.clusters["backend-a"] = clusterSpec{timeout: time.Second, port: 9100} })
	cp2.set(t, f2)
	waitView(t, cp2, c, f2)
}

func TestCancelStopsRunPromptly(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	cp.set(t, defaultFixture())

	// A port with nothing listening, for a client stuck reconnecting.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	deadAddr := lis.Addr().String()
	_ = lis.Close()

	for name, addr := range map[string]string{"connected": cp.addr, "reconnecting": deadAddr} {
		t.Run(name, func(t *testing.T) {
			c := startClient(t, addr, "proxy-"+name)
			if name == "connected" {
				eventually(t, "initial view", func() bool { return allAcked(cp, c.Client, c.opts.Node.GetId()) })
			} else {
				eventually(t, "a failed attempt", func() bool { return c.Status().LastError != nil })
			}
			start := time.Now()
			c.stop(t)
			if d := time.Since(start); d > time.Second {
				t.Errorf("Run took %v to return after cancel", d)
			}
		})
	}
}

func TestNewListenerSubscribesToItsRoutesAndSecrets(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f1 := defaultFixture()
	cp.set(t, f1)
	c := startClient(t, cp.addr, "proxy-1")
	waitView(t, cp, c, f1)

	f2 := f1.with(func(f *fixture) {
		f.listeners["https-8443"] = listenerSpec{port: 8443, route: "route-b", secret: "cert-b"}
	})
	cp.set(t, f2)
	waitView(t, cp, c, f2)
	st := c.Status()
	if got := st.Types[RouteType].Subscribed; !slices.Equal(got, []string{"route-a", "route-b"}) {
		t.Errorf("RDS subscription %v, want [route-a route-b]", got)
	}
	if got := st.Types[SecretType].Subscribed; !slices.Equal(got, []string{"cert-a", "cert-b"}) {
		t.Errorf("SDS subscription %v, want [cert-a cert-b]", got)
	}

	cp.set(t, f1)
	waitView(t, cp, c, f1)
	if got := c.Status().Types[RouteType].Subscribed; !slices.Equal(got, []string{"route-a"}) {
		t.Errorf("RDS subscription %v after removal, want [route-a]", got)
	}
}

// TestPartialApplyNACKsTheListenerAndACKsItOnceServed: an Applier that
// serves a view except one listener (its port is taken) gets the view kept,
// the LDS response NACKed naming that listener only (Envoy's message and
// BadRequest details, which the server reads), every other type ACKed, and
// the LDS version ACKed once the listener serves.
func TestPartialApplyNACKsTheListenerAndACKsItOnceServed(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0")
	f := defaultFixture().with(func(f *fixture) {
		f.listeners["http-1002"] = listenerSpec{port: 1002, route: "route-b", secret: "cert-b"}
	})
	cp.set(t, f)
	var taken atomic.Bool
	taken.Store(true)
	cause := errors.New("binding 0.0.0.0:1002: address already in use")
	c := startClient(t, cp.addr, "proxy-1")
	c.rec.setRefuse(func(s *Snapshot) error {
		if s.Listeners["http-1002"] != nil && taken.Load() {
			return &PartialError{Resources: []ResourceError{{TypeURL: ListenerType, Name: "http-1002", Err: cause}}}
		}
		return nil
	})
	eventually(t, "the listener rejected at the server, the others served", func() bool {
		dp := cp.srv.DataPlane(gatewayKey)
		return dp.Listeners["http-1002"] == server.ListenerState{Rejected: 1, Node: "proxy-1", Cause: cause.Error()} &&
			dp.Listeners["https-443"] == server.ListenerState{Serving: 1}
	})
	eventually(t, "every other type ACKed", func() bool {
		n, ok := cp.node("proxy-1")
		return ok && n.Types[ClusterType].AckedVersion != "" && n.Types[RouteType].AckedVersion != "" &&
			n.Types[EndpointType].AckedVersion != "" && n.Types[SecretType].AckedVersion != ""
	})
	n, _ := cp.node("proxy-1")
	if msg := n.Types[ListenerType].LastNACKMessage; msg != "Error adding/updating listener(s) http-1002: "+cause.Error()+"\n" {
		t.Errorf("NACK message %q, want Envoy's form naming http-1002", msg)
	}
	for _, typ := range []string{ClusterType, RouteType, EndpointType, SecretType} {
		if !n.Types[typ].LastNACKAt.IsZero() {
			t.Errorf("%s NACKed: %q", typ, n.Types[typ].LastNACKMessage)
		}
	}
	if cur := c.Current(); cur == nil || cur.Listeners["http-1002"] == nil || cur.Versions[ListenerType] != "" {
		t.Fatalf("current view %v: want the served view, with LDS version still the kept one (\"\")", cur)
	}

	taken.Store(false)
	c.AckServed(ListenerType, func() bool { return !taken.Load() })
	eventually(t, "the listener served at the server", func() bool {
		return cp.srv.DataPlane(gatewayKey).Listeners["http-1002"] == server.ListenerState{Serving: 1}
	})
	if v := c.Current().Versions[ListenerType]; v == "" {
		t.Errorf("LDS version still the kept one after the late ACK")
	}
}
