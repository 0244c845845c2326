package crds_test

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/crds"
)

type crd struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Scope string `json:"scope"`
		Names struct {
			Kind       string   `json:"kind"`
			Categories []string `json:"categories"`
		} `json:"names"`
		Versions []struct {
			Name    string `json:"name"`
			Served  bool   `json:"served"`
			Storage bool   `json:"storage"`
		} `json:"versions"`
	} `json:"spec"`
}

func readCRDs(t *testing.T, dir string) map[string]crd {
	t.Helper()
	names, err := fs.Glob(crds.FS, dir+"/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no CRD in crds/%s: %v", dir, err)
	}
	out := map[string]crd{}
	for _, name := range names {
		b, err := fs.ReadFile(crds.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		var c crd
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Kind != "CustomResourceDefinition" || len(c.Spec.Versions) == 0 {
			t.Errorf("%s is not a CustomResourceDefinition with versions", name)
		}
		out[c.Metadata.Name] = c
	}
	return out
}

func TestOurCRDs(t *testing.T) {
	got := readCRDs(t, "generated")
	c, ok := got["gatewayclassconfigs.config.sekisho.dev"]
	if !ok {
		t.Fatalf("no GatewayClassConfig CRD in crds/generated: %v", got)
	}
	if c.Spec.Scope != "Namespaced" || c.Spec.Names.Kind != "GatewayClassConfig" {
		t.Errorf("GatewayClassConfig CRD: scope %q, kind %q", c.Spec.Scope, c.Spec.Names.Kind)
	}
	for name, c := range got {
		if !strings.HasSuffix(c.Spec.Group, ".sekisho.dev") {
			t.Errorf("%s: group %q is not ours", name, c.Spec.Group)
		}
		if len(c.Spec.Names.Categories) != 1 || c.Spec.Names.Categories[0] != "sekisho" {
			t.Errorf("%s: categories %v, want [sekisho] (kubectl get sekisho lists every kind of ours)", name, c.Spec.Names.Categories)
		}
	}
}

func TestGatewayAPICRDs(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*sigs\.k8s\.io/gateway-api\s+(v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require sigs.k8s.io/gateway-api")
	}
	pinned := string(m[1])
	got := readCRDs(t, "gateway-api")
	for _, name := range []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants", "backendtlspolicies"} {
		c, ok := got[name+".gateway.networking.k8s.io"]
		if !ok {
			t.Errorf("no %s CRD in crds/gateway-api", name)
			continue
		}
		if ch := c.Metadata.Annotations["gateway.networking.k8s.io/channel"]; ch != "standard" {
			t.Errorf("%s: channel %q, want standard", name, ch)
		}
		if v := c.Metadata.Annotations["gateway.networking.k8s.io/bundle-version"]; v != pinned {
			t.Errorf("%s: bundle-version %q, want %s (go.mod's sigs.k8s.io/gateway-api): run `make generate`", name, v, pinned)
		}
	}
}
