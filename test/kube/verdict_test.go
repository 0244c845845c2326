//go:build linux

package kube

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/crds"
	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
)

// TestFileModeVerdicts feeds every fixture object of the repository (the
// golden inputs of the translator and of the file provider, the examples,
// the end-to-end fixtures), the Gateway API module's examples and a table of invalid objects both to file mode
// (file.ParseBytes and file.Validate) and to a real kube-apiserver with the
// CRDs file mode validates against (create, dryRun=All,
// fieldValidation=Strict), and requires the same verdict for each object:
// accepted or refused.
//
// File mode may refuse more than the API server only with sekisho's own rules
// (sekishoOnly), and the API server may refuse core objects that file mode
// serves for reasons of a cluster that file mode has not (apiServerOnly).
func TestFileModeVerdicts(t *testing.T) {
	c := Start(t)
	installCRDSet(t, c, crds.ExperimentalFS) // the CRDs file mode validates against
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs := fixtureObjects(t, root, fixtureDirs)
	// and the Gateway API project's own examples, both channels
	objs = append(objs, fixtureObjects(t, gatewayAPIDir(t), []string{"examples/standard", "examples/experimental"})...)
	for _, tc := range invalidObjects {
		objs = append(objs, verdictObject{name: "invalid: " + tc.name, doc: []byte(tc.doc), wantRefused: true})
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000 // one request after another; client-go's default of 5 a second would take minutes
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var compared, agreed, sekishoStricter, clusterStricter int
	namespaces := map[string]bool{}
	for _, o := range objs {
		fv := fileVerdict(o)
		if fv.skip != "" {
			continue
		}
		if fv.namespace != "" && !namespaces[fv.namespace] {
			ensureNamespace(ctx, t, dyn, fv.namespace)
			namespaces[fv.namespace] = true
		}
		serverErr := serverCreate(ctx, dyn, mapper, o.doc, fv.namespace)
		compared++
		serverRefused := serverErr != nil
		switch {
		case o.wantRefused && !fv.refused():
			t.Errorf("%s: file mode accepts an object the table says is invalid", o.name)
		case o.wantRefused && !serverRefused:
			t.Errorf("%s: the API server accepts an object the table says is invalid", o.name)
		}
		switch {
		case fv.refused() == serverRefused:
			agreed++
		case fv.refused() && len(fv.errors) == len(fv.sekishoOnly):
			sekishoStricter++
			t.Logf("%s: refused by sekisho's own rules only, accepted by the API server: %s", o.name, strings.Join(fv.errors, "; "))
		case serverRefused && fv.kind != "" && apiServerOnly(fv.kind, serverErr):
			clusterStricter++
			t.Logf("%s: accepted by file mode, refused by the API server for a reason of its cluster: %v", o.name, serverErr)
		case serverRefused:
			t.Errorf("%s: file mode accepts it, the API server refuses it: %v", o.name, serverErr)
		default:
			t.Errorf("%s: file mode refuses it (%s), the API server accepts it", o.name, strings.Join(fv.errors, "; "))
		}
	}
	t.Logf("%d objects compared: %d same verdict, %d refused by sekisho's own rules only, %d refused by the API server for a reason of its cluster",
		compared, agreed, sekishoStricter, clusterStricter)
	if compared < 100 {
		t.Errorf("only %d objects compared: the fixtures were not found", compared)
	}
}

// verdictObject is one YAML document to judge.
type verdictObject struct {
	name        string // file:document, or the table's name
	doc         []byte
	wantRefused bool
}

// fileJudgement is file mode's verdict on one document.
type fileJudgement struct {
	skip        string // why the document is not an object to compare
	kind        string
	namespace   string   // the namespace file mode gives it; "" for cluster-scoped
	errors      []string // every error-level problem
	sekishoOnly []string // those of sekisho's own rules
}

func (f fileJudgement) refused() bool { return len(f.errors) > 0 }

// sekishoRules are the messages of the rules file mode adds to the CRDs'
// (gateway/provider/file/validate.go).
var sekishoRules = []string{"invalid regular expression", "invalid hostname", "invalid CIDR", "required when from is Selector"}

func fileVerdict(o verdictObject) fileJudgement {
	res := &resource.Resources{}
	problems := file.ParseBytes("doc.yaml", o.doc, res)
	problems = append(problems, file.Validate(res)...)
	var j fileJudgement
	for _, p := range problems {
		switch {
		case p.Object.Kind == "":
			return fileJudgement{skip: "not an object: " + p.Msg}
		case strings.HasPrefix(p.Msg, "unknown kind"):
			return fileJudgement{skip: p.Msg}
		case p.Field == "metadata.name" && strings.HasPrefix(p.Msg, "missing"):
			return fileJudgement{skip: "no name"}
		}
		j.kind, j.namespace = p.Object.Kind, p.Object.Namespace
		if p.Warning {
			continue
		}
		j.errors = append(j.errors, p.String())
		for _, r := range sekishoRules {
			if strings.Contains(p.Msg, r) {
				j.sekishoOnly = append(j.sekishoOnly, p.String())
				break
			}
		}
	}
	if j.kind == "" {
		for key := range res.Sources {
			j.kind, j.namespace = key.Kind, key.Namespace
		}
	}
	if j.kind == "" {
		return fileJudgement{skip: "nothing decoded"}
	}
	return j
}

// apiServerOnly says whether the API server refuses a core object that file
// mode serves for a reason of a cluster: loopback endpoint addresses (file
// mode's backends are local processes) and Service cluster IPs outside the
// test cluster's service range.
func apiServerOnly(kind string, err error) bool {
	msg := err.Error()
	switch kind {
	case "EndpointSlice":
		return strings.Contains(msg, "loopback")
	case "Service":
		return strings.Contains(msg, "spec.clusterIPs") || strings.Contains(msg, "spec.clusterIP")
	}
	return false
}

// serverCreate creates the document's object with dryRun=All and
// fieldValidation=Strict, in namespace if namespaced. The object's YAML is
// converted to JSON as kubectl converts it. An AlreadyExists error (a
// Namespace the test created) means the object passed validation.
func serverCreate(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, doc []byte, namespace string) error {
	js, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("converting to JSON: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = dyn.Resource(m.Resource).Namespace(namespace)
	}
	_, err = ri.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func ensureNamespace(ctx context.Context, t *testing.T, dyn dynamic.Interface, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	_, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// fixtureDirs hold the repository's YAML fixtures of Gateway API, policy and
// core objects.
var fixtureDirs = []string{
	"gateway/translate/testdata",
	"gateway/provider/file/testdata",
	"examples",
	"test/e2e/testdata",
}

// fixtureObjects reads every document of every YAML file under the dirs of
// root (for golden tests, the *.in.yaml inputs only).
func fixtureObjects(t *testing.T, root string, dirs []string) []verdictObject {
	t.Helper()
	var out []verdictObject
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			name := d.Name()
			if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" || strings.HasSuffix(name, ".out.yaml") {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			for i, doc := range splitYAML(data) {
				out = append(out, verdictObject{name: fmt.Sprintf("%s:%d", rel, i), doc: doc})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading the fixtures under %s: %v", dir, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// splitYAML splits a file at its "---" lines, as kubectl does.
func splitYAML(data []byte) [][]byte {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	var docs [][]byte
	for doc := range strings.SplitSeq(string(data), "\n---") {
		if i := strings.IndexByte(doc, '\n'); strings.HasPrefix(doc, "---") || (i >= 0 && strings.TrimSpace(doc[:i]) == "") {
			_, doc, _ = strings.Cut(doc, "\n")
		}
		if strings.TrimSpace(doc) != "" {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

// invalidObjects are objects both file mode and the API server must refuse:
// at least one per kind, for OpenAPI rules (required, enum, pattern, range,
// maxItems, format), CEL rules, unknown fields and defaults.
var invalidObjects = []struct{ name, doc string }{
	{"GatewayClass controllerName pattern", gvHead("GatewayClass", "c") + "spec: {controllerName: sekisho}\n"},
	{"GatewayClass unknown field", gvHead("GatewayClass", "c") + "spec: {controllerName: a.b/c, controler: x}\n"},
	{"GatewayClass description maxLength", gvHead("GatewayClass", "c") + "spec: {controllerName: a.b/c, description: " + strings.Repeat("d", 65) + "}\n"},
	{"Gateway without listeners (required, minItems)", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: []}\n"},
	{"Gateway listener port minimum", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 0, protocol: HTTP}]}\n"},
	{"Gateway listener name pattern", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: Http, port: 80, protocol: HTTP}]}\n"},
	{"Gateway listener names unique (list-map key)", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP}, {name: a, port: 81, protocol: HTTP}]}\n"},
	{"Gateway tls on HTTP (CEL)", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}]}\n"},
	{"Gateway TLS mode defaults to Terminate, which needs certificates (default + CEL)", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 443, protocol: HTTPS, tls: {}}]}\n"},
	{"Gateway tls mode enum", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 443, protocol: TLS, tls: {mode: Reencrypt}}]}\n"},
	{"Gateway address not an IP (format)", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP}], addresses: [{value: 10.0.0.300}]}\n"},
	{"Gateway allowedRoutes kinds maxItems", gvHead("Gateway", "gw") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP, allowedRoutes: {kinds: [" + strings.Repeat("{kind: HTTPRoute},", 9) + "]}}]}\n"},
	{"Gateway metadata unknown field", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, labelz: {a: b}}\nspec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP}]}\n"},
	{"Gateway name not a DNS subdomain", gvHead("Gateway", "GW_1") + "spec: {gatewayClassName: sekisho, listeners: [{name: a, port: 80, protocol: HTTP}]}\n"},
	{"HTTPRoute path type enum", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{path: {type: Glob, value: /a}}]}]}\n"},
	{"HTTPRoute path not absolute (CEL)", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{path: {value: api}}]}]}\n"},
	{"HTTPRoute path with // (CEL, default path type)", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{path: {value: /a//b}}]}]}\n"},
	{"HTTPRoute weight maximum", gvHead("HTTPRoute", "r") + "spec: {rules: [{backendRefs: [{name: svc, port: 80, weight: 1000001}]}]}\n"},
	{"HTTPRoute backendRef without port (CEL)", gvHead("HTTPRoute", "r") + "spec: {rules: [{backendRefs: [{name: svc}]}]}\n"},
	{"HTTPRoute rules maxItems", gvHead("HTTPRoute", "r") + "spec: {rules: [" + strings.Repeat("{},", 17) + "]}\n"},
	{"HTTPRoute timeouts pattern", gvHead("HTTPRoute", "r") + "spec: {rules: [{timeouts: {request: 1.5s}}]}\n"},
	{"HTTPRoute backendRequest longer than request (CEL)", gvHead("HTTPRoute", "r") + "spec: {rules: [{timeouts: {request: 1s, backendRequest: 2s}}]}\n"},
	{"HTTPRoute ReplacePrefixMatch with an Exact match (CEL)", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]}\n"},
	{"HTTPRoute unknown field in a rule", gvHead("HTTPRoute", "r") + "spec: {rules: [{backendRefz: []}]}\n"},
	{"HTTPRoute header value of the wrong type", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{headers: [{name: x-version, value: 2}]}]}]}\n"},
	{"HTTPRoute duplicate header match (list-map key)", gvHead("HTTPRoute", "r") + "spec: {rules: [{matches: [{headers: [{name: x-a, value: b}, {name: x-a, value: c}]}]}]}\n"},
	{"HTTPRoute retry codes (experimental field) out of range", gvHead("HTTPRoute", "r") + "spec: {rules: [{retry: {codes: [600]}}]}\n"},
	{"GRPCRoute method without service or method (CEL)", gvHead("GRPCRoute", "g") + "spec: {rules: [{matches: [{method: {type: Exact}}]}]}\n"},
	{"GRPCRoute filter type enum", gvHead("GRPCRoute", "g") + "spec: {rules: [{filters: [{type: URLRewrite}]}]}\n"},
	{"ReferenceGrant without from (minItems)", gvHead("ReferenceGrant", "g") + "spec: {from: [], to: [{group: '', kind: Service}]}\n"},
	{"ReferenceGrant kind pattern", gvHead("ReferenceGrant", "g") + "spec: {from: [{group: gateway.networking.k8s.io, kind: 1Route, namespace: a}], to: [{group: '', kind: Service}]}\n"},
	{"GatewayClassConfig log level enum", "apiVersion: config.sekisho.dev/v1alpha1\nkind: GatewayClassConfig\nmetadata: {name: c}\nspec: {proxy: {logLevel: loud}}\n"},
	{"GatewayClassConfig image with spaces (CEL)", "apiVersion: config.sekisho.dev/v1alpha1\nkind: GatewayClassConfig\nmetadata: {name: c}\nspec: {proxy: {image: \"a b\"}}\n"},
	{"RateLimitPolicy with nothing to limit (CEL)", policyHead("RateLimitPolicy", "rl") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]}\n"},
	{"RateLimitPolicy unit enum", policyHead("RateLimitPolicy", "rl") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], local: {rules: [{name: a, limit: {requests: 1, unit: Week}}]}}\n"},
	{"RateLimitPolicy requests minimum", policyHead("RateLimitPolicy", "rl") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], local: {rules: [{name: a, limit: {requests: 0, unit: Second}}]}}\n"},
	{"RateLimitPolicy burst without TokenBucket (CEL)", policyHead("RateLimitPolicy", "rl") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], global: {rules: [{name: a, limit: {requests: 1, unit: Second}, burst: 5}]}}\n"},
	{"RateLimitPolicy target kind", policyHead("RateLimitPolicy", "rl") + "spec: {targetRefs: [{group: example.com, kind: Widget, name: w}], local: {rules: [{name: a, limit: {requests: 1, unit: Second}}]}}\n"},
	{"SecurityPolicy with nothing (CEL)", policyHead("SecurityPolicy", "sp") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]}\n"},
	{"SecurityPolicy JWKS both (CEL)", policyHead("SecurityPolicy", "sp") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], jwt: {providers: [{name: a, issuer: https://i, remoteJWKS: {uri: https://i/k}, localJWKS: {inline: '{}'}}]}}\n"},
	{"SecurityPolicy algorithm enum", policyHead("SecurityPolicy", "sp") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], jwt: {providers: [{name: a, issuer: https://i, algorithms: [HS256], remoteJWKS: {uri: https://i/k}}]}}\n"},
	{"SecurityPolicy unknown field", policyHead("SecurityPolicy", "sp") + "spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], jwt: {providers: [{name: a, issuer: https://i, remoteJWKS: {uri: https://i/k}}]}, oauth: {}}\n"},
}

func gvHead(kind, name string) string {
	return "apiVersion: gateway.networking.k8s.io/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\n"
}

func policyHead(kind, name string) string {
	return "apiVersion: policy.sekisho.dev/v1alpha1\nkind: " + kind + "\nmetadata: {name: " + name + "}\n"
}
