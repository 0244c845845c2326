package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/ir"
)

var update = flag.Bool("update", false, "rewrite the golden .out.yaml files from the current output")

// readGateway decodes one IR gateway from a .in.yaml file, rejecting unknown fields.
func readGateway(t testing.TB, path string) *ir.Gateway {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	gw := &ir.Gateway{}
	if err := yaml.UnmarshalStrict(data, gw); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return gw
}

// render writes resources as YAML: one list per resource type, each resource
// as protojson with the proto field names Envoy's docs use.
func render(res *Resources) ([]byte, error) {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	out := map[string][]json.RawMessage{}
	add := func(key string, m proto.Message) error {
		b, err := opts.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshalling %s: %w", key, err)
		}
		out[key] = append(out[key], b)
		return nil
	}
	for _, x := range res.Listeners {
		if err := add("listeners", x); err != nil {
			return nil, err
		}
	}
	for _, x := range res.Routes {
		if err := add("routes", x); err != nil {
			return nil, err
		}
	}
	for _, x := range res.Clusters {
		if err := add("clusters", x); err != nil {
			return nil, err
		}
	}
	for _, x := range res.Endpoints {
		if err := add("endpoints", x); err != nil {
			return nil, err
		}
	}
	for _, x := range res.Secrets {
		if err := add("secrets", x); err != nil {
			return nil, err
		}
	}
	j, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 20 {
		t.Fatalf("found %d golden cases, want at least 20", len(inputs))
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			gw := readGateway(t, in)
			res, err := Translate(gw)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if err := res.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := render(res)
			if err != nil {
				t.Fatal(err)
			}
			outPath := filepath.Join("testdata", name+".out.yaml")
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("reading golden (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from the golden (-want +got):\n%s", outPath, diff)
			}
			// The same input translates to the same bytes.
			again, err := Translate(readGateway(t, in))
			if err != nil {
				t.Fatal(err)
			}
			got2, err := render(again)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, got2) {
				t.Error("translating the same input twice gave different output")
			}
		})
	}
}

func TestByType(t *testing.T) {
	res, err := Translate(readGateway(t, filepath.Join("testdata", "https-sni.in.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	by := res.ByType()
	want := map[string]int{
		resourcev3.ListenerType: len(res.Listeners),
		resourcev3.RouteType:    len(res.Routes),
		resourcev3.ClusterType:  len(res.Clusters),
		resourcev3.EndpointType: len(res.Endpoints),
		resourcev3.SecretType:   len(res.Secrets),
	}
	for typ, n := range want {
		if n == 0 {
			t.Fatalf("the https-sni case has no %s", typ)
		}
		if len(by[typ]) != n {
			t.Errorf("ByType()[%s] has %d resources, want %d", typ, len(by[typ]), n)
		}
		for i, r := range by[typ] {
			url := "type.googleapis.com/" + string(r.ProtoReflect().Descriptor().FullName())
			if url != typ {
				t.Errorf("ByType()[%s][%d] is a %s", typ, i, url)
			}
		}
	}
	if len(by) != len(want) {
		t.Errorf("ByType() has %d types, want %d", len(by), len(want))
	}
}
