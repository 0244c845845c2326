package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/xds/translate"
)

// TestGoldensHonoured translates every golden IR input of the xDS translator
// and fails on any field the proxy does not honour.
func TestGoldensHonoured(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("..", "..", "xds", "translate", "testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 20 {
		t.Fatalf("found %d golden inputs, want at least 20", len(inputs))
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			gw := &ir.Gateway{}
			if err := yaml.UnmarshalStrict(data, gw); err != nil {
				t.Fatalf("decoding %s: %v", in, err)
			}
			res, err := translate.Translate(gw)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			var msgs []proto.Message
			for _, x := range res.Listeners {
				msgs = append(msgs, x)
			}
			for _, x := range res.Routes {
				msgs = append(msgs, x)
			}
			for _, x := range res.Clusters {
				msgs = append(msgs, x)
			}
			for _, x := range res.Endpoints {
				msgs = append(msgs, x)
			}
			for _, x := range res.Secrets {
				msgs = append(msgs, x)
			}
			for _, m := range msgs {
				if bad := Unhonoured(m); len(bad) > 0 {
					t.Errorf("%s: not honoured: %v", m.ProtoReflect().Descriptor().FullName(), bad)
				}
			}
		})
	}
}

func TestUnhonouredFindsFields(t *testing.T) {
	// A field the proxy does not honour, at top level.
	rc := &routev3.RouteConfiguration{Name: "r", MostSpecificHeaderMutationsWins: true}
	bad := Unhonoured(rc)
	if len(bad) != 1 || !strings.Contains(bad[0], "envoy.config.route.v3.RouteConfiguration.most_specific_header_mutations_wins") {
		t.Fatalf("Unhonoured = %v, want most_specific_header_mutations_wins", bad)
	}
	// Nested inside an Any typed config.
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", XffNumTrustedHops: 2, NormalizePath: wrapperspb.Bool(true)}
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}},
	}}}
	bad = Unhonoured(l)
	if len(bad) != 1 || !strings.Contains(bad[0], "xff_num_trusted_hops") || !strings.Contains(bad[0], "filter_chains[0]") {
		t.Fatalf("Unhonoured = %v, want xff_num_trusted_hops inside the chain", bad)
	}
	// An Any of a type the proxy does not know.
	other, err := anypb.New(&routev3.Route{})
	if err != nil {
		t.Fatal(err)
	}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: other}
	bad = Unhonoured(l)
	if len(bad) != 1 || !strings.Contains(bad[0], "typed config envoy.config.route.v3.Route") {
		t.Fatalf("Unhonoured = %v, want the unknown typed config", bad)
	}
	if err := Check("listener", "l", l); err == nil || !strings.Contains(err.Error(), `listener "l"`) {
		t.Fatalf("Check = %v, want an error naming the listener", err)
	}
}

func TestRegistryNamesExist(t *testing.T) {
	// Every registered field must name a real field, or the registry rots.
	for _, f := range Fields() {
		i := strings.LastIndex(f, ".")
		if !fieldExists(f[:i], f[i+1:]) {
			t.Errorf("registry names %s, which is not a known field", f)
		}
	}
	if fieldExists("envoy.config.route.v3.RouteAction", "no_such_field") {
		t.Fatal("fieldExists finds a field that does not exist")
	}
}
