package translate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/ir"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type namedStatus[T any] struct {
	Name   string `json:"name"`
	Status T      `json:"status"`
}

type goldenStatus struct {
	GatewayClasses []namedStatus[*gwv1.GatewayClassStatus] `json:"gatewayClasses,omitempty"`
	Gateways       []namedStatus[*gwv1.GatewayStatus]      `json:"gateways,omitempty"`
	HTTPRoutes     []namedStatus[*gwv1.HTTPRouteStatus]    `json:"httpRoutes,omitempty"`
	GRPCRoutes     []namedStatus[*gwv1.GRPCRouteStatus]    `json:"grpcRoutes,omitempty"`
	Policies       []namedStatus[*gwv1.PolicyStatus]       `json:"policies,omitempty"`
}

type golden struct {
	IR       *ir.Config   `json:"ir"`
	Status   goldenStatus `json:"status"`
	Problems []string     `json:"problems,omitempty"`
}

func sortedStatus[T any](m map[types.NamespacedName]T) []namedStatus[T] {
	out := make([]namedStatus[T], 0, len(m))
	for k, v := range m {
		n := k.Name
		if k.Namespace != "" {
			n = k.Namespace + "/" + k.Name
		}
		out = append(out, namedStatus[T]{Name: n, Status: v})
	}
	slices.SortFunc(out, func(a, b namedStatus[T]) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func goldenOf(parseProblems []resource.Problem, r *Result) golden {
	g := golden{IR: r.IR, Status: goldenStatus{
		GatewayClasses: sortedStatus(r.Status.GatewayClasses),
		Gateways:       sortedStatus(r.Status.Gateways),
		HTTPRoutes:     sortedStatus(r.Status.HTTPRoutes),
		GRPCRoutes:     sortedStatus(r.Status.GRPCRoutes),
	}}
	for k, v := range r.Status.Policies {
		g.Status.Policies = append(g.Status.Policies, namedStatus[*gwv1.PolicyStatus]{Name: k.Kind + " " + k.Namespace + "/" + k.Name, Status: v})
	}
	slices.SortFunc(g.Status.Policies, func(a, b namedStatus[*gwv1.PolicyStatus]) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range append(parseProblems, r.Problems...) {
		s := p.String()
		if p.Warning {
			s = "warning: " + s
		}
		g.Problems = append(g.Problems, s)
	}
	return g
}

func translateFile(t testing.TB, path string) (golden, *Result) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var res resource.Resources
	pp := file.ParseBytes(filepath.Base(path), data, &res)
	r := Translate(&res, testOptions)
	return goldenOf(pp, r), r
}

// testOptions are the options of every golden case: the services' addresses
// are set, so policies can be Accepted.
var testOptions = Options{
	DefaultAddresses: []string{"127.0.0.1"},
	AuthzService:     []ir.ServiceAddress{{Address: "127.0.0.1", Port: 18001}},
	RateLimitService: []ir.ServiceAddress{{Address: "127.0.0.1", Port: 18002}},
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			g, _ := translateFile(t, in)
			got, err := yaml.Marshal(g)
			if err != nil {
				t.Fatalf("marshalling the result: %v", err)
			}
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatalf("writing %s: %v", out, err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("reading %s (run with -update to create it): %v", out, err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("%s differs from the golden file (-want +got):\n%s", name, d)
			}
		})
	}
}

// TestStatusTable checks the table printed from one golden case's status.
func TestStatusTable(t *testing.T) {
	_, r := translateFile(t, "testdata/listener-conflicts.in.yaml")
	var buf bytes.Buffer
	if err := r.Status.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.HasPrefix(lines[0], "KIND") || !strings.Contains(lines[0], "NAMESPACE/NAME") {
		t.Fatalf("header: %q", lines[0])
	}
	rows := r.Status.Rows()
	if len(lines) != len(rows)+1 {
		t.Fatalf("got %d lines for %d rows", len(lines), len(rows))
	}
	var conflicted int
	for _, row := range rows {
		if row.Type == "Conflicted" && row.Status == "True" {
			conflicted++
		}
	}
	if conflicted == 0 {
		t.Errorf("no Conflicted=True row in\n%s", buf.String())
	}
}
