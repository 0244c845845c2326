package translate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/ir"
)

// routeCtx is one HTTPRoute or GRPCRoute being translated.
type routeCtx struct {
	kind       string // HTTPRoute | GRPCRoute
	meta       *metav1.ObjectMeta
	key        resource.ObjectKey
	parentRefs []gwv1.ParentReference
	hostnames  []string
	nsName     string // "namespace/name", for ordering

	entries      []*routeEntry // translated rules, every match
	rules        int
	droppedRules []string // "spec.rules[i]...: why"
	invalidMsg   string   // first reason a rule was dropped
	resolvedWhy  string   // first ResolvedRefs failure reason
	resolvedMsg  string
}

// routeEntry is one IR route with its precedence key.
type routeEntry struct {
	route    *ir.Route
	pathRank int // 0 Exact, 1 RegularExpression, 2 PathPrefix
	pathLen  int
	method   bool
	headers  int
	queries  int
	created  int64
	owner    *routeCtx
	rule     int
	match    int
	// grpc entries come from GRPCRoutes and are ordered by the characters of
	// the service, then of the method, they match, as the GRPCRoute spec says.
	grpc        bool
	grpcService int
	grpcMethod  int
}

// attachment is a route attached to a listener, with its effective hostnames.
type attachment struct {
	route *routeCtx
	hosts []string
}

func (t *translator) translateRoutes() {
	for _, r := range t.res.HTTPRoutes {
		if r == nil {
			continue
		}
		rc := &routeCtx{kind: "HTTPRoute", meta: &r.ObjectMeta, parentRefs: r.Spec.ParentRefs, hostnames: hostnameStrings(r.Spec.Hostnames)}
		st := t.attachRoute(rc, func() { t.httpRules(rc, r) })
		if st != nil {
			t.status.HTTPRoutes[nsName{Namespace: r.Namespace, Name: r.Name}] = &gwv1.HTTPRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: st}}
		}
	}
	for _, r := range t.res.GRPCRoutes {
		if r == nil {
			continue
		}
		rc := &routeCtx{kind: "GRPCRoute", meta: &r.ObjectMeta, parentRefs: r.Spec.ParentRefs, hostnames: hostnameStrings(r.Spec.Hostnames)}
		st := t.attachRoute(rc, func() { t.grpcRules(rc, r) })
		if st != nil {
			t.status.GRPCRoutes[nsName{Namespace: r.Namespace, Name: r.Name}] = &gwv1.GRPCRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: st}}
		}
	}
}

func hostnameStrings(hs []gwv1.Hostname) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, string(h))
	}
	return out
}

// attachRoute resolves a route's parents, translates its rules (once, and
// only if some parent is a Gateway of ours) and returns its parent statuses;
// nil when no parent is ours.
func (t *translator) attachRoute(rc *routeCtx, translateRules func()) []gwv1.RouteParentStatus {
	rc.key = resource.ObjectKey{Kind: rc.kind, Namespace: rc.meta.Namespace, Name: rc.meta.Name}
	rc.nsName = rc.meta.Namespace + "/" + rc.meta.Name
	gen := rc.meta.Generation
	var parents []gwv1.RouteParentStatus
	translated := false
	seen := map[string]bool{}
	for i, ref := range rc.parentRefs {
		field := fmt.Sprintf("spec.parentRefs[%d]", i)
		grp := string(deref(ref.Group, gwv1.Group(gatewayGroup)))
		kind := string(deref(ref.Kind, "Gateway"))
		if grp != gatewayGroup || kind != "Gateway" {
			continue // mesh (Service) parents and other kinds are not translated here
		}
		ns := string(deref(ref.Namespace, gwv1.Namespace(rc.meta.Namespace)))
		g := t.gateways[nsName{Namespace: ns, Name: string(ref.Name)}]
		if g == nil {
			if !t.gatewayExists(ns, string(ref.Name)) {
				t.problem(rc.key, field, fmt.Sprintf("Gateway %s/%s not found", ns, ref.Name), true)
			}
			continue
		}
		if !translated {
			translated = true
			translateRules()
		}
		ps := gwv1.RouteParentStatus{ParentRef: ref, ControllerName: t.controllerName}
		if k := fmt.Sprintf("%s/%s/%s/%d", ns, ref.Name, deref(ref.SectionName, ""), deref(ref.Port, 0)); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		accepted, reason, msg := t.attachToGateway(rc, g, ref)
		if accepted && len(rc.entries) == 0 && rc.rules > 0 {
			accepted, reason, msg = false, string(gwv1.RouteReasonUnsupportedValue), "All rules are invalid: "+rc.invalidMsg
		}
		if accepted {
			ps.Conditions = append(ps.Conditions, condition(string(gwv1.RouteConditionAccepted), true, string(gwv1.RouteReasonAccepted), "Route is accepted", gen))
		} else {
			ps.Conditions = append(ps.Conditions, condition(string(gwv1.RouteConditionAccepted), false, reason, msg, gen))
			pf := field
			if reason == string(gwv1.RouteReasonUnsupportedValue) {
				pf = ""
			}
			t.problem(rc.key, pf, fmt.Sprintf("Not accepted by Gateway %s/%s (%s): %s", ns, ref.Name, reason, msg), false)
		}
		if rc.resolvedWhy == "" {
			ps.Conditions = append(ps.Conditions, condition(string(gwv1.RouteConditionResolvedRefs), true, string(gwv1.RouteReasonResolvedRefs), "All references resolved", gen))
		} else {
			ps.Conditions = append(ps.Conditions, condition(string(gwv1.RouteConditionResolvedRefs), false, rc.resolvedWhy, rc.resolvedMsg, gen))
		}
		if accepted && len(rc.droppedRules) > 0 {
			ps.Conditions = append(ps.Conditions, condition(string(gwv1.RouteConditionPartiallyInvalid), true, string(gwv1.RouteReasonUnsupportedValue),
				"Dropped Rule(s): "+strings.Join(rc.droppedRules, "; "), gen))
		}
		sortConditions(ps.Conditions)
		parents = append(parents, ps)
	}
	return parents
}

