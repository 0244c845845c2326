package file

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden is what one file yields: the objects served (decoded, validated)
// and every problem, as strings.
type golden struct {
	Objects  []goldenObject `json:"objects"`
	Problems []string       `json:"problems"`
}

type goldenObject struct {
	Key    string `json:"key"`
	Source string `json:"source"`
	Object any    `json:"object"`
}

func toGolden(r *fileResult) golden {
	g := golden{Objects: []goldenObject{}, Problems: []string{}}
	for _, e := range r.objects {
		g.Objects = append(g.Objects, goldenObject{Key: e.key.String(), Source: e.src.String(), Object: e.obj})
	}
	for _, p := range r.problems {
		s := p.String()
		if p.Warning {
			s = "warning: " + s
		}
		g.Problems = append(g.Problems, s)
	}
	return g
}

// TestGolden decodes and validates each testdata/parse/<case>.in.yaml and
// compares the objects and problems with <case>.out.yaml.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/parse/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sigsyaml.Marshal(toGolden(loadFile(filepath.Base(in), data)))
			if err != nil {
				t.Fatal(err)
			}
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got):\n%s", out, diff)
			}
		})
	}
}
