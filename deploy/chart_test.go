// Tests of the Helm chart in chart/sekisho: it lints, and what it renders with
// several value sets decodes strictly into the Kubernetes types and grants
// exactly the RBAC the controller needs, with no wildcard.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
)

const chart = "chart/sekisho"

func TestChartLints(t *testing.T) {
	helm := findHelm(t)
	for _, values := range [][]string{nil, {"--set", "leaderElection.enabled=false,gatewayClass.create=false"}} {
		args := append([]string{"lint", "--strict", chart}, values...)
		out, err := helmCmd(t, helm, args...).CombinedOutput()
		if err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// rendered is what the chart rendered, by kind and then name.
type rendered map[string]map[string][]byte

func render(t *testing.T, helm, release, namespace string, values string, extra ...string) rendered {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", namespace}
	if values != "" {
		file := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(file, []byte(values), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--values", file)
	}
	args = append(args, extra...)
	cmd := helmCmd(t, helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	objs := rendered{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output is not YAML: %v", err)
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("helm template output is not YAML: %v\n%s", err, doc)
		}
		if meta.Kind == "" {
			continue // only comments
		}
		if objs[meta.Kind] == nil {
			objs[meta.Kind] = map[string][]byte{}
		}
		if _, dup := objs[meta.Kind][meta.Metadata.Name]; dup {
			t.Errorf("%s %s rendered twice", meta.Kind, meta.Metadata.Name)
		}
		objs[meta.Kind][meta.Metadata.Name] = doc
	}
	return objs
}

// decode decodes the named object strictly: a field the type does not have
// is a mistake in the template.
func (r rendered) decode(t *testing.T, kind, name string, into any) {
	t.Helper()
	doc, ok := r[kind][name]
	if !ok {
		t.Fatalf("no %s %s rendered; got %v", kind, name, r.kinds())
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s %s: %v\n%s", kind, name, err, doc)
	}
}

func (r rendered) kinds() []string {
	var kinds []string
	for kind, objs := range r {
		for name := range objs {
			kinds = append(kinds, kind+"/"+name)
		}
	}
	sort.Strings(kinds)
	return kinds
}

// wantClusterRole is every (API group, resource) the controller's ClusterRole
// grants, with its verbs. A change to the chart's RBAC changes this table.
var wantClusterRole = map[string][]string{
	"gateway.networking.k8s.io/gatewayclasses":            {"get", "list", "watch"},
	"gateway.networking.k8s.io/gateways":                  {"get", "list", "watch"},
	"gateway.networking.k8s.io/httproutes":                {"get", "list", "watch"},
	"gateway.networking.k8s.io/grpcroutes":                {"get", "list", "watch"},
	"gateway.networking.k8s.io/referencegrants":           {"get", "list", "watch"},
	"gateway.networking.k8s.io/backendtlspolicies":        {"get", "list", "watch"},
	"gateway.networking.k8s.io/gatewayclasses/status":     {"update", "patch"},
	"gateway.networking.k8s.io/gateways/status":           {"update", "patch"},
	"gateway.networking.k8s.io/httproutes/status":         {"update", "patch"},
	"gateway.networking.k8s.io/grpcroutes/status":         {"update", "patch"},
	"gateway.networking.k8s.io/backendtlspolicies/status": {"update", "patch"},
	"config.sekisho.dev/gatewayclassconfigs":              {"get", "list", "watch"},
	"config.sekisho.dev/gatewayclassconfigs/status":       {"update", "patch"},
	"policy.sekisho.dev/ratelimitpolicies":                {"get", "list", "watch"},
	"policy.sekisho.dev/securitypolicies":                 {"get", "list", "watch"},
	"policy.sekisho.dev/ratelimitpolicies/status":         {"update", "patch"},
	"policy.sekisho.dev/securitypolicies/status":          {"update", "patch"},
	"/secrets":                        {"get", "list", "watch"},
	"/namespaces":                     {"get", "list", "watch"},
	"discovery.k8s.io/endpointslices": {"get", "list", "watch"},
	"/services":                       {"get", "list", "watch", "create", "update", "patch", "delete"},
	"/serviceaccounts":                {"get", "list", "watch", "create", "update", "patch", "delete"},
	"apps/deployments":                {"get", "list", "watch", "create", "update", "patch", "delete"},
	"/events":                         {"create", "patch"},
	"events.k8s.io/events":            {"create", "patch"},
}

var wantLeaderElectionRole = map[string][]string{
	"coordination.k8s.io/leases": {"get", "list", "watch", "create", "update", "patch"},
}

// grants flattens rules into (group/resource → verbs), failing on wildcards
// and on rules that name resources by name or non-resource URLs.
func grants(t *testing.T, what string, rules []rbacv1.PolicyRule) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, rule := range rules {
		for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames, rule.NonResourceURLs} {
			for _, s := range list {
				if strings.Contains(s, "*") {
					t.Errorf("%s grants a wildcard %q in %+v", what, s, rule)
				}
			}
		}
		if len(rule.NonResourceURLs) > 0 {
			t.Errorf("%s grants non-resource URLs %v", what, rule.NonResourceURLs)
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				got[key] = append(got[key], rule.Verbs...)
			}
		}
	}
	for key := range got {
		sort.Strings(got[key])
	}
	return got
}

