//go:build linux

package kube

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// converged checks what the controller must say of the base objects once it
// has seen them: the class, the Gateway (with its Service's ClusterIP) and
// the demo route.
func (e *env) converged(t *testing.T, attached int32) func() error {
	return func() error {
		c := ctx(t)
		gc := &gwv1.GatewayClass{}
		if err := e.cl.Get(c, types.NamespacedName{Name: "sekisho"}, gc); err != nil {
			return err
		}
		if err := condIs(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", gc.Generation); err != nil {
			return fmt.Errorf("GatewayClass: %w", err)
		}
		if !slices.ContainsFunc(gc.Status.SupportedFeatures, func(f gwv1.SupportedFeature) bool { return f.Name == "HTTPRoute" }) {
			return fmt.Errorf("GatewayClass supportedFeatures lack HTTPRoute: %v", gc.Status.SupportedFeatures)
		}
		gw := &gwv1.Gateway{}
		if err := e.cl.Get(c, types.NamespacedName{Namespace: ns, Name: gwName}, gw); err != nil {
			return err
		}
		for _, typ := range []string{"Accepted", "Programmed"} {
			if err := condIs(gw.Status.Conditions, typ, metav1.ConditionTrue, typ, gw.Generation); err != nil {
				return fmt.Errorf("Gateway: %w", err)
			}
		}
		svc := &corev1.Service{}
		if err := e.cl.Get(c, types.NamespacedName{Namespace: ns, Name: "sekisho-" + gwName}, svc); err != nil {
			return fmt.Errorf("proxy Service: %w", err)
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != svc.Spec.ClusterIP || svc.Spec.ClusterIP == "" {
			return fmt.Errorf("Gateway addresses %+v, want the proxy Service's ClusterIP %q", gw.Status.Addresses, svc.Spec.ClusterIP)
		}
		if len(gw.Status.Listeners) != 1 || gw.Status.Listeners[0].Name != "http" || gw.Status.Listeners[0].AttachedRoutes != attached {
			return fmt.Errorf("Gateway listeners %+v, want http with %d attached routes", gw.Status.Listeners, attached)
		}
		for _, typ := range []string{"Accepted", "Programmed", "ResolvedRefs"} {
			if err := condIs(gw.Status.Listeners[0].Conditions, typ, metav1.ConditionTrue, typ, gw.Generation); err != nil {
				return fmt.Errorf("listener http: %w", err)
			}
		}
		return e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs")()
	}
}

// checkInfra checks the Gateway's provisioned objects: owned by it, and
// configured by the class's GatewayClassConfig.
func (e *env) checkInfra(t *testing.T, xds string) {
	t.Helper()
	c := ctx(t)
	gw := &gwv1.Gateway{}
	if err := e.cl.Get(c, types.NamespacedName{Namespace: ns, Name: gwName}, gw); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: ns, Name: "sekisho-" + gwName}
	dep, svc, sa := &appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}
	for _, obj := range []client.Object{dep, svc, sa} {
		if err := e.cl.Get(c, key, obj); err != nil {
			t.Fatalf("provisioned %T %s: %v", obj, key, err)
		}
		owner := metav1.GetControllerOf(obj)
		if owner == nil || owner.Kind != "Gateway" || owner.APIVersion != gwv1.GroupVersion.String() || owner.Name != gwName || owner.UID != gw.UID {
			t.Errorf("%T %s: controller owner %+v, want Gateway %s (UID %s)", obj, key, owner, gwName, gw.UID)
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Annotations["example.com/owner"] != "sekisho-test" {
		t.Errorf("Service type %s annotations %v: the GatewayClassConfig's ClusterIP and annotation not applied", svc.Spec.Type, svc.Annotations)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("Service ports %+v, want 8080", svc.Spec.Ports)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %v, want the GatewayClassConfig's 2", dep.Spec.Replicas)
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--log-level debug", "--xds " + xds, "--gateway " + ns + "/" + gwName} {
		if !strings.Contains(args, want) {
			t.Errorf("proxy args %q lack %q", args, want)
		}
	}
	if dep.Spec.Template.Spec.ServiceAccountName != key.Name {
		t.Errorf("proxy ServiceAccount %q, want %s", dep.Spec.Template.Spec.ServiceAccountName, key.Name)
	}
}

// TestStatusXDSAndBadRoutes: status converges, a weight change reaches the
// proxies over ADS, bad routes get their reasons while the good one keeps
// being served, and other controllers' route parent entries survive.
func TestStatusXDSAndBadRoutes(t *testing.T) {
	e := setup(t, statusOnlyBackends)
	ctl := startController(t, e, "127.0.0.1", "controller")

	t.Run("StatusConverges", func(t *testing.T) {
		// Programmed waits for a proxy of the Gateway to take its listeners.
		gwProgrammed := func() error {
			gw := &gwv1.Gateway{}
			if err := e.cl.Get(ctx(t), types.NamespacedName{Namespace: ns, Name: gwName}, gw); err != nil {
				return err
			}
			return condIs(gw.Status.Conditions, "Programmed", metav1.ConditionFalse, "Pending", gw.Generation)
		}
		eventually(t, 30*time.Second, "Gateway Programmed=False/Pending before any proxy", gwProgrammed)
		proxyServes(t, ctl.xds, "test-proxy-0")
		eventually(t, 30*time.Second, "status of the class, Gateway and route", e.converged(t, 1))
		e.checkInfra(t, ctl.xds)
	})

	t.Run("ProxyCannotBind", func(t *testing.T) {
		// A proxy (this one answers as Envoy does) cannot bind the
		// listener's port: the Gateway and the listener are not Programmed,
		// and the message names the port and the cause.
		ads := dialADS(t, ctl.xds, ns+"/"+gwName, "test-proxy-bind")
		lds := ads.listeners(20 * time.Second)
		ads.nack(lds, "", "Error adding/updating listener(s) "+routeConfig+": cannot bind '0.0.0.0:8080': Address already in use\n")
		notProgrammed := func() error {
			gw := &gwv1.Gateway{}
			if err := e.cl.Get(ctx(t), types.NamespacedName{Namespace: ns, Name: gwName}, gw); err != nil {
				return err
			}
			if err := condIs(gw.Status.Conditions, "Programmed", metav1.ConditionFalse, "Invalid", gw.Generation); err != nil {
				return fmt.Errorf("Gateway: %w", err)
			}
			if len(gw.Status.Listeners) != 1 {
				return fmt.Errorf("listeners %+v", gw.Status.Listeners)
			}
			if err := condIs(gw.Status.Listeners[0].Conditions, "Programmed", metav1.ConditionFalse, "Invalid", gw.Generation); err != nil {
				return fmt.Errorf("listener http: %w", err)
			}
			msg := meta.FindStatusCondition(gw.Status.Listeners[0].Conditions, "Programmed").Message
			if !strings.Contains(msg, "8080") || !strings.Contains(msg, "Address already in use") || !strings.Contains(msg, "test-proxy-bind") {
				return fmt.Errorf("listener http Programmed message %q names neither the port, the cause nor the proxy", msg)
			}
			return nil
		}
		eventually(t, 20*time.Second, "Gateway and listener Programmed=False/Invalid", notProgrammed)
		// The port is bound later and the same version ACKed (sekisho's
		// proxy does so when its bind retry succeeds): Programmed again.
		ads.send(lds.TypeUrl, lds.VersionInfo, lds.Nonce)
		eventually(t, 20*time.Second, "status Programmed again", e.converged(t, 1))
	})

	t.Run("WeightChangeReachesADS", func(t *testing.T) {
		ads := dialADS(t, ctl.xds, ns+"/"+gwName, "test-proxy-1")
		first := ads.routeTable(10 * time.Second)
		if w := routes(t, first)["/"]; w["default/demo-v1:80"] != 90 || w["default/demo-v2:80"] != 10 {
			t.Fatalf("route table %s, want / split 90/10", weightsOf(t, first))
		}
		ads.ack(first)
		e.kubectl(t, "patch", "httproute", "demo", "-n", ns, "--type=json",
			"-p", `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":50},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":50}]`)
		start := time.Now()
		next := ads.recvType("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", 15*time.Second)
		t.Logf("new route table pushed %s after the patch", time.Since(start).Round(time.Millisecond))
		if next.VersionInfo == first.VersionInfo {
			t.Fatalf("route version unchanged: %s", next.VersionInfo)
		}
		if w := routes(t, next)["/"]; w["default/demo-v1:80"] != 50 || w["default/demo-v2:80"] != 50 {
			t.Fatalf("route table %s, want / split 50/50", weightsOf(t, next))
		}
		eventually(t, 15*time.Second, "demo route status at its new generation",
			e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
	})

	t.Run("BadRoutesGetReasons", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing-backend, namespace: %[1]s}
spec:
  parentRefs: [{name: %[2]s}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: no-such-service, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex, namespace: %[1]s}
spec:
  parentRefs: [{name: %[2]s}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/(unclosed"}}]
    backendRefs: [{name: demo-v1, port: 80}]
`, ns, gwName))
		eventually(t, 20*time.Second, "missing-backend: ResolvedRefs=False/BackendNotFound",
			e.routeConds(t, "missing-backend", metav1.ConditionTrue, metav1.ConditionFalse, "Accepted", "BackendNotFound"))
		eventually(t, 20*time.Second, "bad-regex: Accepted=False/UnsupportedValue",
			e.routeConds(t, "bad-regex", metav1.ConditionFalse, metav1.ConditionTrue, "UnsupportedValue", "ResolvedRefs"))
		if err := e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs")(); err != nil {
			t.Errorf("the good route's status changed: %v", err)
		}
		// A proxy connecting now gets the good route, and the missing
		// backend's route answers with an error of its own.
		ads := dialADS(t, ctl.xds, ns+"/"+gwName, "test-proxy-2")
		table := ads.routeTable(10 * time.Second)
		rs := routes(t, table)
		if w := rs["/"]; w["default/demo-v1:80"] != 50 || w["default/demo-v2:80"] != 50 {
			t.Errorf("route table %s: the good route / (50/50) is not served", weightsOf(t, table))
		}
		if _, ok := rs["/missing"]; !ok {
			t.Errorf("route table %s has no /missing route (not the latest snapshot?)", weightsOf(t, table))
		}
		for k := range rs {
			if strings.Contains(k, "unclosed") {
				t.Errorf("route table %s serves the invalid regex", weightsOf(t, table))
			}
		}
	})

	t.Run("OtherControllersParentEntriesSurvive", func(t *testing.T) {
		r := e.route(t, "demo")
		foreign := fmt.Sprintf(`[{"op":"add","path":"/status/parents/-","value":{"parentRef":{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"other-gw"},"controllerName":"example.com/other","conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"mine","observedGeneration":%d,"lastTransitionTime":"2026-01-02T03:04:05Z"}]}}]`, r.Generation)
		e.kubectl(t, "patch", "httproute", "demo", "-n", ns, "--subresource=status", "--type=json", "-p", foreign)
		// A spec change makes sekisho rewrite its own entry.
		e.kubectl(t, "patch", "httproute", "demo", "-n", ns, "--type=json",
			"-p", `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":80},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":20}]`)
		eventually(t, 20*time.Second, "demo route status at its new generation",
			e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
		time.Sleep(time.Second) // the status write's own event is reconciled too
		r = e.route(t, "demo")
		var found bool
		for _, p := range r.Status.Parents {
			if p.ControllerName == "example.com/other" && p.ParentRef.Name == "other-gw" &&
				len(p.Conditions) == 1 && p.Conditions[0].Message == "mine" {
				found = true
			}
		}
		if !found || len(r.Status.Parents) != 2 {
			t.Fatalf("route parents %+v: want sekisho's entry and example.com/other's, untouched", r.Status.Parents)
		}
	})

	t.Run("PoliciesGetStatusAndReachTheServices", func(t *testing.T) {
		e.apply(t, fmt.Sprintf(`apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: demo-limits, namespace: %[1]s}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: demo}]
  global:
    rules:
    - {name: per-user, match: {headers: [{name: x-user, type: Distinct}]}, limit: {requests: 10, unit: Minute}}
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: demo-login, namespace: %[1]s}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: %[2]s}]
  oidc:
    provider: {issuer: "https://idp.example.com"}
    clientID: web
    clientSecretRef: {name: no-such-secret}
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: lost, namespace: %[1]s}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: no-such-route}]
  local: {rules: [{name: l, limit: {requests: 1, unit: Second}}]}
`, ns, gwName))
		policyCond := func(obj client.Object, ancestors func() []gwv1.PolicyAncestorStatus, status metav1.ConditionStatus, reason string) func() error {
			return func() error {
				if err := e.cl.Get(ctx(t), client.ObjectKeyFromObject(obj), obj); err != nil {
					return err
				}
				as := ancestors()
				if len(as) != 1 {
					return fmt.Errorf("%d ancestors, want 1: %+v", len(as), as)
				}
				if as[0].ControllerName != sekishoCtl {
					return fmt.Errorf("controllerName %q", as[0].ControllerName)
				}
				return condIs(as[0].Conditions, "Accepted", status, reason, obj.GetGeneration())
			}
		}
		rl := &policyv1alpha1.RateLimitPolicy{ObjectMeta: metav1.ObjectMeta{Name: "demo-limits", Namespace: ns}}
		eventually(t, 20*time.Second, "RateLimitPolicy Accepted", policyCond(rl, func() []gwv1.PolicyAncestorStatus { return rl.Status.Ancestors }, metav1.ConditionTrue, "Accepted"))
		sec := &policyv1alpha1.SecurityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "demo-login", Namespace: ns}}
		eventually(t, 20*time.Second, "SecurityPolicy Invalid", policyCond(sec, func() []gwv1.PolicyAncestorStatus { return sec.Status.Ancestors }, metav1.ConditionFalse, "Invalid"))
		lost := &policyv1alpha1.RateLimitPolicy{ObjectMeta: metav1.ObjectMeta{Name: "lost", Namespace: ns}}
		eventually(t, 20*time.Second, "RateLimitPolicy TargetNotFound", policyCond(lost, func() []gwv1.PolicyAncestorStatus { return lost.Status.Ancestors }, metav1.ConditionFalse, "TargetNotFound"))

		// The rate-limit service the controller runs has the rule: a
		// request for it is counted (remaining goes down), one for another
		// domain is not.
		conn, err := grpc.NewClient(ctl.rateLimit, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rls := rlsv3.NewRateLimitServiceClient(conn)
		eventually(t, 20*time.Second, "the rate-limit service counting demo-limits/per-user", func() error {
			resp, err := rls.ShouldRateLimit(ctx(t), &rlsv3.RateLimitRequest{Domain: "sekisho", Descriptors: []*ratelimitv3.RateLimitDescriptor{{
				Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "sekisho.rule", Value: ns + "/demo-limits/per-user"}, {Key: "header.x-user", Value: "alice"}},
			}}})
			if err != nil {
				return err
			}
			if len(resp.Statuses) != 1 || resp.Statuses[0].CurrentLimit == nil || resp.Statuses[0].CurrentLimit.RequestsPerUnit != 10 {
				return fmt.Errorf("statuses %v: the rule is not in force", resp.Statuses)
			}
			return nil
		})
		if err := httpOK("http://" + ctl.admin + "/readyz/ratelimit"); err != nil {
			t.Errorf("/readyz/ratelimit: %v", err)
		}
		// The class's GatewayClassConfig names a Redis: the counters move there.
		redis := redistest.Start(t)
		e.kubectl(t, "patch", "gatewayclassconfig", "sekisho-proxies", "-n", systemNS, "--type=merge",
			"-p", `{"spec":{"rateLimit":{"redis":{"address":"`+redis.Addr()+`"}}}}`)
		eventually(t, 20*time.Second, "rate-limit counters in the GatewayClassConfig's Redis", func() error {
			if _, err := rls.ShouldRateLimit(ctx(t), &rlsv3.RateLimitRequest{Domain: "sekisho", Descriptors: []*ratelimitv3.RateLimitDescriptor{{
				Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "sekisho.rule", Value: ns + "/demo-limits/per-user"}, {Key: "header.x-user", Value: "bob"}},
			}}}); err != nil {
				return err
			}
			n, err := redistest.Do(redis.Addr(), time.Second, "DBSIZE")
			if err != nil {
				return err
			}
			if n == "0" {
				return fmt.Errorf("Redis has no keys")
			}
			return nil
		})
		if err := httpOK("http://" + ctl.admin + "/readyz/authz"); err != nil {
			t.Errorf("/readyz/authz: %v", err)
		}
		// The SecurityPolicy could not be enforced: its Gateway's routes answer 500.
		ads := dialADS(t, ctl.xds, ns+"/"+gwName, "test-proxy-policies")
		table := ads.routeTable(10 * time.Second)
		if w := routes(t, table)["/"]; w["direct-response"] != 500 {
			t.Fatalf("route table %s: want / answered 500 for an unenforceable SecurityPolicy", weightsOf(t, table))
		}
	})
}

// resourceVersions of everything the controller writes.
func (e *env) resourceVersions(t *testing.T) map[string]string {
	t.Helper()
	c := ctx(t)
	out := map[string]string{}
	gk := types.NamespacedName{Namespace: ns, Name: "sekisho-" + gwName}
	for name, o := range map[string]struct {
		key types.NamespacedName
		obj client.Object
	}{
		"GatewayClass":   {types.NamespacedName{Name: "sekisho"}, &gwv1.GatewayClass{}},
		"Gateway":        {types.NamespacedName{Namespace: ns, Name: gwName}, &gwv1.Gateway{}},
		"HTTPRoute":      {types.NamespacedName{Namespace: ns, Name: "demo"}, &gwv1.HTTPRoute{}},
		"HTTPRoute bad":  {types.NamespacedName{Namespace: ns, Name: "missing-backend"}, &gwv1.HTTPRoute{}},
		"Deployment":     {gk, &appsv1.Deployment{}},
		"Service":        {gk, &corev1.Service{}},
		"ServiceAccount": {gk, &corev1.ServiceAccount{}},
	} {
		if err := e.cl.Get(c, o.key, o.obj); err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		out[name] = o.obj.GetResourceVersion()
	}
	return out
}

// TestRestartWritesNothing: a restarted controller finds its status and
// proxies as it left them and writes nothing.
func TestRestartWritesNothing(t *testing.T) {
	e := setup(t, statusOnlyBackends)
	e.apply(t, fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing-backend, namespace: %s}
spec:
  parentRefs: [{name: %s}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: no-such-service, port: 80}]
`, ns, gwName))
	ctl := startController(t, e, "127.0.0.1", "controller")
	proxyServes(t, ctl.xds, "test-proxy-0")
	eventually(t, 30*time.Second, "status converges", func() error {
		if err := e.routeConds(t, "missing-backend", metav1.ConditionTrue, metav1.ConditionFalse, "Accepted", "BackendNotFound")(); err != nil {
			return err
		}
		return e.converged(t, 2)()
	})
	time.Sleep(2 * time.Second) // let the writes' own events settle
	before := e.resourceVersions(t)
	depBefore := e.kubectl(t, "get", "deployment", "sekisho-"+gwName, "-n", ns, "-o", "yaml", "--show-managed-fields")
	ctl.stop(t)
	if code := ctl.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("controller exited %d on SIGINT", code)
	}

	// The same addresses: the proxies' Deployment names the xDS address.
	ctl2 := startControllerOn(t, e, ctl.xds, ctl.admin, "controller-restarted")
	if n := metric(t, ctl2.admin, "sekisho_controlplane_applies_total"); n < 1 {
		t.Fatalf("restarted controller ready with %v applies", n)
	}
	time.Sleep(3 * time.Second)
	after := e.resourceVersions(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s rewritten by the restarted controller: resourceVersion %s -> %s", k, v, after[k])
		}
	}
	if t.Failed() {
		gw := &gwv1.Gateway{}
		_ = e.cl.Get(ctx(t), types.NamespacedName{Namespace: ns, Name: gwName}, gw)
		t.Logf("Gateway status now: %+v", gw.Status)
		t.Logf("Deployment before:\n%s\nafter:\n%s", depBefore, e.kubectl(t, "get", "deployment", "sekisho-"+gwName, "-n", ns, "-o", "yaml", "--show-managed-fields"))
	}
}

// TestLeaderElection: with two replicas both serve xDS, only the leader
// writes status, and the other takes over when the leader dies.
func TestLeaderElection(t *testing.T) {
	e := setup(t, statusOnlyBackends)
	const leaseName = "sekisho-test-leader"
	le := []string{"--leader-elect", "--leader-election-id", leaseName}
	a := startController(t, e, "127.0.0.1", "replica-a", le...)
	proxyServes(t, a.xds, "proxy-of-a-0")
	eventually(t, 30*time.Second, "status written by the first replica", e.converged(t, 1))
	holder := func() string {
		l := &coordinationv1.Lease{}
		if err := e.cl.Get(ctx(t), types.NamespacedName{Namespace: systemNS, Name: leaseName}, l); err != nil {
			t.Fatalf("reading the Lease: %v", err)
		}
		if l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	first := holder()
	if first == "" {
		t.Fatal("the Lease has no holder while status was written")
	}

	b := startController(t, e, "127.0.0.1", "replica-b", le...)
	for _, r := range []*controller{a, b} {
		ads := dialADS(t, r.xds, ns+"/"+gwName, "proxy-of-"+r.name)
		table := ads.routeTable(10 * time.Second)
		if w := routes(t, table)["/"]; w["default/demo-v1:80"] != 90 || w["default/demo-v2:80"] != 10 {
			t.Fatalf("%s serves %s, want / split 90/10", r.name, weightsOf(t, table))
		}
	}
	if h := holder(); h != first {
		t.Fatalf("Lease holder changed from %q to %q when the second replica started", first, h)
	}

	// Pause the leader: replica b follows the change on xDS but does not
	// write status while a still holds the Lease.
	gen := e.route(t, "demo").Generation
	adsB := dialADS(t, b.xds, ns+"/"+gwName, "proxy-of-b-2")
	adsB.ack(adsB.routeTable(10 * time.Second))
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	e.kubectl(t, "patch", "httproute", "demo", "-n", ns, "--type=json",
		"-p", `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":50},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":50}]`)
	next := adsB.recvType("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", 10*time.Second)
	if w := routes(t, next)["/"]; w["default/demo-v1:80"] != 50 || w["default/demo-v2:80"] != 50 {
		t.Fatalf("replica b serves %s after the change, want 50/50", weightsOf(t, next))
	}
	time.Sleep(2 * time.Second)
	if since := time.Since(paused); since > 10*time.Second {
		t.Fatalf("took %s to see the change on b: the Lease may have expired, so the next check proves nothing", since)
	}
	p := sekishoParent(e.route(t, "demo"))
	if p == nil || len(p.Conditions) == 0 || p.Conditions[0].ObservedGeneration != gen {
		t.Fatalf("route status changed while the leader was paused (the follower wrote it): %+v", p)
	}
	if h := holder(); h != first {
		t.Fatalf("Lease holder changed to %q while the leader was paused for %s", h, time.Since(paused))
	}

	// Kill the leader: b takes the Lease and writes the pending status.
	a.kill()
	killed := time.Now()
	eventually(t, 45*time.Second, "replica b takes the Lease", func() error {
		if h := holder(); h == first || h == "" {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	eventually(t, 20*time.Second, "status at the new generation, written by b",
		e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
	t.Logf("b took over and wrote status %s after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
}
