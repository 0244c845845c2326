package file

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/resource"
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

// TestLoadKeepsEveryKind: every kind ParseBytes decodes survives the merge
// of the files that Load and the watcher do (each slice of Resources has as
// many objects after it as after parsing), so a new kind cannot be dropped
// silently.
func TestLoadKeepsEveryKind(t *testing.T) {
	doc := func(apiVersion, kind, extra string) string {
		return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata: {name: x, namespace: default}\n" + extra + "---\n"
	}
	var all string
	for key := range kinds {
		i := strings.LastIndexByte(key, '/')
		extra := ""
		if key == "v1/Namespace" || strings.HasSuffix(key, "/GatewayClass") {
			all += "apiVersion: " + key[:i] + "\nkind: " + key[i+1:] + "\nmetadata: {name: x" + strings.ReplaceAll(key[:i], "/", "-") + "}\n---\n"
			continue
		}
		all += doc(key[:i], key[i+1:], extra)
	}
	// v1beta1 objects of kinds that also have v1 would be duplicates: name them apart.
	all = strings.ReplaceAll(all, "v1beta1\nkind: Gateway\nmetadata: {name: x,", "v1beta1\nkind: Gateway\nmetadata: {name: xb,")
	all = strings.ReplaceAll(all, "v1beta1\nkind: HTTPRoute\nmetadata: {name: x,", "v1beta1\nkind: HTTPRoute\nmetadata: {name: xb,")
	all = strings.ReplaceAll(all, "v1beta1\nkind: ReferenceGrant\nmetadata: {name: x,", "v1beta1\nkind: ReferenceGrant\nmetadata: {name: xb,")

	var parsed resource.Resources
	ParseBytes("all.yaml", []byte(all), &parsed)
	loaded, _ := merge([]*fileResult{{objects: entries(&parsed)}})
	pv, lv := reflect.ValueOf(parsed), reflect.ValueOf(*loaded)
	checked := 0
	for i := range pv.NumField() {
		if pv.Field(i).Kind() != reflect.Slice {
			continue
		}
		name := pv.Type().Field(i).Name
		if pv.Field(i).Len() == 0 {
			t.Errorf("%s: the test document has none", name)
		}
		if got, want := lv.Field(i).Len(), pv.Field(i).Len(); got != want {
			t.Errorf("%s: %d after the merge, %d after ParseBytes", name, got, want)
		}
		checked++
	}
	if checked < 12 {
		t.Fatalf("checked %d kinds", checked)
	}
}
