package file

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
)

// Validate checks every object of res as the Kubernetes API server would
// when admitting it, then what sekisho needs beyond that.
//
// Custom resources (Gateway API kinds, sekisho's policies and
// GatewayClassConfig) are checked against their CRDs by the API server's own
// code (crd.go): ObjectMeta, the OpenAPI schema, embedded objects, list types
// and CEL rules. Then sekisho's own rules: RegularExpression matches compile
// as RE2 (the proxy's syntax), hostnames are DNS names (not IP addresses,
// labels of at most 63 characters) and client CIDRs parse. Services,
// EndpointSlices, Secrets and Namespaces have no CRD: what sekisho needs of
// them (names, ports, addresses, keys) is checked by hand.
//
// Each violation is one Problem with the JSON path of the field; problems
// that do not stop the object from being used have Warning set. Validate does
// not change res.
func Validate(res *resource.Resources) []resource.Problem {
	return validate(res, nil)
}

// validate is Validate, with the CRD validation of some custom resources
// already done (decoded.check), by key.
func validate(res *resource.Resources, checked map[resource.ObjectKey]field.ErrorList) []resource.Problem {
	v := &validator{res: res, checked: checked}
	for _, o := range res.GatewayClasses {
		v.custom(o, "GatewayClass", nil)
	}
	for _, o := range res.Gateways {
		v.custom(o, "Gateway", func() { v.gateway(o) })
	}
	for _, o := range res.HTTPRoutes {
		v.custom(o, "HTTPRoute", func() { v.httpRoute(o) })
	}
	for _, o := range res.GRPCRoutes {
		v.custom(o, "GRPCRoute", func() { v.grpcRoute(o) })
	}
	for _, o := range res.ReferenceGrants {
		v.custom(o, "ReferenceGrant", nil)
	}
	for _, o := range res.GatewayClassConfigs {
		v.custom(o, "GatewayClassConfig", nil)
	}
	for _, o := range res.RateLimitPolicies {
		v.custom(o, policyv1alpha1.RateLimitPolicyKind, func() { v.rateLimitPolicy(o) })
	}
	for _, o := range res.SecurityPolicies {
		v.custom(o, policyv1alpha1.SecurityPolicyKind, func() { v.securityPolicy(o) })
	}
	for _, o := range res.Services {
		v.core(o, "Service", func() { v.service(o) })
	}
	for _, o := range res.EndpointSlices {
		v.core(o, "EndpointSlice", func() { v.endpointSlice(o) })
	}
	for _, o := range res.Secrets {
		v.core(o, "Secret", func() { v.secret(o) })
	}
	for _, o := range res.Namespaces {
		v.core(o, "Namespace", func() {})
	}
	return v.problems
}

type validator struct {
	res      *resource.Resources
	checked  map[resource.ObjectKey]field.ErrorList
	key      resource.ObjectKey
	src      resource.Source
	problems []resource.Problem
}

