package server

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestGatewayKey(t *testing.T) {
	tests := []struct {
		node *corev3.Node
		want string
	}{
		{&corev3.Node{Id: "pod-1", Cluster: "ns/gw"}, "ns/gw"},
		{&corev3.Node{Id: "pod-2", Cluster: "ns/gw"}, "ns/gw"},
		{&corev3.Node{Id: "ns/solo"}, "ns/solo"},
		{nil, ""},
	}
	for _, tc := range tests {
		if got := GatewayKey(tc.node); got != tc.want {
			t.Errorf("GatewayKey(%v) = %q, want %q", tc.node, got, tc.want)
		}
	}
}

func TestTypeVersionIsContentHash(t *testing.T) {
	base := defaultFixture().build(t)
	v := wantVersions(t, base)

	reordered := defaultFixture().build(t)
	slices.Reverse(reordered[resourcev3.ClusterType])
	if got := wantVersions(t, reordered); got[resourcev3.ClusterType] != v[resourcev3.ClusterType] {
		t.Errorf("CDS version depends on input order: %s vs %s", got[resourcev3.ClusterType], v[resourcev3.ClusterType])
	}

	f := defaultFixture()
	f.timeout["backend-b"] = 10 * time.Second
	changed := wantVersions(t, f.build(t))
	for _, typeURL := range typeURLs {
		same := changed[typeURL] == v[typeURL]
		if typeURL == resourcev3.ClusterType && same {
			t.Errorf("CDS version unchanged after a cluster change")
		}
		if typeURL != resourcev3.ClusterType && !same {
			t.Errorf("%s version changed though its resources did not", typeURL)
		}
	}

	dup := defaultFixture().build(t)
	dup[resourcev3.ClusterType] = append(dup[resourcev3.ClusterType], dup[resourcev3.ClusterType][0])
	if _, err := hashGateway(dup); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate cluster names: err = %v, want a duplicate error", err)
	}
	if _, err := hashGateway(map[resourcev3.Type][]types.Resource{"type.example/Unknown": nil}); err == nil {
		t.Error("unknown type URL accepted")
	}
}

func TestSetUnchangedKeepsSnapshot(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Logger: quietLogger(), Registerer: reg})
	ctx := context.Background()
	if err := s.Set(ctx, desiredState{"ns/gw": defaultFixture().build(t)}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	before, err := s.cache.GetSnapshot("ns/gw")
	if err != nil {
		t.Fatalf("getting snapshot: %v", err)
	}
	// Equal content in new objects: no new snapshot.
	if err := s.Set(ctx, desiredState{"ns/gw": defaultFixture().build(t)}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	after, err := s.cache.GetSnapshot("ns/gw")
	if err != nil {
		t.Fatalf("getting snapshot: %v", err)
	}
	if before != after {
		t.Error("Set with unchanged resources installed a new snapshot")
	}
	if got := metricValue(t, reg, "sekisho_xds_snapshot_updates_total", nil); got != 1 {
		t.Errorf("snapshot_updates_total = %v, want 1", got)
	}

	// A gateway absent from the map with no proxy connected is cleared.
	if err := s.Set(ctx, desiredState{}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := s.cache.GetSnapshot("ns/gw"); err == nil {
		t.Error("snapshot of a removed gateway still in the cache")
	}

	// Registering twice on one registry is reported, not fatal.
	_ = New(Options{Logger: quietLogger(), Registerer: reg})
}

func TestSetRefusesNilAndNameless(t *testing.T) {
	s := New(Options{Logger: quietLogger()})
	tests := map[string]map[resourcev3.Type][]types.Resource{
		"nil resource":      {resourcev3.ClusterType: {nil}},
		"nameless resource": {resourcev3.ClusterType: {&clusterv3.Cluster{}}},
	}
	for name, d := range tests {
		if err := s.Set(context.Background(), desiredState{"ns/x": d}); err == nil || !strings.Contains(err.Error(), `"ns/x"`) {
			t.Errorf("%s: err = %v, want an error naming ns/x", name, err)
		}
	}
}
