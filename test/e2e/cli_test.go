package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(sekishoBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running sekisho %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestValidateNamesFileDocumentObjectAndField(t *testing.T) {
	out, _, code := runCLI(t, "validate", "-f", "testdata/bad")
	if code != 1 {
		t.Errorf("exit code = %d, want 1 (errors found)", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"testdata/bad/broken.yaml:0: malformed YAML at line 5",
		"testdata/bad/routes.yaml:0: HTTPRoute default/typo: spec.rules[0].timeout: unknown field",
		"testdata/bad/routes.yaml:1: HTTPRoute default/regex: spec.rules[0].matches[0].path.value: invalid regular expression",
		"testdata/bad/routes.yaml:2: HTTPRoute default/dangling: spec.rules[0].backendRefs[0]: Service default/nowhere not found",
		"testdata/bad/widget.yaml:0: Widget default/w: kind: unknown kind \"Widget\"",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d:\n got  %s\n want %s…", i, lines[i], w)
		}
	}
}

func TestValidateQuickstartIsClean(t *testing.T) {
	out, errOut, code := runCLI(t, "validate", "-f", "../../examples/quickstart")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, problems:\n%s%s", code, out, errOut)
	}
}

func TestStatusTable(t *testing.T) {
	out, _, code := runCLI(t, "status", "-f", "testdata/bad")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The dangling backend is reported on the route's parent with the spec's reason,
	// while the route itself is still accepted.
	var sawResolved, sawAccepted bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "HTTPRoute" || f[1] != "default/dangling" {
			continue
		}
		switch f[3] {
		case "ResolvedRefs":
			sawResolved = f[4] == "False" && f[5] == "BackendNotFound"
		case "Accepted":
			sawAccepted = f[4] == "True"
		}
	}
	if !sawResolved || !sawAccepted {
		t.Errorf("want HTTPRoute default/dangling Accepted=True and ResolvedRefs=False/BackendNotFound; got:\n%s", out)
	}
	if !strings.HasPrefix(out, "KIND") {
		t.Errorf("table has no header:\n%s", out)
	}
}

func TestTranslateJSON(t *testing.T) {
	out, errOut, code := runCLI(t, "translate", "-f", "../../examples/quickstart", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Gateway   string           `json:"gateway"`
		Listeners []map[string]any `json:"listeners"`
		Routes    []map[string]any `json:"routes"`
		Clusters  []map[string]any `json:"clusters"`
		Endpoints []map[string]any `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not one JSON document: %v\n%s", err, out)
	}
	if doc.Gateway != "default/quickstart" || len(doc.Listeners) != 1 || len(doc.Routes) != 1 || len(doc.Clusters) != 2 || len(doc.Endpoints) != 2 {
		t.Errorf("unexpected shape: gateway %q, %d listeners, %d routes, %d clusters, %d endpoints",
			doc.Gateway, len(doc.Listeners), len(doc.Routes), len(doc.Clusters), len(doc.Endpoints))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"translate", "-o", "xml", "-f", "."}, {"validate"}, {"translate", "-f", ".", "extra"}} {
		_, errOut, code := runCLI(t, args...)
		if code != 2 || errOut == "" {
			t.Errorf("sekisho %v: exit %d, stderr %q; want exit 2 with a message", args, code, errOut)
		}
	}
}
