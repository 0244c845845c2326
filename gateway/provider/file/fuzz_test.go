package file

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sekisho/sekisho/gateway/resource"
)

// FuzzParseBytes decodes and validates arbitrary input. Its seeds are the
// YAML files of this package's testdata, and when present the translator's
// golden inputs and the project's examples. It asserts no panic, and that
// every problem says which file it is about.
func FuzzParseBytes(f *testing.F) {
	for _, root := range []string{"testdata", "../../translate/testdata", "/work/main/examples"} {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isYAML(path) {
				return nil
			}
			if data, err := os.ReadFile(path); err == nil {
				f.Add(data)
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &resource.Resources{}
		problems := ParseBytes("f.yaml", data, res)
		problems = append(problems, Validate(res)...)
		for _, p := range problems {
			if p.Source.File != "f.yaml" {
				t.Errorf("problem without its file: %#v", p)
			}
		}
		for _, e := range entries(res) {
			if e.src.File != "f.yaml" {
				t.Errorf("object %s without its source", e.key)
			}
		}
	})
}
