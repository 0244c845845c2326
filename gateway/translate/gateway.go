package translate

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/ir"
)

type gatewayCtx struct {
	gw        *gwv1.Gateway
	key       resource.ObjectKey
	status    *gwv1.GatewayStatus
	listeners []*listenerCtx
	// accepted: at least one listener is programmed and the addresses are usable.
	accepted     bool
	acceptReason string
	acceptMsg    string
	addrOK       bool
	addrMsg      string
	addrPending  bool // no address assigned yet
	irGateway    *ir.Gateway
}

type listenerCtx struct {
	gw       *gatewayCtx
	idx      int
	spec     *gwv1.Listener
	name     string
	hostname string
	protocol gwv1.ProtocolType
	port     int32
	field    string

	acceptReason   string // "" when accepted
	acceptMsg      string
	resolvedReason string // "" when all refs resolved
	resolvedMsg    string
	conflictReason string // "" when not conflicted
	conflictMsg    string

	kinds      []gwv1.RouteGroupKind
	allowHTTP  bool
	allowGRPC  bool
	nsFrom     gwv1.FromNamespaces
	nsSelector labels.Selector

	secrets []*ir.Secret

	attached    int32
	lastRoute   *routeCtx
	attachments []*attachment
}

func (l *listenerCtx) programmed() bool {
	if l.acceptReason != "" || l.conflictReason != "" {
		return false
	}
	if !l.allowHTTP && !l.allowGRPC {
		return false
	}
	if l.protocol == gwv1.HTTPSProtocolType && len(l.secrets) == 0 {
		return false
	}
	return true
}

func (t *translator) translateClasses() {
	for _, gc := range t.res.GatewayClasses {
		if gc == nil || gc.Spec.ControllerName != t.controllerName {
			continue
		}
		st := &gwv1.GatewayClassStatus{SupportedFeatures: SupportedFeatures()}
		t.status.GatewayClasses[nsName{Name: gc.Name}] = st
		if msg := t.checkParameters(gc); msg != "" {
			// Not accepted: its Gateways are left alone until it is fixed.
			st.Conditions = []metav1.Condition{condition(string(gwv1.GatewayClassConditionStatusAccepted), false,
				string(gwv1.GatewayClassReasonInvalidParameters), msg, gc.Generation)}
			t.problem(resource.ObjectKey{Kind: "GatewayClass", Name: gc.Name}, "spec.parametersRef", msg, false)
			continue
		}
		t.classes[gc.Name] = gc
		st.Conditions = []metav1.Condition{condition(string(gwv1.GatewayClassConditionStatusAccepted), true,
			string(gwv1.GatewayClassReasonAccepted), "Handled by "+string(t.controllerName), gc.Generation)}
	}
}

// checkParameters says what is wrong with a GatewayClass's parametersRef,
// or "" when it has none or it names an existing GatewayClassConfig.
func (t *translator) checkParameters(gc *gwv1.GatewayClass) string {
	ref := gc.Spec.ParametersRef
	if ref == nil {
		return ""
	}
	if string(ref.Group) != configv1alpha1.GroupVersion.Group || string(ref.Kind) != configv1alpha1.GatewayClassConfigKind {
		return fmt.Sprintf("parametersRef must name a %s of group %s, not %s %q", configv1alpha1.GatewayClassConfigKind, configv1alpha1.GroupVersion.Group, ref.Kind, ref.Group)
	}
	if ref.Namespace == nil || *ref.Namespace == "" {
		return "parametersRef must set the namespace of the GatewayClassConfig"
	}
	if ClassConfig(t.res, gc) == nil {
		return fmt.Sprintf("GatewayClassConfig %s/%s not found", *ref.Namespace, ref.Name)
	}
	return ""
}

// ClassConfig returns the GatewayClassConfig in res that gc's parametersRef
// names, or nil when it names none or one that does not exist.
func ClassConfig(res *resource.Resources, gc *gwv1.GatewayClass) *configv1alpha1.GatewayClassConfig {
	ref := gc.Spec.ParametersRef
	if ref == nil || ref.Namespace == nil || string(ref.Kind) != configv1alpha1.GatewayClassConfigKind || string(ref.Group) != configv1alpha1.GroupVersion.Group {
		return nil
	}
	for _, c := range res.GatewayClassConfigs {
		if c != nil && c.Namespace == string(*ref.Namespace) && c.Name == ref.Name {
			return c
		}
	}
	return nil
}

