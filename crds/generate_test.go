package crds_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files (what `make generate` runs)")

const (
	chartDir         = "deploy/chart/sekisho"
	installFile      = "deploy/install.yaml"
	installNamespace = "sekisho-system"
	gatewayAPIModule = "sigs.k8s.io/gateway-api"
)

// managedDirs hold generated files only: a file there that generation does not
// make is stale.
var managedDirs = []string{"crds/generated", "crds/gateway-api", "crds/gateway-api-experimental", chartDir + "/crds"}

// TestGenerated runs every generator into a temporary folder and fails when a
// checked-in file differs, is missing or is stale. With -update (make generate)
// it rewrites them instead.
func TestGenerated(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tools := findTools(t, root)
	want := generate(t, root, tools)

	if *update {
		writeGenerated(t, root, want)
		return
	}
	var problems []string
	for _, rel := range sortedKeys(want) {
		got, err := os.ReadFile(filepath.Join(root, rel))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s is missing", rel))
		case !bytes.Equal(got, want[rel]):
			problems = append(problems, fmt.Sprintf("%s is stale: %s", rel, firstDifference(got, want[rel])))
		}
	}
	for _, rel := range extraFiles(t, root, want) {
		problems = append(problems, fmt.Sprintf("%s is no longer generated", rel))
	}
	if len(problems) > 0 {
		t.Fatalf("generated files differ from what the generators make; run `make generate` and commit the result:\n  %s",
			strings.Join(problems, "\n  "))
	}
}

// tools are the generators' binaries in bin/, at the versions the Makefile pins.
type tools struct {
	controllerGen, helm string
}

func findTools(t *testing.T, root string) tools {
	t.Helper()
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatalf("reading the Makefile for the pinned tool versions: %v", err)
	}
	check := func(name, module, variable string) string {
		m := regexp.MustCompile(`(?m)^` + variable + `\s*:=\s*(\S+)`).FindSubmatch(makefile)
		if m == nil {
			t.Fatalf("the Makefile does not set %s", variable)
		}
		pinned := string(m[1])
		path := filepath.Join(root, "bin", name)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("bin/%s is missing: run `make generate-tools` (or `make tools`; make test builds it first)", name)
		}
		out, err := exec.Command("go", "version", "-m", path).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m bin/%s: %v\n%s", name, err, out)
		}
		got := regexp.MustCompile(`(?m)^\s*mod\s+` + regexp.QuoteMeta(module) + `\s+(\S+)`).FindSubmatch(out)
		if got == nil || string(got[1]) != pinned {
			t.Fatalf("bin/%s is not %s@%s, which the Makefile pins: run `make generate-tools`", name, module, pinned)
		}
		return path
	}
	return tools{
		controllerGen: check("controller-gen", "sigs.k8s.io/controller-tools", "CONTROLLER_GEN_VERSION"),
		helm:          check("helm", "helm.sh/helm/v3", "HELM_VERSION"),
	}
}

