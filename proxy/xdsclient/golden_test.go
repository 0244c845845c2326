package xdsclient

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// TestTranslatorGoldensSubscriptions reads every xDS output of the
// translator and checks that the client subscribes to exactly the endpoints
// and route configurations it emits, and to every secret it emits (the
// control plane answers a named request only when it names all of them).
func TestTranslatorGoldensSubscriptions(t *testing.T) {
	files, err := filepath.Glob("../../xds/translate/testdata/*.out.yaml")
	if err != nil {
		t.Fatalf("listing translator goldens: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no translator goldens found")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("reading %s: %v", file, err)
			}
			var doc map[string][]json.RawMessage
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("parsing %s: %v", file, err)
			}
			s := emptySnapshot()
			s.Clusters = decodeGolden(t, doc["clusters"], func() *clusterv3.Cluster { return &clusterv3.Cluster{} }, (*clusterv3.Cluster).GetName)
			s.Listeners = decodeGolden(t, doc["listeners"], func() *listenerv3.Listener { return &listenerv3.Listener{} }, (*listenerv3.Listener).GetName)
			routes := decodeGolden(t, doc["routes"], func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }, (*routev3.RouteConfiguration).GetName)
			endpoints := decodeGolden(t, doc["endpoints"], func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} },
				(*endpointv3.ClusterLoadAssignment).GetClusterName)
			secrets := decodeGolden(t, doc["secrets"], func() *tlsv3.Secret { return &tlsv3.Secret{} }, (*tlsv3.Secret).GetName)

			r, err := referencesOf(s)
			if err != nil {
				t.Fatalf("reading references: %v", err)
			}
			if want := sortedKeys(endpoints); !slices.Equal(r.endpoints, want) {
				t.Errorf("EDS subscription %v, translator emits %v", r.endpoints, want)
			}
			if want := sortedKeys(routes); !slices.Equal(r.routes, want) {
				t.Errorf("RDS subscription %v, translator emits %v", r.routes, want)
			}
			for _, name := range sortedKeys(secrets) {
				if !slices.Contains(r.secrets, name) {
					t.Errorf("secret %q emitted but not subscribed to (subscribed: %v)", name, r.secrets)
				}
			}
		})
	}
}

func decodeGolden[M proto.Message](t *testing.T, items []json.RawMessage, newM func() M, nameOf func(M) string) map[string]M {
	t.Helper()
	out := map[string]M{}
	for i, item := range items {
		m := newM()
		if err := protojson.Unmarshal(item, m); err != nil {
			t.Fatalf("decoding item #%d as %T: %v", i, m, err)
		}
		out[nameOf(m)] = m
	}
	return out
}