func (v *validator) errf(path, format string, args ...any) {
	v.problems = append(v.problems, resource.Problem{Source: v.src, Object: v.key, Field: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(path, format string, args ...any) {
	v.problems = append(v.problems, resource.Problem{Source: v.src, Object: v.key, Field: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

func (v *validator) at(o metav1.Object, kind string) {
	ns := o.GetNamespace()
	if !namespaced(kind) {
		ns = ""
	}
	v.key = resource.ObjectKey{Kind: kind, Namespace: ns, Name: o.GetName()}
	v.src = v.res.Sources[v.key]
}

// custom checks a custom resource against its CRD, as the API server does on
// create, then calls sekisho, if any, for sekisho's own rules.
func (v *validator) custom(o runtime.Object, kind string, sekisho func()) {
	v.at(o.(metav1.Object), kind)
	if errs, ok := v.checked[v.key]; ok {
		v.crdProblems(errs)
		if sekisho != nil {
			sekisho()
		}
		return
	}
	obj := v.res.Content[v.key]
	if obj == nil {
		// not decoded by ParseBytes: the object's own fields
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			v.errf("", "converting to an unstructured object: %v", err)
			return
		}
		obj = u
	}
	apiVersion, _ := obj["apiVersion"].(string)
	crd, err := crdSchemas.lookup(schema.FromAPIVersionAndKind(apiVersion, kind))
	switch {
	case err != nil:
		v.errf("", "reading the CRD of %s: %v", kind, err)
		return
	case crd == nil:
		v.errf("apiVersion", "no CRD serves %s in version %q", kind, apiVersion)
		return
	}
	v.crdProblems(crd.validate(obj))
	if sekisho != nil {
		sekisho()
	}
}

func (v *validator) crdProblems(errs field.ErrorList) {
	for _, e := range errs {
		v.problems = append(v.problems, fieldProblem(v.src, v.key, e))
	}
}

// fieldProblem is a Problem of an API server error, with its field path and
// its words.
func fieldProblem(src resource.Source, key resource.ObjectKey, e *field.Error) resource.Problem {
	if e.Field == "<nil>" { // about the object as a whole
		return resource.Problem{Source: src, Object: key, Msg: e.Detail}
	}
	return resource.Problem{Source: src, Object: key, Field: e.Field, Msg: e.ErrorBody()}
}

// core checks the metadata of a core object as the API server does, then
// calls check for the rules of its kind.
func (v *validator) core(o metav1.Object, kind string, check func()) {
	v.at(o, kind)
	switch kind {
	case "Namespace":
		v.msgs("metadata.name", o.GetName(), validation.IsDNS1123Label(o.GetName()))
	case "Service":
		v.msgs("metadata.name", o.GetName(), validation.IsDNS1035Label(o.GetName()))
	default:
		v.msgs("metadata.name", o.GetName(), validation.IsDNS1123Subdomain(o.GetName()))
	}
	if namespaced(kind) {
		v.msgs("metadata.namespace", o.GetNamespace(), validation.IsDNS1123Label(o.GetNamespace()))
	}
	v.labels("metadata.labels", o.GetLabels())
	check()
}

// msgs reports the messages of a k8s.io/apimachinery validation function.
func (v *validator) msgs(path, value string, msgs []string) {
	if len(msgs) > 0 {
		v.errf(path, "invalid value %q: %s", value, strings.Join(msgs, "; "))
	}
}

func (v *validator) labels(path string, labels map[string]string) {
	for _, k := range sortedStringKeys(labels) {
		v.msgs(path+"["+k+"]", k, content.IsLabelKey(k))
		v.msgs(path+"["+k+"]", labels[k], content.IsLabelValue(labels[k]))
	}
}

func sortedStringKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The rules sekisho adds to the CRDs' own.

// hostname checks what the pattern of a Gateway API hostname does not and
// sekisho needs: a DNS name with labels of at most 63 characters, not an IP
// address.
func (v *validator) hostname(path, h string) {
	if _, err := netip.ParseAddr(h); err == nil {
		v.errf(path, "invalid hostname %q: must be a DNS name, not an IP address", h)
		return
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) > 63 {
			v.errf(path, "invalid hostname %q: label %q is longer than 63 characters", h, label)
			return
		}
	}
}

func (v *validator) hostnames(path string, hs []gwv1.Hostname) {
	for i, h := range hs {
		v.hostname(fmt.Sprintf("%s[%d]", path, i), string(h))
	}
}

// regex checks that a RegularExpression match compiles in the proxy's
// syntax, RE2.
func (v *validator) regex(path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.errf(path, "invalid regular expression %q: %v (sekisho uses RE2 syntax)", re, err)
	}
}

func (v *validator) cidr(path, s string) {
	if _, err := netip.ParsePrefix(s); err != nil {
		v.errf(path, "invalid CIDR %q: %v", s, err)
	}
}

func (v *validator) pathRegex(path string, m *gwv1.HTTPPathMatch) {
	if m != nil && m.Type != nil && *m.Type == gwv1.PathMatchRegularExpression && m.Value != nil {
		v.regex(path+".value", *m.Value)
	}
}

func (v *validator) gateway(o *gwv1.Gateway) {
	for i, l := range o.Spec.Listeners {
		p := fmt.Sprintf("spec.listeners[%d]", i)
		if l.Hostname != nil {
			v.hostname(p+".hostname", string(*l.Hostname))
		}
		// The Gateway API requires it in words; its CRD does not check it.
		if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil &&
			*ar.Namespaces.From == gwv1.NamespacesFromSelector && ar.Namespaces.Selector == nil {
			v.errf(p+".allowedRoutes.namespaces.selector", "required when from is Selector")
		}
	}
}

func (v *validator) httpRoute(o *gwv1.HTTPRoute) {
	v.hostnames("spec.hostnames", o.Spec.Hostnames)
	for i, r := range o.Spec.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		for j, m := range r.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			v.pathRegex(mp+".path", m.Path)
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.headers[%d].value", mp, k), h.Value)
				}
			}
			for k, q := range m.QueryParams {
				if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.queryParams[%d].value", mp, k), q.Value)
				}
			}
		}
		v.httpFilters(p+".filters", r.Filters)
		for j, b := range r.BackendRefs {
			v.httpFilters(fmt.Sprintf("%s.backendRefs[%d].filters", p, j), b.Filters)
		}
	}
}