func (t *translator) translateGateways() {
	for _, gw := range t.res.Gateways {
		if gw == nil {
			continue
		}
		key := resource.ObjectKey{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.Name}
		if _, ok := t.classes[string(gw.Spec.GatewayClassName)]; !ok {
			known := false
			for _, gc := range t.res.GatewayClasses {
				if gc != nil && gc.Name == string(gw.Spec.GatewayClassName) {
					known = true
				}
			}
			if !known {
				t.problem(key, "spec.gatewayClassName", fmt.Sprintf("GatewayClass %q not found; the Gateway is ignored", gw.Spec.GatewayClassName), true)
			}
			continue
		}
		g := &gatewayCtx{gw: gw, key: key, status: &gwv1.GatewayStatus{}}
		t.gateways[nsName{Namespace: gw.Namespace, Name: gw.Name}] = g
		t.gwOrder = append(t.gwOrder, g)
		t.status.Gateways[nsName{Namespace: gw.Namespace, Name: gw.Name}] = g.status
		t.gatewayAddresses(g)
		for i := range gw.Spec.Listeners {
			g.listeners = append(g.listeners, t.listener(g, i))
		}
		t.listenerConflicts(g)
		// A listener that is valid but cannot be programmed yet (say, its
		// certificate is missing) still accepts routes and counts them in
		// attachedRoutes, as the spec says; only invalid or conflicting
		// listeners do not count towards accepting the Gateway.
		n := 0
		for _, l := range g.listeners {
			if l.acceptReason == "" && l.conflictReason == "" {
				n++
			}
		}
		switch {
		case g.acceptReason != "":
		case n == 0:
			g.acceptReason = string(gwv1.GatewayReasonListenersNotValid)
			g.acceptMsg = "No listener is valid"
		default:
			g.accepted = true
		}
		if g.accepted && g.addrOK {
			g.irGateway = &ir.Gateway{Name: gw.Namespace + "/" + gw.Name, Namespace: gw.Namespace, GatewayName: gw.Name}
		}
	}
	slices.SortFunc(t.gwOrder, func(a, b *gatewayCtx) int {
		return strings.Compare(a.gw.Namespace+"/"+a.gw.Name, b.gw.Namespace+"/"+b.gw.Name)
	})
}

// gatewayAddresses checks spec.addresses and fills status.addresses.
func (t *translator) gatewayAddresses(g *gatewayCtx) {
	g.addrOK = true
	for i, a := range g.gw.Spec.Addresses {
		field := fmt.Sprintf("spec.addresses[%d]", i)
		typ := deref(a.Type, gwv1.IPAddressType)
		switch typ {
		case gwv1.IPAddressType:
			if a.Value == "" {
				continue // the implementation assigns one
			}
			if _, err := netip.ParseAddr(a.Value); err != nil {
				g.addrOK = false
				g.addrMsg = fmt.Sprintf("Address %q is not an IP address", a.Value)
				t.problem(g.key, field+".value", g.addrMsg, false)
				continue
			}
		case gwv1.HostnameAddressType:
			if a.Value == "" {
				continue
			}
			if errs := validation.IsDNS1123Subdomain(a.Value); len(errs) > 0 {
				g.addrOK = false
				g.addrMsg = fmt.Sprintf("Address %q is not a hostname: %s", a.Value, strings.Join(errs, "; "))
				t.problem(g.key, field+".value", g.addrMsg, false)
				continue
			}
		default:
			g.acceptReason = string(gwv1.GatewayReasonUnsupportedAddress)
			g.acceptMsg = fmt.Sprintf("Address type %q is not supported", typ)
			t.problem(g.key, field+".type", g.acceptMsg, false)
			continue
		}
		g.status.Addresses = append(g.status.Addresses, gwv1.GatewayStatusAddress{Type: &typ, Value: a.Value})
	}
	if len(g.status.Addresses) == 0 && g.acceptReason == "" && g.addrOK {
		addrs := t.opts.DefaultAddresses
		if t.opts.Addresses != nil {
			addrs = t.opts.Addresses(g.gw.Namespace, g.gw.Name)
			g.addrPending = len(addrs) == 0
		}
		for _, a := range addrs {
			typ := gwv1.IPAddressType
			if _, err := netip.ParseAddr(a); err != nil {
				typ = gwv1.HostnameAddressType
			}
			g.status.Addresses = append(g.status.Addresses, gwv1.GatewayStatusAddress{Type: &typ, Value: a})
		}
	}
	if !g.addrOK || g.acceptReason != "" {
		g.status.Addresses = nil
	}
}

