package kube

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gatewayAPIDir returns the directory of the sigs.k8s.io/gateway-api module
// version the main module requires.
func gatewayAPIDir(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locating sigs.k8s.io/gateway-api in the module cache: %v", err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != "v1.6.3" || dir == "" {
		t.Fatalf("sigs.k8s.io/gateway-api: want v1.6.3 in the module cache, got %q", out)
	}
	return dir
}

func TestClusterServesGatewayAPI(t *testing.T) {
	crds := filepath.Join(gatewayAPIDir(t), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(crds, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Gateway API CRDs in %s: %v", crds, err)
	}

	c := Start(t)

	// The API server is the version the tools module pins, and the admin
	// token may do anything.
	hc, err := c.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(c.Server + "/version")
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var version struct{ GitVersion string }
	if err := json.Unmarshal(body, &version); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /version: %s: %s (%v)", resp.Status, body, err)
	}
	if version.GitVersion != "v1.36.3" {
		t.Errorf("kube-apiserver version %q, want v1.36.3 (bin/kube-apiserver built without make tools?)", version.GitVersion)
	}
	if out, err := c.Kubectl("auth", "can-i", "*", "*", "--all-namespaces"); err != nil || strings.TrimSpace(out) != "yes" {
		t.Fatalf("admin token is not cluster-admin: %q %v", out, err)
	}

	// The standard-channel CRDs install and become Established.
	if out, err := c.Kubectl("apply", "--server-side", "-f", crds); err != nil {
		t.Fatalf("applying the Gateway API CRDs: %v\n%s", err, out)
	}
	names, err := c.Kubectl("get", "crd", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"} {
		if !strings.Contains(names, kind+".gateway.networking.k8s.io") {
			t.Errorf("CRD %s.gateway.networking.k8s.io not installed; have:\n%s", kind, names)
		}
	}
	if out, err := c.Kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		t.Fatalf("waiting for the CRDs: %v\n%s", err, out)
	}

	// A GatewayClass and a Gateway can be written and read back.
	manifest := `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sekisho
spec:
  controllerName: sekisho.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: default
spec:
  gatewayClassName: sekisho
  listeners:
  - name: http
    protocol: HTTP
    port: 8080
    allowedRoutes:
      namespaces:
        from: Same
`
	if out, err := c.KubectlInput(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("creating a Gateway: %v\n%s", err, out)
	}
	out, err := c.Kubectl("get", "gateway", "edge", "-n", "default", "-o", "json")
	if err != nil {
		t.Fatalf("reading the Gateway back: %v", err)
	}
	var gw struct {
		Spec struct {
			GatewayClassName string
			Listeners        []struct {
				Name     string
				Protocol string
				Port     int
			}
		}
		Status struct {
			Conditions []struct{ Type, Status, Reason string }
		}
	}
	if err := json.Unmarshal([]byte(out), &gw); err != nil {
		t.Fatalf("decoding the Gateway: %v\n%s", err, out)
	}
	if gw.Spec.GatewayClassName != "sekisho" || len(gw.Spec.Listeners) != 1 ||
		gw.Spec.Listeners[0].Name != "http" || gw.Spec.Listeners[0].Protocol != "HTTP" || gw.Spec.Listeners[0].Port != 8080 {
		t.Errorf("Gateway read back differs from what was written: %+v", gw.Spec)
	}
	// The CRD's defaults apply: before any controller, Accepted is Unknown
	// with reason Pending.
	var accepted bool
	for _, cond := range gw.Status.Conditions {
		if cond.Type == "Accepted" && cond.Status == "Unknown" && cond.Reason == "Pending" {
			accepted = true
		}
	}
	if !accepted {
		t.Errorf("Gateway status lacks the CRD's default Accepted=Unknown/Pending condition: %+v", gw.Status)
	}

	// Files the later tests rely on exist.
	for _, f := range []string{c.Kubeconfig, filepath.Join(c.Dir, "kube-apiserver.log"), filepath.Join(c.Dir, "etcd.log")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "test", "scripts", "kube-up.sh")); err != nil {
		t.Fatalf("RepoRoot %s: %v", root, err)
	}
}
