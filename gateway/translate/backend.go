package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/ir"
)

// addBackend resolves one backendRef of a rule and adds its share.
func (t *translator) addBackend(r *ruleCtx, ref gwv1.BackendObjectReference, weight *int32, field string, wb ir.WeightedBackend) {
	w := deref(weight, 1)
	if w < 0 {
		r.fail(field+".weight", "weight %d must not be negative", w)
		return
	}
	cluster, ok := t.resolveBackend(r, ref, field)
	if !ok {
		r.invalidW += uint32(w)
		return
	}
	if w == 0 {
		return
	}
	wb.Cluster, wb.Weight = cluster, uint32(w)
	r.backends = append(r.backends, wb)
}

// resolveBackend checks a reference to a Service port and returns its cluster
// name. A failure sets the route's ResolvedRefs condition and is a problem.
func (t *translator) resolveBackend(r *ruleCtx, ref gwv1.BackendObjectReference, field string) (string, bool) {
	rc := r.rc
	fail := func(reason gwv1.RouteConditionReason, msg string) (string, bool) {
		if rc.resolvedWhy == "" {
			rc.resolvedWhy, rc.resolvedMsg = string(reason), msg
		}
		t.problem(rc.key, r.field+field, msg, false)
		return "", false
	}
	grp := string(deref(ref.Group, ""))
	kind := string(deref(ref.Kind, "Service"))
	if (grp != "" && grp != "core") || kind != "Service" {
		return fail(gwv1.RouteReasonInvalidKind, fmt.Sprintf("Backend kind %s/%s is not supported; use a core Service", grp, kind))
	}
	ns := string(deref(ref.Namespace, gwv1.Namespace(rc.meta.Namespace)))
	name := string(ref.Name)
	if ns != rc.meta.Namespace && !t.granted(rc.kind, rc.meta.Namespace, "", "Service", ns, name) {
		return fail(gwv1.RouteReasonRefNotPermitted, fmt.Sprintf("Service %s/%s is in another namespace and no ReferenceGrant allows it", ns, name))
	}
	if ref.Port == nil {
		return fail(gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s: port is required", ns, name))
	}
	svc := t.services[nsName{Namespace: ns, Name: name}]
	if svc == nil {
		return fail(gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s not found", ns, name))
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == *ref.Port {
			sp = &svc.Spec.Ports[i]
			break
		}
	}
	if sp == nil {
		return fail(gwv1.RouteReasonBackendNotFound, fmt.Sprintf("Service %s/%s has no port %d", ns, name, *ref.Port))
	}
	proto := ir.AppProtocolHTTP1
	switch ap := deref(sp.AppProtocol, ""); ap {
	case "", "http", "HTTP", "kubernetes.io/ws":
	case "kubernetes.io/h2c", "h2c", "grpc":
		proto = ir.AppProtocolH2C
	default:
		return fail(gwv1.RouteReasonUnsupportedProtocol, fmt.Sprintf("Service %s/%s port %d: appProtocol %q is not supported", ns, name, *ref.Port, ap))
	}
	if r.grpc {
		proto = ir.AppProtocolH2C
	}
	cname := ns + "/" + name + ":" + strconv.Itoa(int(*ref.Port))
	c := t.clusters[cname]
	if c == nil {
		c = &ir.Cluster{Name: cname, Protocol: proto, LoadBalancer: ir.LoadBalancerRoundRobin, Endpoints: t.endpoints(ns, name, sp)}
		t.clusters[cname] = c
	} else if proto == ir.AppProtocolH2C {
		c.Protocol = ir.AppProtocolH2C
	}
	return cname, true
}

// endpoints returns the ready endpoints of one Service port, from the
// EndpointSlices labelled with the Service's name.
func (t *translator) endpoints(ns, name string, sp *corev1.ServicePort) []ir.Endpoint {
	var out []ir.Endpoint
	for _, es := range t.epSlices[nsName{Namespace: ns, Name: name}] {
		var port int32 = -1
		for _, p := range es.Ports {
			if deref(p.Name, "") == sp.Name && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port < 1 || port > 65535 {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				out = append(out, ir.Endpoint{Address: a, Port: uint32(port), Ready: true, Zone: deref(ep.Zone, "")})
			}
		}
	}
	slices.SortFunc(out, func(a, b ir.Endpoint) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), strings.Compare(a.Zone, b.Zone))
	})
	return slices.CompactFunc(out, func(a, b ir.Endpoint) bool { return a.Address == b.Address && a.Port == b.Port })
}