func (t *translator) gatewayExists(ns, name string) bool {
	for _, g := range t.res.Gateways {
		if g != nil && g.Namespace == ns && g.Name == name {
			return true
		}
	}
	return false
}

// attachToGateway attaches a route to the listeners of g its parentRef selects.
func (t *translator) attachToGateway(rc *routeCtx, g *gatewayCtx, ref gwv1.ParentReference) (bool, string, string) {
	if !g.accepted {
		return false, string(gwv1.RouteReasonNoMatchingParent), "Gateway is not accepted"
	}
	var selected []*listenerCtx
	for _, l := range g.listeners {
		if ref.SectionName != nil && *ref.SectionName != "" && string(*ref.SectionName) != l.name {
			continue
		}
		if ref.Port != nil && *ref.Port != l.port {
			continue
		}
		selected = append(selected, l)
	}
	if len(selected) == 0 {
		return false, string(gwv1.RouteReasonNoMatchingParent), "No listener matches the parentRef's sectionName and port"
	}
	var allowed []*listenerCtx
	for _, l := range selected {
		if t.listenerAllows(l, rc) {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return false, string(gwv1.RouteReasonNotAllowedByListeners), fmt.Sprintf("No listener allows %s from namespace %q", rc.kind, rc.meta.Namespace)
	}
	type match struct {
		l     *listenerCtx
		hosts []string
	}
	var matches []match
	for _, l := range allowed {
		var hosts []string
		if len(rc.hostnames) == 0 {
			h, _ := intersect(l.hostname, "")
			hosts = append(hosts, h)
		}
		for _, rh := range rc.hostnames {
			if h, ok := intersect(l.hostname, rh); ok {
				hosts = append(hosts, h)
			}
		}
		if len(hosts) > 0 {
			matches = append(matches, match{l, hosts})
		}
	}
	if len(matches) == 0 {
		return false, string(gwv1.RouteReasonNoMatchingListenerHostname), "No listener hostname matches the route's hostnames"
	}
	if len(rc.entries) == 0 && rc.rules > 0 {
		return true, "", "" // the caller rejects it: all rules invalid
	}
	for _, m := range matches {
		l := m.l
		if l.lastRoute == rc {
			a := l.attachments[len(l.attachments)-1]
			a.hosts = appendUnique(a.hosts, m.hosts...)
			continue
		}
		l.lastRoute = rc
		l.attached++
		l.attachments = append(l.attachments, &attachment{route: rc, hosts: appendUnique(nil, m.hosts...)})
	}
	return true, "", ""
}

func appendUnique(dst []string, vs ...string) []string {
outer:
	for _, v := range vs {
		for _, d := range dst {
			if d == v {
				continue outer
			}
		}
		dst = append(dst, v)
	}
	return dst
}

func (t *translator) listenerAllows(l *listenerCtx, rc *routeCtx) bool {
	switch rc.kind {
	case "HTTPRoute":
		if !l.allowHTTP {
			return false
		}
	case "GRPCRoute":
		if !l.allowGRPC {
			return false
		}
	}
	switch l.nsFrom {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return rc.meta.Namespace == l.gw.gw.Namespace
	case gwv1.NamespacesFromSelector:
		if l.nsSelector == nil {
			return false
		}
		return l.nsSelector.Matches(t.namespaceLabels(rc.meta.Namespace))
	}
	return false
}