var defaultKinds = []gwv1.RouteGroupKind{
	{Group: ptr(gwv1.Group(gatewayGroup)), Kind: "HTTPRoute"},
	{Group: ptr(gwv1.Group(gatewayGroup)), Kind: "GRPCRoute"},
}

func ptr[T any](v T) *T { return &v }

// listener validates one Gateway listener.
func (t *translator) listener(g *gatewayCtx, i int) *listenerCtx {
	spec := &g.gw.Spec.Listeners[i]
	l := &listenerCtx{
		gw: g, idx: i, spec: spec, name: string(spec.Name), protocol: spec.Protocol, port: spec.Port,
		field: fmt.Sprintf("spec.listeners[%d]", i),
	}
	if spec.Hostname != nil {
		l.hostname = string(*spec.Hostname)
	}
	reject := func(field, reason, msg string) {
		if l.acceptReason == "" {
			l.acceptReason, l.acceptMsg = reason, msg
		}
		t.problem(g.key, l.field+field, msg, false)
	}
	unresolved := func(field, reason, msg string) {
		if l.resolvedReason == "" {
			l.resolvedReason, l.resolvedMsg = reason, msg
		}
		t.problem(g.key, l.field+field, msg, false)
	}

	switch spec.Protocol {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType:
	default:
		reject(".protocol", string(gwv1.ListenerReasonUnsupportedProtocol), fmt.Sprintf("Protocol %q is not supported; use HTTP or HTTPS", spec.Protocol))
	}
	if spec.Port < 1 || spec.Port > 65535 {
		reject(".port", string(gwv1.ListenerReasonPortUnavailable), fmt.Sprintf("Port %d is not a valid port", spec.Port))
	}
	if l.hostname != "" {
		if msg := checkHostname(l.hostname); msg != "" {
			reject(".hostname", string(gwv1.ListenerReasonUnsupportedValue), msg)
		}
	}
	if l.acceptReason == string(gwv1.ListenerReasonUnsupportedProtocol) {
		return l
	}

	// allowedRoutes.kinds
	var kinds []gwv1.RouteGroupKind
	if spec.AllowedRoutes != nil && len(spec.AllowedRoutes.Kinds) > 0 {
		for j, k := range spec.AllowedRoutes.Kinds {
			grp := deref(k.Group, gwv1.Group(gatewayGroup))
			if grp == gatewayGroup && (k.Kind == "HTTPRoute" || k.Kind == "GRPCRoute") {
				kinds = append(kinds, gwv1.RouteGroupKind{Group: ptr(grp), Kind: k.Kind})
				continue
			}
			unresolved(fmt.Sprintf(".allowedRoutes.kinds[%d]", j), string(gwv1.ListenerReasonInvalidRouteKinds),
				fmt.Sprintf("Route kind %s/%s is not supported", grp, k.Kind))
		}
	} else {
		kinds = defaultKinds
	}
	for _, k := range kinds {
		switch k.Kind {
		case "HTTPRoute":
			l.allowHTTP = true
		case "GRPCRoute":
			l.allowGRPC = true
		}
	}
	l.kinds = slices.CompactFunc(kinds, func(a, b gwv1.RouteGroupKind) bool { return a.Kind == b.Kind })

	// allowedRoutes.namespaces
	l.nsFrom = gwv1.NamespacesFromSame
	if spec.AllowedRoutes != nil && spec.AllowedRoutes.Namespaces != nil {
		l.nsFrom = deref(spec.AllowedRoutes.Namespaces.From, gwv1.NamespacesFromSame)
		switch l.nsFrom {
		case gwv1.NamespacesFromSame, gwv1.NamespacesFromAll, gwv1.NamespacesFromNone:
		case gwv1.NamespacesFromSelector:
			sel := spec.AllowedRoutes.Namespaces.Selector
			if sel == nil {
				reject(".allowedRoutes.namespaces.selector", string(gwv1.ListenerReasonUnsupportedValue), "From Selector needs a selector")
				break
			}
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				reject(".allowedRoutes.namespaces.selector", string(gwv1.ListenerReasonUnsupportedValue), fmt.Sprintf("Invalid namespace selector: %v", err))
				break
			}
			l.nsSelector = s
		default:
			reject(".allowedRoutes.namespaces.from", string(gwv1.ListenerReasonUnsupportedValue), fmt.Sprintf("Unknown value %q", l.nsFrom))
		}
	}

	if spec.Protocol == gwv1.HTTPSProtocolType {
		t.listenerTLS(g, l, reject, unresolved)
	}
	return l
}

