package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/xds/server"
	xdstranslate "github.com/sekisho/sekisho/xds/translate"
)

const twoGateways = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec: {controllerName: sekisho.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: a}, {name: b}]
  rules:
  - matches: [{path: {type: PathPrefix, value: PREFIX}}]
    backendRefs: [{name: svc, port: 80}]
`

func resources(t *testing.T, prefix string) *resource.Resources {
	t.Helper()
	res := &resource.Resources{}
	if probs := file.ParseBytes("test.yaml", []byte(strings.ReplaceAll(twoGateways, "PREFIX", prefix)), res); len(probs) > 0 {
		t.Fatalf("parsing: %v", probs)
	}
	return res
}

// prefixServed returns the path prefix of the first route of a Gateway's
// route table in the server's current snapshot.
func prefixServed(t *testing.T, srv *server.Server, gateway string) string {
	t.Helper()
	snap, err := srv.Snapshot(gateway)
	if err != nil {
		t.Fatalf("snapshot of %s: %v", gateway, err)
	}
	for _, r := range snap.GetResources(resourcev3.RouteType) {
		rc := r.(*routev3.RouteConfiguration)
		for _, vh := range rc.VirtualHosts {
			if len(vh.Routes) == 0 {
				continue
			}
			m := vh.Routes[0].GetMatch()
			if p := m.GetPathSeparatedPrefix(); p != "" {
				return p
			}
			return m.GetPrefix()
		}
	}
	t.Fatalf("gateway %s has no route", gateway)
	return ""
}

func TestGatewayWhoseXDSFailsKeepsItsLastGoodSnapshot(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New(server.Options{Logger: log})
	p := New(srv, Options{Logger: log})
	ctx := context.Background()

	if _, err := p.Apply(ctx, resources(t, "/v1"), nil); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	if !p.Ready() {
		t.Fatal("not ready after a successful apply")
	}
	for _, gw := range []string{"default/a", "default/b"} {
		if got := prefixServed(t, srv, gw); got != "/v1" {
			t.Fatalf("%s serves %q, want /v1", gw, got)
		}
	}

	// Gateway b's xDS cannot be built this time: a keeps moving, b keeps
	// what it had, and the error names b.
	p.buildXDS = func(gw *ir.Gateway) (*xdstranslate.Resources, error) {
		if gw.Name == "default/b" {
			return nil, errors.New("boom")
		}
		return xdstranslate.Translate(gw)
	}
	_, err := p.Apply(ctx, resources(t, "/v2"), nil)
	if err == nil || !strings.Contains(err.Error(), "default/b") {
		t.Fatalf("apply error = %v, want one naming gateway default/b", err)
	}
	if got := prefixServed(t, srv, "default/a"); got != "/v2" {
		t.Errorf("default/a serves %q, want /v2", got)
	}
	if got := prefixServed(t, srv, "default/b"); got != "/v1" {
		t.Errorf("default/b serves %q, want its last good /v1", got)
	}

	// b recovers.
	p.buildXDS = xdstranslate.Translate
	if _, err := p.Apply(ctx, resources(t, "/v3"), nil); err != nil {
		t.Fatalf("apply after recovery: %v", err)
	}
	if got := prefixServed(t, srv, "default/b"); got != "/v3" {
		t.Errorf("default/b serves %q after recovery, want /v3", got)
	}
}