func (v *validator) httpFilters(path string, fs []gwv1.HTTPRouteFilter) {
	for i, f := range fs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if r := f.RequestRedirect; r != nil && r.Hostname != nil {
			v.hostname(p+".requestRedirect.hostname", string(*r.Hostname))
		}
		if r := f.URLRewrite; r != nil && r.Hostname != nil {
			v.hostname(p+".urlRewrite.hostname", string(*r.Hostname))
		}
	}
}

func (v *validator) grpcRoute(o *gwv1.GRPCRoute) {
	v.hostnames("spec.hostnames", o.Spec.Hostnames)
	for i, r := range o.Spec.Rules {
		for j, m := range r.Matches {
			mp := fmt.Sprintf("spec.rules[%d].matches[%d]", i, j)
			if mm := m.Method; mm != nil && mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression {
				if mm.Service != nil {
					v.regex(mp+".method.service", *mm.Service)
				}
				if mm.Method != nil {
					v.regex(mp+".method.method", *mm.Method)
				}
			}
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.headers[%d].value", mp, k), h.Value)
				}
			}
		}
	}
}

func (v *validator) rateLimitPolicy(o *policyv1alpha1.RateLimitPolicy) {
	if g := o.Spec.Global; g != nil {
		for i, r := range g.Rules {
			m := r.Match
			if m == nil {
				continue
			}
			p := fmt.Sprintf("spec.global.rules[%d].match", i)
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == policyv1alpha1.MatchRegularExpression && h.Value != nil {
					v.regex(fmt.Sprintf("%s.headers[%d].value", p, k), *h.Value)
				}
			}
			v.pathRegex(p+".path", m.Path)
			for k, c := range m.ClientCIDRs {
				v.cidr(fmt.Sprintf("%s.clientCIDRs[%d].value", p, k), c.Value)
			}
		}
	}
}

func (v *validator) securityPolicy(o *policyv1alpha1.SecurityPolicy) {
	if a := o.Spec.Authorization; a != nil {
		for i, r := range a.Rules {
			p := fmt.Sprintf("spec.authorization.rules[%d]", i)
			if pr := r.Principal; pr != nil {
				for k, c := range pr.ClientCIDRs {
					v.cidr(fmt.Sprintf("%s.principal.clientCIDRs[%d]", p, k), c)
				}
			}
			if op := r.Operation; op != nil {
				for k := range op.Paths {
					v.pathRegex(fmt.Sprintf("%s.operation.paths[%d]", p, k), &op.Paths[k])
				}
			}
		}
	}
}

// Services, EndpointSlices and Secrets: the rules of the API server that
// sekisho relies on, by hand (no CRD says them).

func (v *validator) maxItems(path string, n, max int) {
	if n > max {
		v.errf(path, "must have at most %d items, got %d", max, n)
	}
}

func (v *validator) port(path string, p int32) {
	if p < 1 || p > 65535 {
		v.errf(path, "port %d out of range: must be between 1 and 65535", p)
	}
}

// unique reports every item whose key an earlier item already has.
func unique[T any](v *validator, path string, items []T, key func(T) string, what string) {
	seen := map[string]int{}
	for i, it := range items {
		k := key(it)
		if j, dup := seen[k]; dup {
			v.errf(fmt.Sprintf("%s[%d]", path, i), "duplicate %s: the same as %s[%d]", what, path, j)
			continue
		}
		seen[k] = i
	}
}

var protocols = []string{"TCP", "UDP", "SCTP"}

func (v *validator) protocol(path string, p corev1.Protocol) {
	if p != "" && !slices.Contains(protocols, string(p)) {
		v.errf(path, "unsupported value %q: must be one of %s", p, strings.Join(protocols, ", "))
	}
}

