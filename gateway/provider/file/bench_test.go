package file

import (
	"path"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sekisho/sekisho/crds"
	"github.com/sekisho/sekisho/gateway/resource"
)

// The objects of the validation benchmarks: a typical HTTPRoute (two
// parents, three rules with matches, a filter, weighted backends), a
// one-rule HTTPRoute (one of a folder of many small routes), a
// Gateway with an HTTP and an HTTPS listener, and a RateLimitPolicy with a
// global and a local rule.
const (
	benchHTTPRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default, labels: {app: shop}}
spec:
  parentRefs: [{name: edge, sectionName: http}, {name: edge, sectionName: https}]
  hostnames: [shop.example.com, "*.shop.example.com"]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-tenant, value: acme}]
      method: GET
    - path: {type: RegularExpression, value: "/api/v[0-9]+/items"}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: api}], remove: [x-debug]}
    backendRefs: [{name: api-v1, port: 80, weight: 90}, {name: api-v2, port: 80, weight: 10}]
    timeouts: {request: 10s, backendRequest: 5s}
  - matches: [{path: {type: Exact, value: /login}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /auth/login}}}]
    backendRefs: [{name: auth, port: 8080}]
  - backendRefs: [{name: web, port: 80}]
`
	benchHTTPRoute1Rule = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r00000, namespace: default}
spec:
  parentRefs: [{name: quickstart, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /r/00000}}]
    backendRefs: [{name: demo-v1, port: 80}]
`
	benchGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes: {namespaces: {from: All}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "*.example.com"
    tls: {mode: Terminate, certificateRefs: [{name: edge-cert}]}
`
	benchRateLimitPolicy = `apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: shop-limits, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]
  failureMode: Open
  global:
    rules:
    - name: per-user
      match:
        headers: [{name: x-user, type: Distinct}]
        path: {type: PathPrefix, value: /api}
      limit: {requests: 100, unit: Minute}
      algorithm: SlidingWindow
  local:
    rules: [{name: flood, limit: {requests: 1000, unit: Second}}]
`
)

// BenchmarkValidate measures what file mode spends on one object: decoding
// (ParseBytes) and validating (Validate) one document.
func BenchmarkValidate(b *testing.B) {
	for _, bc := range []struct{ name, doc string }{
		{"HTTPRoute", benchHTTPRoute},
		{"HTTPRoute1Rule", benchHTTPRoute1Rule},
		{"Gateway", benchGateway},
		{"RateLimitPolicy", benchRateLimitPolicy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.doc)
			check := func() {
				res := &resource.Resources{}
				problems := append(ParseBytes("bench.yaml", data, res), Validate(res)...)
				if len(problems) > 0 {
					b.Fatalf("the benchmark's %s is not valid: %v", bc.name, problems)
				}
			}
			check() // validators are built on first use: not part of the figure
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				check()
			}
		})
	}
}

// BenchmarkCRDValidators measures the one-time cost of file mode's CRD
// validation at start: reading the embedded CRDs and building the validators
// (structural schema, schema validator, compiled CEL rules) of every kind
// and version file mode reads.
func BenchmarkCRDValidators(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		set := newSchemaSet(crds.ExperimentalFS)
		for gv := range kinds {
			gvk := schema.FromAPIVersionAndKind(path.Dir(gv), path.Base(gv))
			if coreKinds[gvk] {
				continue
			}
			if v, err := set.lookup(gvk); err != nil || v == nil {
				b.Fatalf("no validators for %s: %v", gvk, err)
			}
		}
	}
}