// generate runs every generator and returns each generated file's content by
// its path relative to root.
func generate(t *testing.T, root string, tl tools) map[string][]byte {
	t.Helper()
	tmp := t.TempDir()
	files := map[string][]byte{}

	// Deepcopy, one API package at a time (controller-gen writes each
	// package's file under the same name).
	pkgs := apiPackages(t, root)
	if len(pkgs) == 0 {
		t.Fatal("no API package under crds/ (none has +kubebuilder:object:generate=true)")
	}
	var paths []string
	for _, pkg := range pkgs {
		dir := filepath.Join(tmp, "object", pkg)
		run(t, root, nil, tl.controllerGen, "object", "paths=./"+pkg, "output:object:dir="+dir)
		files[pkg+"/zz_generated.deepcopy.go"] = readFile(t, filepath.Join(dir, "zz_generated.deepcopy.go"))
		paths = append(paths, "./"+pkg)
	}

	// CRD YAML of every API package.
	crdDir := filepath.Join(tmp, "crd")
	run(t, root, nil, tl.controllerGen, "crd", "paths={"+strings.Join(paths, ",")+"}", "output:crd:dir="+crdDir)
	ours := readYAMLDir(t, crdDir, "")
	for name, b := range ours {
		files["crds/generated/"+name] = b
	}

	// The Gateway API standard-channel CRDs of the module version go.mod pins,
	var mod struct{ Dir, Version string }
	if err := json.Unmarshal(run(t, root, nil, "go", "mod", "download", "-json", gatewayAPIModule), &mod); err != nil || mod.Dir == "" {
		t.Fatalf("locating %s in the module cache: %v", gatewayAPIModule, err)
	}
	upstream := readYAMLDir(t, filepath.Join(mod.Dir, "config", "crd", "standard"), "kind: CustomResourceDefinition")
	if len(upstream) == 0 {
		t.Fatalf("no CRD in %s@%s config/crd/standard", gatewayAPIModule, mod.Version)
	}
	for name, b := range upstream {
		files["crds/gateway-api/"+name] = b
	}
	// and its experimental channel (file mode validates against it).
	experimental := readYAMLDir(t, filepath.Join(mod.Dir, "config", "crd", "experimental"), "kind: CustomResourceDefinition")
	if len(experimental) == 0 {
		t.Fatalf("no CRD in %s@%s config/crd/experimental", gatewayAPIModule, mod.Version)
	}
	for name, b := range experimental {
		files["crds/gateway-api-experimental/"+name] = b
	}

	// The chart's crds/: ours and the Gateway API's, then the chart rendered
	// from a copy that holds them.
	chart := filepath.Join(tmp, "chart", "sekisho")
	copyDir(t, filepath.Join(root, chartDir), chart, "crds")
	for _, set := range []map[string][]byte{ours, upstream} {
		for name, b := range set {
			b = bytes.TrimPrefix(b, []byte("---\n"))
			files[chartDir+"/crds/"+name] = b
			writeFile(t, filepath.Join(chart, "crds", name), b)
		}
	}
	rendered := run(t, root, helmEnv(t), tl.helm, "template", "sekisho", chart,
		"--namespace", installNamespace, "--include-crds")
	files[installFile] = append([]byte(installHeader), rendered...)
	return files
}

const installHeader = `# sekisho: everything a cluster needs in one file. Apply it server-side (the
# Gateway API CRDs are too large for client-side apply):
#   kubectl apply --server-side -f deploy/install.yaml
# Generated by ` + "`make generate`" + `, do not edit: the Namespace below, then
#   helm template sekisho deploy/chart/sekisho --namespace ` + installNamespace + ` --include-crds
---
apiVersion: v1
kind: Namespace
metadata:
  name: ` + installNamespace + `
  labels:
    app.kubernetes.io/name: sekisho
    app.kubernetes.io/part-of: sekisho
    pod-security.kubernetes.io/enforce: restricted
`

var objectMarker = regexp.MustCompile(`(?m)^//\s*\+kubebuilder:object:generate=true\s*$`)

// apiPackages lists, relative to root, the folders under crds/ whose package
// asks for deepcopy generation.
func apiPackages(t *testing.T, root string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "crds"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if objectMarker.Match(b) {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("finding the API packages under crds/: %v", err)
	}
	return sortedKeys(seen)
}

func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// helmEnv keeps helm's cache, config and data out of the user's home.
func helmEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
}

// readYAMLDir reads dir's *.yaml files, those containing mustContain only.
func readYAMLDir(t *testing.T, dir, mustContain string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".yaml" {
			continue
		}
		b := readFile(t, filepath.Join(dir, e.Name()))
		if bytes.Contains(b, []byte(mustContain)) {
			files[e.Name()] = b
		}
	}
	return files
}

// copyDir copies the regular files of src into dst, leaving out the top-level
// entry named skip.
func copyDir(t *testing.T, src, dst, skip string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

func writeGenerated(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for _, rel := range extraFiles(t, root, files) {
		if err := os.Remove(filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
		t.Logf("removed %s", rel)
	}
	for _, rel := range sortedKeys(files) {
		path := filepath.Join(root, rel)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, files[rel]) {
			continue
		}
		writeFile(t, path, files[rel])
		t.Logf("wrote %s", rel)
	}
}

// extraFiles lists the files in managedDirs that generation does not make.
func extraFiles(t *testing.T, root string, files map[string][]byte) []string {
	t.Helper()
	var extra []string
	for _, dir := range managedDirs {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			rel := dir + "/" + e.Name()
			if _, ok := files[rel]; !ok && !e.IsDir() {
				extra = append(extra, rel)
			}
		}
	}
	return extra
}

// firstDifference says where got first differs from want.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("line %d is %q, the generators make %q", i+1, gl, wl)
		}
	}
	return "same lines, different bytes"
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
