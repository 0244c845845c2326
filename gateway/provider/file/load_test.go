package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestLoad reads testdata/tree (nested folders, .yml, multi-document files,
// comments-only documents, CRLF, a byte order mark, hidden and backup files
// that must be skipped, a duplicate across files, a partly bad file) and
// compares the objects and problems with testdata/tree.out.yaml.
func TestLoad(t *testing.T) {
	res, problems, err := Load("testdata/tree")
	if err != nil {
		t.Fatal(err)
	}
	g := toGolden(&fileResult{objects: entries(res), problems: problems})
	got, err := sigsyaml.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	const out = "testdata/tree.out.yaml"
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
}

func TestLoadMissingFolder(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope"))
	if err == nil {
		t.Fatal("Load of a missing folder: no error")
	}
}
