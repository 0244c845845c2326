package file

import (
	"testing"

	"github.com/sekisho/sekisho/gateway/resource"
)

func TestParseBytesSmoke(t *testing.T) {
	var res resource.Resources
	probs := ParseBytes("a.yaml", []byte(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: svc, port: 80, weight: 90}]
---
# nothing
---
apiVersion: v1
kind: Widget
metadata: {name: w}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: x}
spec:
  gatewayClassName: c
  listeners: [{name: http, port: 80, protocol: HTTP, bogus: 1}]
`), &res)
	if len(res.HTTPRoutes) != 1 || res.HTTPRoutes[0].Namespace != "default" {
		t.Fatalf("routes: %+v", res.HTTPRoutes)
	}
	if len(probs) != 2 {
		t.Fatalf("problems: %v", probs)
	}
	for _, p := range probs {
		t.Log(p)
	}
}