func (t *translator) listenerTLS(g *gatewayCtx, l *listenerCtx, reject, unresolved func(field, reason, msg string)) {
	tlsCfg := l.spec.TLS
	if tlsCfg != nil && deref(tlsCfg.Mode, gwv1.TLSModeTerminate) != gwv1.TLSModeTerminate {
		reject(".tls.mode", string(gwv1.ListenerReasonUnsupportedValue), fmt.Sprintf("TLS mode %q is not supported for HTTPS; use Terminate", *tlsCfg.Mode))
		return
	}
	if tlsCfg == nil || len(tlsCfg.CertificateRefs) == 0 {
		unresolved(".tls.certificateRefs", string(gwv1.ListenerReasonInvalidCertificateRef), "An HTTPS listener needs at least one certificateRef")
		return
	}
	for j, ref := range tlsCfg.CertificateRefs {
		field := fmt.Sprintf(".tls.certificateRefs[%d]", j)
		grp := string(deref(ref.Group, ""))
		kind := string(deref(ref.Kind, "Secret"))
		ns := string(deref(ref.Namespace, gwv1.Namespace(g.gw.Namespace)))
		name := string(ref.Name)
		if grp != "" || kind != "Secret" {
			unresolved(field, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("Certificate reference to %s/%s is not supported; use a core Secret", grp, kind))
			continue
		}
		if ns != g.gw.Namespace && !t.granted("Gateway", g.gw.Namespace, "", "Secret", ns, name) {
			unresolved(field, string(gwv1.ListenerReasonRefNotPermitted), fmt.Sprintf("Secret %s/%s is in another namespace and no ReferenceGrant allows it", ns, name))
			continue
		}
		s := t.secrets[nsName{Namespace: ns, Name: name}]
		if s == nil {
			unresolved(field, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("Secret %s/%s not found", ns, name))
			continue
		}
		cert, key, err := tlsSecretData(s)
		if err != nil {
			unresolved(field, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("Secret %s/%s: %v", ns, name, err))
			continue
		}
		l.secrets = append(l.secrets, &ir.Secret{Name: ns + "/" + name, CertPEM: cert, KeyPEM: key})
	}
}

// tlsSecretData returns the certificate and key of a kubernetes.io/tls Secret
// once they are known to parse and match.
func tlsSecretData(s *corev1.Secret) (cert, key []byte, err error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, nil, fmt.Errorf("type is %q, not %q", s.Type, corev1.SecretTypeTLS)
	}
	get := func(k string) []byte {
		if v, ok := s.StringData[k]; ok {
			return []byte(v)
		}
		return s.Data[k]
	}
	cert, key = get(corev1.TLSCertKey), get(corev1.TLSPrivateKeyKey)
	if len(cert) == 0 || len(key) == 0 {
		return nil, nil, fmt.Errorf("%s and %s are both required", corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return nil, nil, fmt.Errorf("parsing the certificate and key: %w", err)
	}
	return cert, key, nil
}

// checkHostname returns why h is not a valid listener or route hostname.
func checkHostname(h string) string {
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Sprintf("Hostname %q is an IP address", h)
	}
	rest := strings.TrimPrefix(h, "*.")
	if errs := validation.IsDNS1123Subdomain(rest); len(errs) > 0 {
		return fmt.Sprintf("Hostname %q is invalid: %s", h, strings.Join(errs, "; "))
	}
	return ""
}

