package translate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
)

// FuzzTranslate checks that no input panics and that translation is
// deterministic: the same input twice gives the same IR, status and problems.
func FuzzTranslate(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.in.yaml")
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		run := func() []byte {
			var res resource.Resources
			pp := file.ParseBytes("fuzz.yaml", data, &res)
			out, err := yaml.Marshal(goldenOf(pp, Translate(&res, Options{DefaultAddresses: []string{"127.0.0.1"}})))
			if err != nil {
				t.Fatalf("marshalling: %v", err)
			}
			return out
		}
		a, b := run(), run()
		if d := cmp.Diff(string(a), string(b)); d != "" {
			t.Fatalf("translation is not deterministic (-first +second):\n%s", d)
		}
	})
}