func checkGrants(t *testing.T, what string, rules []rbacv1.PolicyRule, want map[string][]string) {
	t.Helper()
	got := grants(t, what, rules)
	for key, verbs := range want {
		w := slices.Clone(verbs)
		sort.Strings(w)
		if !slices.Equal(got[key], w) {
			t.Errorf("%s grants %v on %s, want %v", what, got[key], key, w)
		}
	}
	for key, verbs := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("%s grants %v on %s, which the controller does not need", what, verbs, key)
		}
	}
}

func TestChartDefaults(t *testing.T) {
	helm := findHelm(t)
	r := render(t, helm, "sekisho", "sekisho-system", "", "--include-crds")

	for _, crd := range []string{
		"gatewayclassconfigs.config.sekisho.dev",
		"gatewayclasses.gateway.networking.k8s.io",
		"gateways.gateway.networking.k8s.io",
		"httproutes.gateway.networking.k8s.io",
		"grpcroutes.gateway.networking.k8s.io",
		"referencegrants.gateway.networking.k8s.io",
		"backendtlspolicies.gateway.networking.k8s.io",
	} {
		if _, ok := r["CustomResourceDefinition"][crd]; !ok {
			t.Errorf("--include-crds rendered no CRD %s", crd)
		}
	}

	const name = "sekisho-controller"
	var dep appsv1.Deployment
	r.decode(t, "Deployment", name, &dep)
	if dep.Namespace != "sekisho-system" || dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment: namespace %q, replicas %v; want sekisho-system, 2", dep.Namespace, dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != name {
		t.Errorf("Deployment runs as ServiceAccount %q, want %q", pod.ServiceAccountName, name)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	wantArgs := []string{"controller", "--xds-address=0.0.0.0:18000", "--admin-address=0.0.0.0:18001",
		"--authz-listen=0.0.0.0:18081", "--ratelimit-listen=0.0.0.0:18082",
		"--authz-address=sekisho-controller.$(POD_NAMESPACE).svc:18081", "--ratelimit-address=sekisho-controller.$(POD_NAMESPACE).svc:18082",
		"--leader-elect", "--namespace=$(POD_NAMESPACE)"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("controller args %q, want %q", c.Args, wantArgs)
	}
	if c.Image != "sekisho/sekisho:0.1.0" {
		t.Errorf("controller image %q, want the chart's appVersion", c.Image)
	}
	if len(c.Env) == 0 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE is not the Pod's namespace: %+v", c.Env)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "admin" {
		t.Errorf("liveness probe %+v, want GET /healthz on admin", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "admin" {
		t.Errorf("readiness probe %+v, want GET /readyz on admin", p)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext %+v: want runAsNonRoot", psc)
	}

	var svc corev1.Service
	r.decode(t, "Service", name, &svc)
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["grpc-xds"] != 18000 || ports["http-metrics"] != 18001 || ports["grpc-authz"] != 18081 || ports["grpc-ratelimit"] != 18082 || len(ports) != 4 {
		t.Errorf("Service ports %v, want grpc-xds 18000, grpc-authz 18081, grpc-ratelimit 18082 and http-metrics 18001", ports)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if svc.Spec.Selector[k] != v || dep.Spec.Template.Labels[k] != v {
			t.Errorf("selector label %s=%s is not on both the Service selector and the Pod", k, v)
		}
	}

	var sa corev1.ServiceAccount
	r.decode(t, "ServiceAccount", name, &sa)

	var cr rbacv1.ClusterRole
	r.decode(t, "ClusterRole", name, &cr)
	checkGrants(t, "ClusterRole", cr.Rules, wantClusterRole)
	var crb rbacv1.ClusterRoleBinding
	r.decode(t, "ClusterRoleBinding", name, &crb)
	checkBinding(t, crb.RoleRef, crb.Subjects, "ClusterRole", name, "sekisho-system")

	var role rbacv1.Role
	r.decode(t, "Role", name+"-leader-election", &role)
	if role.Namespace != "sekisho-system" {
		t.Errorf("leader-election Role in namespace %q, want the release namespace", role.Namespace)
	}
	checkGrants(t, "leader-election Role", role.Rules, wantLeaderElectionRole)
	var rb rbacv1.RoleBinding
	r.decode(t, "RoleBinding", name+"-leader-election", &rb)
	checkBinding(t, rb.RoleRef, rb.Subjects, "Role", name+"-leader-election", "sekisho-system")

	var gc gatewayv1.GatewayClass
	r.decode(t, "GatewayClass", "sekisho", &gc)
	if gc.Spec.ControllerName != "sekisho.dev/gateway-controller" {
		t.Errorf("GatewayClass controllerName %q", gc.Spec.ControllerName)
	}
	if d := gc.Spec.Description; d == nil || len(*d) > 64 { // the CRD's maxLength
		t.Errorf("GatewayClass description %v: want one of at most 64 bytes", d)
	}
	ref := gc.Spec.ParametersRef
	if ref == nil || string(ref.Group) != configv1alpha1.GroupName || string(ref.Kind) != configv1alpha1.GatewayClassConfigKind ||
		ref.Name != "sekisho" || ref.Namespace == nil || string(*ref.Namespace) != "sekisho-system" {
		t.Errorf("GatewayClass parametersRef %+v, want the GatewayClassConfig sekisho-system/sekisho", ref)
	}
	var cfg configv1alpha1.GatewayClassConfig
	r.decode(t, "GatewayClassConfig", "sekisho", &cfg)
	if cfg.Namespace != "sekisho-system" || cfg.Spec.XDS == nil || cfg.Spec.XDS.Address == nil ||
		*cfg.Spec.XDS.Address != configv1alpha1.DefaultXDSAddress {
		t.Errorf("GatewayClassConfig %s/%s xds %+v, want address %s", cfg.Namespace, cfg.Name, cfg.Spec.XDS, configv1alpha1.DefaultXDSAddress)
	}
}

func checkBinding(t *testing.T, ref rbacv1.RoleRef, subjects []rbacv1.Subject, kind, name, namespace string) {
	t.Helper()
	if ref.Kind != kind || ref.Name != name {
		t.Errorf("binding refers to %s %s, want %s %s", ref.Kind, ref.Name, kind, name)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sekisho-controller", Namespace: namespace}}
	if !slices.Equal(subjects, want) {
		t.Errorf("binding subjects %+v, want %+v", subjects, want)
	}
}

func TestChartValues(t *testing.T) {
	helm := findHelm(t)

	t.Run("no leader election or GatewayClass", func(t *testing.T) {
		r := render(t, helm, "sekisho", "sekisho-system", "leaderElection: {enabled: false}\ngatewayClass: {create: false}\n")
		for _, kind := range []string{"Role", "RoleBinding", "GatewayClass", "GatewayClassConfig", "CustomResourceDefinition"} {
			if len(r[kind]) != 0 {
				t.Errorf("rendered %s %v", kind, r.kinds())
			}
		}
		var dep appsv1.Deployment
		r.decode(t, "Deployment", "sekisho-controller", &dep)
		if slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
			t.Error("--leader-elect passed with leader election off")
		}
		var cr rbacv1.ClusterRole
		r.decode(t, "ClusterRole", "sekisho-controller", &cr)
		checkGrants(t, "ClusterRole", cr.Rules, wantClusterRole)
	})

	t.Run("GatewayClass without config", func(t *testing.T) {
		r := render(t, helm, "sekisho", "sekisho-system", "gatewayClass: {name: edge, config: {create: false}}\n")
		if len(r["GatewayClassConfig"]) != 0 {
			t.Errorf("rendered a GatewayClassConfig: %v", r.kinds())
		}
		var gc gatewayv1.GatewayClass
		r.decode(t, "GatewayClass", "edge", &gc)
		if gc.Spec.ParametersRef != nil {
			t.Errorf("GatewayClass has parametersRef %+v", gc.Spec.ParametersRef)
		}
	})

	t.Run("another release namespace and ports", func(t *testing.T) {
		r := render(t, helm, "edge", "gw", `
image: {repository: registry.example/sekisho, tag: v9.9.9, pullPolicy: Always}
replicas: 3
xds: {port: 19000}
admin: {port: 19001}
authz: {port: 19081}
rateLimit: {port: 19082, redis: {address: "redis.cache.svc:6379"}}
extraArgs: ["--log-level=debug"]
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: gateway, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector: {matchLabels: {app.kubernetes.io/component: controller}}
podLabels: {team: edge}
gatewayClass:
  name: edge
  config:
    spec:
      proxy: {replicas: 2, service: {type: NodePort, externalTrafficPolicy: Local}, logLevel: debug}
`)
		var dep appsv1.Deployment
		r.decode(t, "Deployment", "edge-controller", &dep)
		c := dep.Spec.Template.Spec.Containers[0]
		wantArgs := []string{"controller", "--xds-address=0.0.0.0:19000", "--admin-address=0.0.0.0:19001",
			"--authz-listen=0.0.0.0:19081", "--ratelimit-listen=0.0.0.0:19082",
			"--authz-address=edge-controller.$(POD_NAMESPACE).svc:19081", "--ratelimit-address=edge-controller.$(POD_NAMESPACE).svc:19082",
			"--redis=redis.cache.svc:6379",
			"--leader-elect", "--namespace=$(POD_NAMESPACE)", "--log-level=debug"}
		if !slices.Equal(c.Args, wantArgs) {
			t.Errorf("controller args %q, want %q", c.Args, wantArgs)
		}
		if c.Image != "registry.example/sekisho:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways || *dep.Spec.Replicas != 3 {
			t.Errorf("image %q %q, replicas %d", c.Image, c.ImagePullPolicy, *dep.Spec.Replicas)
		}
		pod := dep.Spec.Template.Spec
		if pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 || pod.Affinity == nil || dep.Spec.Template.Labels["team"] != "edge" {
			t.Errorf("scheduling values not applied: %+v %+v %+v %v", pod.NodeSelector, pod.Tolerations, pod.Affinity, dep.Spec.Template.Labels)
		}
		var cfg configv1alpha1.GatewayClassConfig
		r.decode(t, "GatewayClassConfig", "edge", &cfg)
		if cfg.Namespace != "gw" || *cfg.Spec.XDS.Address != "edge-controller.gw.svc:19000" || *cfg.Spec.Proxy.Replicas != 2 ||
			*cfg.Spec.Proxy.Service.Type != corev1.ServiceTypeNodePort {
			t.Errorf("GatewayClassConfig %s/%s spec %+v", cfg.Namespace, cfg.Name, cfg.Spec)
		}
		var crb rbacv1.ClusterRoleBinding
		r.decode(t, "ClusterRoleBinding", "edge-controller", &crb)
		if len(crb.Subjects) != 1 || crb.Subjects[0].Namespace != "gw" || crb.Subjects[0].Name != "edge-controller" {
			t.Errorf("ClusterRoleBinding subjects %+v", crb.Subjects)
		}
	})

	t.Run("xds address given", func(t *testing.T) {
		r := render(t, helm, "sekisho", "sekisho-system", "gatewayClass: {config: {spec: {xds: {address: 'xds.example.internal:443'}}}}\n")
		var cfg configv1alpha1.GatewayClassConfig
		r.decode(t, "GatewayClassConfig", "sekisho", &cfg)
		if *cfg.Spec.XDS.Address != "xds.example.internal:443" {
			t.Errorf("xds address %q, want the one given", *cfg.Spec.XDS.Address)
		}
	})
}

// findHelm returns bin/helm, failing unless it is the version the Makefile pins.
func findHelm(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatalf("reading the Makefile for the pinned helm version: %v", err)
	}
	m := regexp.MustCompile(`(?m)^HELM_VERSION\s*:=\s*(\S+)`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile does not set HELM_VERSION")
	}
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatal("bin/helm is missing: run `make generate-tools` (or `make tools`; make test builds it first)")
	}
	out, err := exec.Command("go", "version", "-m", helm).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m bin/helm: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^\s*mod\s+helm\.sh/helm/v3\s+` + regexp.QuoteMeta(string(m[1])) + `\s`).Match(out) {
		t.Fatalf("bin/helm is not helm %s, which the Makefile pins: run `make generate-tools`", m[1])
	}
	return helm
}

// helmCmd runs helm with its cache, config and data out of the user's home.
func helmCmd(t *testing.T, helm string, args ...string) *exec.Cmd {
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	return cmd
}