func (v *validator) service(o *corev1.Service) {
	s := o.Spec
	types := []string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}
	if s.Type != "" && !slices.Contains(types, string(s.Type)) {
		v.errf("spec.type", "unsupported value %q: must be one of %s", s.Type, strings.Join(types, ", "))
	}
	if s.Type == corev1.ServiceTypeExternalName {
		v.msgs("spec.externalName", s.ExternalName, validation.IsDNS1123Subdomain(strings.TrimSuffix(s.ExternalName, ".")))
	} else if len(s.Ports) == 0 && s.ClusterIP != corev1.ClusterIPNone {
		v.errf("spec.ports", "required: a Service must have at least one port unless it is headless (clusterIP: None)")
	}
	if s.ClusterIP != "" && s.ClusterIP != corev1.ClusterIPNone {
		if _, err := netip.ParseAddr(s.ClusterIP); err != nil {
			v.errf("spec.clusterIP", "invalid value %q: must be an IP address, None or empty", s.ClusterIP)
		}
	}
	for i, ip := range s.ClusterIPs {
		if _, err := netip.ParseAddr(ip); err != nil && ip != corev1.ClusterIPNone {
			v.errf(fmt.Sprintf("spec.clusterIPs[%d]", i), "invalid IP address %q", ip)
		}
	}
	v.labels("spec.selector", s.Selector)
	unique(v, "spec.ports", s.Ports, func(p corev1.ServicePort) string { return p.Name }, "port name")
	unique(v, "spec.ports", s.Ports, func(p corev1.ServicePort) string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }, "port and protocol")
	for i, p := range s.Ports {
		pp := fmt.Sprintf("spec.ports[%d]", i)
		if p.Name == "" && len(s.Ports) > 1 {
			v.errf(pp+".name", "required when a Service has more than one port")
		} else if p.Name != "" {
			v.msgs(pp+".name", p.Name, validation.IsDNS1123Label(p.Name))
		}
		v.port(pp+".port", p.Port)
		v.protocol(pp+".protocol", p.Protocol)
		if p.NodePort != 0 {
			v.port(pp+".nodePort", p.NodePort)
		}
		switch {
		case p.TargetPort.Type == intstr.String: // a named port
			v.msgs(pp+".targetPort", p.TargetPort.StrVal, validation.IsValidPortName(p.TargetPort.StrVal))
		case p.TargetPort.IntVal != 0:
			v.port(pp+".targetPort", p.TargetPort.IntVal)
		}
	}
}

func (v *validator) endpointSlice(o *discoveryv1.EndpointSlice) {
	if _, ok := o.Labels[discoveryv1.LabelServiceName]; !ok {
		v.warnf("metadata.labels", "no %s label: this EndpointSlice belongs to no Service and is not used", discoveryv1.LabelServiceName)
	}
	at := o.AddressType
	switch at {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	case "":
		v.errf("addressType", "required: one of IPv4, IPv6, FQDN")
	default:
		v.errf("addressType", "unsupported value %q: must be one of IPv4, IPv6, FQDN", at)
	}
	v.maxItems("endpoints", len(o.Endpoints), 1000)
	for i, e := range o.Endpoints {
		p := fmt.Sprintf("endpoints[%d].addresses", i)
		if len(e.Addresses) == 0 {
			v.errf(p, "required: at least one address")
		}
		v.maxItems(p, len(e.Addresses), 100)
		for j, a := range e.Addresses {
			ap := fmt.Sprintf("%s[%d]", p, j)
			if at == discoveryv1.AddressTypeFQDN {
				v.msgs(ap, a, validation.IsDNS1123Subdomain(a))
				continue
			}
			ip, err := netip.ParseAddr(a)
			switch {
			case err != nil:
				v.errf(ap, "invalid IP address %q", a)
			case at == discoveryv1.AddressTypeIPv4 && !ip.Is4():
				v.errf(ap, "%q is not an IPv4 address, as addressType IPv4 requires", a)
			case at == discoveryv1.AddressTypeIPv6 && !ip.Is6():
				v.errf(ap, "%q is not an IPv6 address, as addressType IPv6 requires", a)
			}
		}
	}
	v.maxItems("ports", len(o.Ports), 100)
	unique(v, "ports", o.Ports, func(p discoveryv1.EndpointPort) string {
		if p.Name == nil {
			return ""
		}
		return *p.Name
	}, "port name")
	for i, p := range o.Ports {
		pp := fmt.Sprintf("ports[%d]", i)
		if p.Name != nil && *p.Name != "" {
			v.msgs(pp+".name", *p.Name, validation.IsDNS1123Label(*p.Name))
		}
		if p.Port != nil {
			v.port(pp+".port", *p.Port)
		}
		if p.Protocol != nil {
			v.protocol(pp+".protocol", *p.Protocol)
		}
	}
}

func (v *validator) secret(o *corev1.Secret) {
	for _, k := range sortedStringKeys(o.Data) {
		v.msgs("data["+k+"]", k, validation.IsConfigMapKey(k))
	}
	if o.Type == corev1.SecretTypeTLS {
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if _, ok := o.Data[k]; !ok {
				v.errf("data["+k+"]", "required for a Secret of type %s", corev1.SecretTypeTLS)
			}
		}
	}
}
