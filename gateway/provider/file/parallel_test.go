package file

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoadConcurrentIsSequential: Load, which decodes and validates the
// documents of a folder concurrently (loadFiles), gives exactly what reading
// the files one by one, each document in turn (loadFile), gives: the same
// objects, the same problems in the same order, the same first copy of a
// duplicate. The folder has several files of many documents, with
// duplicates within and across files, objects that the CRDs refuse (unknown
// fields, schema and CEL errors), that sekisho's rules refuse, and the
// parse test files (malformed YAML, bad separators, core kinds).
func TestLoadConcurrentIsSequential(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8)) // more workers than documents of a kind in a row
	dir := t.TempDir()
	inputs, err := filepath.Glob("testdata/parse/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no parse test files: %v", err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "parse", filepath.Base(in)), string(data))
	}
	route := func(name, spec string) string {
		return fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: %s}\nspec:\n  parentRefs: [{name: edge}]\n%s", name, spec)
	}
	const (
		good      = "  rules:\n  - matches: [{path: {type: PathPrefix, value: /a}}]\n    backendRefs: [{name: web, port: 80}]\n"
		unknown   = "  bogus: 1\n  rules: [{backendRefs: [{name: web, port: 80}]}]\n"
		celError  = "  rules:\n  - filters: [{type: RequestHeaderModifier}]\n    backendRefs: [{name: web, port: 80}]\n"
		badRegexp = "  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/(\"}}]\n    backendRefs: [{name: web, port: 80}]\n"
		badPort   = "  rules: [{backendRefs: [{name: web, port: 0}]}]\n"
	)
	for f := range 4 {
		var docs []string
		for i := range 60 {
			name := fmt.Sprintf("r%d-%d", f, i)
			switch {
			case i%13 == 5:
				name = fmt.Sprintf("shared-%d", i) // in every file: a duplicate across files
			case i%17 == 3 && i > 0:
				name = fmt.Sprintf("r%d-%d", f, i-1) // the document before: a duplicate within the file
			}
			spec := good
			switch i % 11 {
			case 2:
				spec = unknown
			case 4:
				spec = celError
			case 7:
				spec = badRegexp
			case 9:
				spec = badPort
			}
			docs = append(docs, route(name, spec))
			if i%20 == 10 {
				docs = append(docs, "apiVersion: v1\nkind: Service\nmetadata: {name: "+name+"}\nspec: {ports: [{port: 80}]}\n",
					"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: "+name+"}\nspec: {gatewayClassName: sekisho, listeners: [{name: http, port: 80, protocol: HTTP}]}\n",
					"# only a comment\n")
			}
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("routes-%d.yaml", f)), strings.Join(docs, "---\n"))
	}

	res, problems, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, wantProblems, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var (
		sequential []*fileResult
		names      []string
		datas      [][]byte
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sequential = append(sequential, loadFile(f, data))
		names, datas = append(names, f), append(datas, data)
	}
	wantRes, more := merge(sequential)
	wantProblems = append(wantProblems, more...)

	var dups, refused int
	for _, p := range wantProblems {
		if strings.HasPrefix(p.Msg, "duplicate: ") {
			dups++
		} else if !p.Warning {
			refused++
		}
	}
	if dups < 10 || refused < 50 || len(wantRes.HTTPRoutes) < 100 {
		t.Fatalf("the folder is not the test it should be: %d duplicates, %d other errors, %d routes", dups, refused, len(wantRes.HTTPRoutes))
	}
	if diff := cmp.Diff(wantProblems, problems); diff != "" {
		t.Errorf("Load's problems differ from the sequential ones (-sequential +Load):\n%s", diff)
	}
	if diff := cmp.Diff(wantRes, res); diff != "" {
		t.Errorf("Load's objects differ from the sequential ones (-sequential +Load):\n%s", diff)
	}
	// file by file, as the watcher keeps them
	if diff := cmp.Diff(sequential, loadFiles(names, datas), cmp.AllowUnexported(fileResult{}, entry{})); diff != "" {
		t.Errorf("loadFiles differs from loadFile (-loadFile +loadFiles):\n%s", diff)
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
