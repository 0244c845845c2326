package proxy

import (
	"context"
	"testing"
	"time"

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
