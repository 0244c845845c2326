package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

// A listener that arrives before its route configuration (ADS sends LDS
// before RDS) is accepted and warms: it is bound once the routes arrive.
func TestListenerWarmsUntilItsRoutesArrive(t *testing.T) {
	be := newRecorder(t, nil)
	r := route("web", prefix("/"))
	r.Forward = fwd("default/b:80")
	full := snapshotOf(t, httpGateway([]*ir.Route{r}, cluster("default/b:80", endpointOf(t, be.URL))))
	partial := *full
	partial.Routes = map[string]*routev3.RouteConfiguration{}

	rt := New(Options{Registerer: prometheus.NewRegistry(), Gateway: "default/eg"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	if err := rt.Apply(&partial); err != nil {
		t.Fatalf("a listener without its routes yet must be accepted (warming), got NACK: %v", err)
	}
	if addr := rt.Addr("default/eg/http"); addr != "" {
		t.Fatalf("a warming listener is bound at %s before its routes arrived", addr)
	}
	if err := rt.Apply(full); err != nil {
		t.Fatalf("Apply with routes: %v", err)
	}
	addr := rt.Addr("default/eg/http")
	if addr == "" {
		t.Fatal("the listener is not bound after its routes arrived")
	}
	resp, body := get(t, "http://"+addr+"/")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
	// Routes withdrawn again: the listener keeps serving what it had.
	if err := rt.Apply(&xdsclient.Snapshot{Listeners: full.Listeners, Clusters: full.Clusters, Endpoints: full.Endpoints, Secrets: full.Secrets}); err != nil {
		t.Fatalf("Apply without routes: %v", err)
	}
	if resp, _ := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
		t.Fatalf("after the route configuration went away: %d, want the previous routes to keep serving", resp.StatusCode)
	}
}

// A route change that moves traffic from cluster v1 to a new cluster v2
// arrives over ADS as CDS (v1 gone, v2 added), then RDS (routes to v2), then
// EDS (v2's endpoints). No request may fail in between: v1 stays while a
// route table in use sends traffic to it, and the new route table waits for
// v2's endpoints.
func TestClusterSwapIsMakeBeforeBreak(t *testing.T) {
	answer := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }
	}
	v1, v2 := newRecorder(t, answer("v1")), newRecorder(t, answer("v2"))
	gw := func(c string, be *recorder) *xdsclient.Snapshot {
		r := route("web", prefix("/"))
		r.Forward = fwd(c)
		return snapshotOf(t, httpGateway([]*ir.Route{r}, cluster(c, endpointOf(t, be.URL))))
	}
	a, b := gw("default/v1:80", v1), gw("default/v2:80", v2)

	rt, addr := startRuntime(t, a, "default/eg/http")
	want := func(step, backend string) {
		t.Helper()
		for i := 0; i < 5; i++ {
			resp, body := get(t, "http://"+addr+"/")
			if resp.StatusCode != 200 || body != backend {
				t.Fatalf("%s: got %d %q, want 200 from %s", step, resp.StatusCode, body, backend)
			}
		}
	}
	want("initial", "v1")

	// 1. CDS: v1 removed, v2 added (no endpoints yet); routes still name v1.
	cds := &xdsclient.Snapshot{Listeners: a.Listeners, Routes: a.Routes, Clusters: b.Clusters, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, Secrets: a.Secrets}
	if err := rt.Apply(cds); err != nil {
		t.Fatal(err)
	}
	want("after CDS", "v1")

	// 2. RDS: the routes now send traffic to v2, whose endpoints are not here yet.
	rds := &xdsclient.Snapshot{Listeners: a.Listeners, Routes: b.Routes, Clusters: b.Clusters, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, Secrets: a.Secrets}
	if err := rt.Apply(rds); err != nil {
		t.Fatal(err)
	}
	want("after RDS", "v1")

	// 3. EDS: v2's endpoints arrive; traffic moves to v2.
	if err := rt.Apply(b); err != nil {
		t.Fatal(err)
	}
	want("after EDS", "v2")
	var clusters strings.Builder
	rt.WriteClusters(&clusters)
	if strings.Contains(clusters.String(), "default/v1:80") {
		t.Errorf("v1 is still held after no route uses it:\n%s", clusters.String())
	}
}