// listenerConflicts marks listeners that share a port with a different
// protocol, or a port, protocol and hostname.
func (t *translator) listenerConflicts(g *gatewayCtx) {
	byPort := map[int32][]*listenerCtx{}
	for _, l := range g.listeners {
		if l.acceptReason == string(gwv1.ListenerReasonUnsupportedProtocol) || l.acceptReason == string(gwv1.ListenerReasonPortUnavailable) {
			continue
		}
		byPort[l.port] = append(byPort[l.port], l)
	}
	for _, ls := range byPort {
		protocols := map[gwv1.ProtocolType]bool{}
		for _, l := range ls {
			protocols[l.protocol] = true
		}
		if len(protocols) > 1 {
			for _, l := range ls {
				l.conflictReason = string(gwv1.ListenerReasonProtocolConflict)
				l.conflictMsg = fmt.Sprintf("Port %d is used by listeners of different protocols", l.port)
				t.problem(g.key, l.field+".protocol", l.conflictMsg, false)
			}
			continue
		}
		hosts := map[string][]*listenerCtx{}
		for _, l := range ls {
			hosts[l.hostname] = append(hosts[l.hostname], l)
		}
		for h, same := range hosts {
			if len(same) < 2 {
				continue
			}
			for _, l := range same {
				l.conflictReason = string(gwv1.ListenerReasonHostnameConflict)
				if h == "" {
					l.conflictMsg = fmt.Sprintf("Several listeners on port %d have no hostname", l.port)
				} else {
					l.conflictMsg = fmt.Sprintf("Several listeners on port %d have hostname %q", l.port, h)
				}
				t.problem(g.key, l.field+".hostname", l.conflictMsg, false)
			}
		}
	}
}

// finishGateways writes the Gateway and listener conditions, once routes are attached.
func (t *translator) finishGateways() {
	for _, g := range t.gwOrder {
		gen := g.gw.Generation
		st := g.status
		allOK := true
		for _, l := range g.listeners {
			ls := gwv1.ListenerStatus{Name: gwv1.SectionName(l.name), SupportedKinds: l.kinds, AttachedRoutes: l.attached}
			if ls.SupportedKinds == nil {
				ls.SupportedKinds = []gwv1.RouteGroupKind{}
			}
			if l.acceptReason == "" {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionAccepted), true, string(gwv1.ListenerReasonAccepted), "Listener is valid", gen))
			} else {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionAccepted), false, l.acceptReason, l.acceptMsg, gen))
			}
			if l.resolvedReason == "" {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionResolvedRefs), true, string(gwv1.ListenerReasonResolvedRefs), "All references resolved", gen))
			} else {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionResolvedRefs), false, l.resolvedReason, l.resolvedMsg, gen))
			}
			if l.conflictReason == "" {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionConflicted), false, string(gwv1.ListenerReasonNoConflicts), "No conflicts", gen))
			} else {
				c := condition(string(gwv1.ListenerConditionConflicted), true, l.conflictReason, l.conflictMsg, gen)
				ls.Conditions = append(ls.Conditions, c)
			}
			if l.programmed() && g.irGateway != nil {
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), "Listener is programmed", gen))
			} else {
				allOK = false
				msg := "Listener is invalid"
				if l.programmed() {
					msg = "Gateway is not programmed"
				}
				ls.Conditions = append(ls.Conditions, condition(string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), msg, gen))
				t.problem(g.key, l.field, fmt.Sprintf("Listener %q is not programmed: %s", l.name, notProgrammedWhy(l, g)), false)
			}
			sortConditions(ls.Conditions)
			st.Listeners = append(st.Listeners, ls)
		}
		switch {
		case !g.accepted:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionAccepted), false, g.acceptReason, g.acceptMsg, gen))
			t.problem(g.key, "", "Gateway is not accepted: "+g.acceptMsg, false)
		case allOK:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "Gateway is accepted", gen))
		default:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonListenersNotValid), "Some listeners are not valid", gen))
		}
		switch {
		case !g.accepted:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), "Gateway is not accepted", gen))
		case !g.addrOK:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotUsable), g.addrMsg, gen))
		case g.addrPending:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotAssigned), "Waiting for the proxy Service to get an address", gen))
		default:
			st.Conditions = append(st.Conditions, condition(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), "Gateway is programmed", gen))
		}
		sortConditions(st.Conditions)
	}
}

func notProgrammedWhy(l *listenerCtx, g *gatewayCtx) string {
	switch {
	case l.acceptReason != "":
		return l.acceptMsg
	case l.conflictReason != "":
		return l.conflictMsg
	case !l.allowHTTP && !l.allowGRPC:
		return "no supported route kinds are allowed"
	case l.protocol == gwv1.HTTPSProtocolType && len(l.secrets) == 0:
		return "no valid certificate: " + l.resolvedMsg
	case g.irGateway == nil:
		return "the Gateway is not programmed"
	}
	return "invalid"
}
