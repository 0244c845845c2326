package file

import (
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
)

// Validate checks every object of res as the Kubernetes API server would
// when admitting it, with the OpenAPI rules (required fields, enums,
// patterns, lengths, ranges, list sizes) and the CEL rules of the Gateway API
// v1.6.3 CRDs, plus what sekisho needs to be true: RegularExpression matches
// compile as RE2, hostnames are RFC 1123 names and not IP addresses, and
// Services and EndpointSlices have well-formed ports and addresses. Each
// violation is one Problem with the JSON path of the field; problems that do
// not stop the object from being used have Warning set. Validate does not
// change res.
func Validate(res *resource.Resources) []resource.Problem {
	v := &validator{res: res}
	for _, o := range res.GatewayClasses {
		v.object(o, "GatewayClass", func() { v.gatewayClass(o) })
	}
	for _, o := range res.Gateways {
		v.object(o, "Gateway", func() { v.gateway(o) })
	}
	for _, o := range res.HTTPRoutes {
		v.object(o, "HTTPRoute", func() { v.httpRoute(o) })
	}
	for _, o := range res.GRPCRoutes {
		v.object(o, "GRPCRoute", func() { v.grpcRoute(o) })
	}
	for _, o := range res.ReferenceGrants {
		v.object(o, "ReferenceGrant", func() { v.referenceGrant(o) })
	}
	for _, o := range res.Services {
		v.object(o, "Service", func() { v.service(o) })
	}
	for _, o := range res.EndpointSlices {
		v.object(o, "EndpointSlice", func() { v.endpointSlice(o) })
	}
	for _, o := range res.Secrets {
		v.object(o, "Secret", func() { v.secret(o) })
	}
	for _, o := range res.Namespaces {
		v.object(o, "Namespace", func() {})
	}
	for _, o := range res.RateLimitPolicies {
		v.object(o, policyv1alpha1.RateLimitPolicyKind, func() { v.rateLimitPolicy(o) })
	}
	for _, o := range res.SecurityPolicies {
		v.object(o, policyv1alpha1.SecurityPolicyKind, func() { v.securityPolicy(o) })
	}
	return v.problems
}

type validator struct {
	res      *resource.Resources
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

// object checks the metadata of o, the rules that go with the Go types of
// its spec, then calls kind for the rules of its kind.
func (v *validator) object(o metav1.Object, kind string, check func()) {
	ns := o.GetNamespace()
	if !namespaced(kind) {
		ns = ""
	}
	v.key = resource.ObjectKey{Kind: kind, Namespace: ns, Name: o.GetName()}
	v.src = v.res.Sources[v.key]
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
	if spec := reflect.ValueOf(o).Elem().FieldByName("Spec"); spec.IsValid() {
		v.typeRules(spec, "spec")
	}
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

// A typeRule is what the CRD schema requires of every value of one Go type.
type typeRule struct {
	min, max int            // lengths in characters; max 0: no limit
	re       *regexp.Regexp // nil: any
	want     string         // what re accepts, for messages
	enum     []string
	// required: an empty enum value is an error; else it means left out
	// (non-pointer fields with a default).
	required bool
}

const (
	dnsSubdomain = `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
	labelKeyRE   = `^(` + dnsSubdomain + `/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$`
)

var (
	groupRule    = typeRule{max: 253, re: regexp.MustCompile(`^$|^` + dnsSubdomain + `$`), want: "an API group: empty for the core group, else a lowercase DNS subdomain"}
	hostnameRule = typeRule{min: 1, max: 253, re: regexp.MustCompile(`^(\*\.)?` + dnsSubdomain + `$`), want: `a lowercase RFC 1123 hostname, optionally prefixed with "*."`}
	headerRule   = typeRule{min: 1, max: 256, re: regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$"), want: "an HTTP header name (RFC 7230 token characters)"}
	sectionRule  = typeRule{min: 1, max: 253, re: regexp.MustCompile(`^` + dnsSubdomain + `$`), want: "a lowercase DNS subdomain"}
	methods      = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
	matchTypes   = []string{"Exact", "RegularExpression"}
)

// typeRules holds the validation markers of the Gateway API string types.
var typeRules = map[reflect.Type]typeRule{
	reflect.TypeFor[gwv1.Group]():           groupRule,
	reflect.TypeFor[gwv1.Kind]():            {min: 1, max: 63, re: regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`), want: "a kind: a letter, then letters, digits and dashes"},
	reflect.TypeFor[gwv1.ObjectName]():      {min: 1, max: 253},
	reflect.TypeFor[gwv1.Namespace]():       {min: 1, max: 63, re: regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`), want: "a lowercase RFC 1123 label"},
	reflect.TypeFor[gwv1.SectionName]():     sectionRule,
	reflect.TypeFor[gwv1.Hostname]():        hostnameRule,
	reflect.TypeFor[gwv1.PreciseHostname](): {min: 1, max: 253, re: regexp.MustCompile(`^` + dnsSubdomain + `$`), want: "a lowercase RFC 1123 hostname without wildcard"},
	reflect.TypeFor[gwv1.GatewayController](): {min: 1, max: 253,
		re: regexp.MustCompile(`^` + dnsSubdomain + `\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$`), want: `a domain-prefixed path such as "example.com/gateway-controller"`},
	reflect.TypeFor[gwv1.ProtocolType](): {min: 1, max: 255,
		re: regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|` + dnsSubdomain + `\/[A-Za-z0-9]+$`), want: "a protocol name such as HTTP, or a domain-prefixed name"},
	reflect.TypeFor[gwv1.AddressType](): {min: 1, max: 253,
		re: regexp.MustCompile(`^Hostname|IPAddress|NamedAddress|` + dnsSubdomain + `\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$`), want: "Hostname, IPAddress, NamedAddress or a domain-prefixed type"},
	reflect.TypeFor[gwv1.HeaderName]():      headerRule,
	reflect.TypeFor[gwv1.HTTPHeaderName]():  headerRule,
	reflect.TypeFor[gwv1.GRPCHeaderName]():  headerRule,
	reflect.TypeFor[gwv1.AnnotationKey]():   {min: 1, max: 253, re: regexp.MustCompile(labelKeyRE), want: "an optional DNS subdomain prefix and '/', then a name of up to 63 characters"},
	reflect.TypeFor[gwv1.AnnotationValue](): {max: 4096},
	reflect.TypeFor[gwv1.LabelKey]():        {min: 1, max: 253, re: regexp.MustCompile(labelKeyRE), want: "an optional DNS subdomain prefix and '/', then a name of up to 63 characters"},
	reflect.TypeFor[gwv1.LabelValue]():      {max: 63, re: regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`), want: "empty, or alphanumerics, '-', '_' and '.' starting and ending with an alphanumeric"},
	reflect.TypeFor[gwv1.Duration]():        {re: regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`), want: `a Gateway API duration such as "1h", "30s" or "1m500ms"`},
	reflect.TypeFor[gwv1.AbsoluteURI]():     {min: 1, max: 253, re: regexp.MustCompile(`^(([^:/?#]+):)(//([^/?#]*))([^?#]*)(\?([^#]*))?(#(.*))?`), want: "an absolute URI"},
	reflect.TypeFor[gwv1.CORSOrigin](): {min: 1, max: 253,
		re: regexp.MustCompile(`(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)`), want: `"*" or an http(s) origin such as "https://*.example.com:8443"`},
	reflect.TypeFor[gwv1.TLSModeType]():                {enum: []string{"Terminate", "Passthrough"}},
	reflect.TypeFor[gwv1.FrontendValidationModeType](): {enum: []string{"AllowValidOnly", "AllowInsecureFallback"}},
	reflect.TypeFor[gwv1.GRPCMethodMatchType]():        {enum: matchTypes},
	reflect.TypeFor[gwv1.GRPCHeaderMatchType]():        {enum: matchTypes},
	reflect.TypeFor[gwv1.PathMatchType]():              {enum: []string{"Exact", "PathPrefix", "RegularExpression"}},
	reflect.TypeFor[gwv1.HeaderMatchType]():            {enum: matchTypes},
	reflect.TypeFor[gwv1.QueryParamMatchType]():        {enum: matchTypes},
	reflect.TypeFor[gwv1.HTTPMethod]():                 {enum: methods},
	reflect.TypeFor[gwv1.HTTPMethodWithWildcard]():     {enum: append(slices.Clone(methods), "*")},
	reflect.TypeFor[gwv1.HTTPPathModifierType]():       {enum: []string{"ReplaceFullPath", "ReplacePrefixMatch"}, required: true},
	reflect.TypeFor[gwv1.FromNamespaces]():             {enum: []string{"All", "Selector", "Same"}},
	reflect.TypeFor[gwv1.SessionPersistenceType]():     {enum: []string{"Cookie", "Header"}},
	reflect.TypeFor[gwv1.CookieLifetimeType]():         {enum: []string{"Permanent", "Session"}},
	// sekisho's policy types.
	reflect.TypeFor[policyv1alpha1.FailureMode]():         {enum: []string{"Open", "Closed"}},
	reflect.TypeFor[policyv1alpha1.RateLimitUnit]():       {enum: []string{"Second", "Minute", "Hour", "Day"}, required: true},
	reflect.TypeFor[policyv1alpha1.RateLimitAlgorithm]():  {enum: []string{"FixedWindow", "SlidingWindow", "TokenBucket"}},
	reflect.TypeFor[policyv1alpha1.MatchType]():           {enum: []string{"Exact", "RegularExpression", "Distinct"}},
	reflect.TypeFor[policyv1alpha1.JWTAlgorithm]():        {enum: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}, required: true},
	reflect.TypeFor[policyv1alpha1.AuthorizationAction](): {enum: []string{"Allow", "Deny"}},
}

// typeRules walks a typed value and applies the rule of every string whose
// Go type has one, map keys included. Nil pointers are fields left out.
func (v *validator) typeRules(val reflect.Value, path string) {
	switch val.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !val.IsNil() {
			v.typeRules(val.Elem(), path)
		}
	case reflect.Struct:
		fields := jsonFields(val.Type())
		for _, name := range sortedStringKeys(fields) {
			v.typeRules(val.FieldByIndex(fields[name].index), join(path, name))
		}
	case reflect.Slice, reflect.Array:
		for i := range val.Len() {
			v.typeRules(val.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		keys := val.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			p := fmt.Sprintf("%s[%v]", path, k)
			v.typeRules(k, p)
			v.typeRules(val.MapIndex(k), p)
		}
	case reflect.String:
		if r, ok := typeRules[val.Type()]; ok {
			v.rule(path, val.String(), r)
		}
	}
}

func (v *validator) rule(path, s string, r typeRule) {
	n := len([]rune(s))
	switch {
	case r.enum != nil:
		if s == "" && r.required {
			v.errf(path, "required: one of %s", strings.Join(r.enum, ", "))
		} else if s != "" && !slices.Contains(r.enum, s) {
			v.errf(path, "unsupported value %q: must be one of %s", s, strings.Join(r.enum, ", "))
		}
	case n < r.min:
		v.errf(path, "must not be empty")
	case r.max > 0 && n > r.max:
		v.errf(path, "must be at most %d characters long, got %d", r.max, n)
	case r.re != nil && !r.re.MatchString(s):
		v.errf(path, "invalid value %q: must be %s", s, r.want)
	}
}

// hostname checks what the pattern of Hostname does not: RFC 1123 label
// lengths, and that it is not an IP address.
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

func (v *validator) regex(path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.errf(path, "invalid regular expression %q: %v (sekisho uses RE2 syntax)", re, err)
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

func (v *validator) gatewayClass(o *gwv1.GatewayClass) {
	if o.Spec.Description != nil && len([]rune(*o.Spec.Description)) > 64 {
		v.errf("spec.description", "must be at most 64 characters long, got %d", len([]rune(*o.Spec.Description)))
	}
}

func (v *validator) gateway(o *gwv1.Gateway) {
	ls := o.Spec.Listeners
	if len(ls) == 0 {
		v.errf("spec.listeners", "required: a Gateway must have at least one listener")
	}
	v.maxItems("spec.listeners", len(ls), 64)
	unique(v, "spec.listeners", ls, func(l gwv1.Listener) string { return string(l.Name) }, "listener name")
	unique(v, "spec.listeners", ls, func(l gwv1.Listener) string {
		h := "<none>"
		if l.Hostname != nil {
			h = string(*l.Hostname)
		}
		return fmt.Sprintf("%d/%s/%s", l.Port, l.Protocol, h)
	}, "combination of port, protocol and hostname")
	for i, l := range ls {
		p := fmt.Sprintf("spec.listeners[%d]", i)
		v.port(p+".port", l.Port)
		if l.Hostname != nil {
			v.hostname(p+".hostname", string(*l.Hostname))
			if (l.Protocol == gwv1.TCPProtocolType || l.Protocol == gwv1.UDPProtocolType) && *l.Hostname != "" {
				v.errf(p+".hostname", "must not be set for protocol %s", l.Protocol)
			}
		}
		switch {
		case l.TLS != nil && (l.Protocol == gwv1.HTTPProtocolType || l.Protocol == gwv1.TCPProtocolType || l.Protocol == gwv1.UDPProtocolType):
			v.errf(p+".tls", "must not be set for protocol %s", l.Protocol)
		case l.Protocol == gwv1.HTTPSProtocolType && l.TLS != nil && l.TLS.Mode != nil && *l.TLS.Mode != "" && *l.TLS.Mode != gwv1.TLSModeTerminate:
			v.errf(p+".tls.mode", "must be Terminate for protocol HTTPS, got %s", *l.TLS.Mode)
		case l.Protocol == gwv1.TLSProtocolType && (l.TLS == nil || l.TLS.Mode == nil || *l.TLS.Mode == ""):
			v.errf(p+".tls.mode", "required for protocol TLS")
		}
		if l.TLS != nil {
			// an unset mode defaults to Terminate
			if (l.TLS.Mode == nil || *l.TLS.Mode == gwv1.TLSModeTerminate) && len(l.TLS.CertificateRefs) == 0 && len(l.TLS.Options) == 0 {
				v.errf(p+".tls", "certificateRefs or options must be set when mode is Terminate")
			}
			v.maxItems(p+".tls.certificateRefs", len(l.TLS.CertificateRefs), 64)
			v.maxItems(p+".tls.options", len(l.TLS.Options), 16)
		}
		if ar := l.AllowedRoutes; ar != nil {
			v.maxItems(p+".allowedRoutes.kinds", len(ar.Kinds), 8)
			if ns := ar.Namespaces; ns != nil && ns.From != nil && *ns.From == gwv1.NamespacesFromSelector && ns.Selector == nil {
				v.errf(p+".allowedRoutes.namespaces.selector", "required when from is Selector")
			}
		}
	}
	v.maxItems("spec.addresses", len(o.Spec.Addresses), 16)
	unique(v, "spec.addresses", o.Spec.Addresses, func(a gwv1.GatewaySpecAddress) string {
		t := gwv1.IPAddressType
		if a.Type != nil {
			t = *a.Type
		}
		return string(t) + "/" + a.Value
	}, "address")
	for i, a := range o.Spec.Addresses {
		p := fmt.Sprintf("spec.addresses[%d].value", i)
		switch {
		case a.Type == nil || *a.Type == gwv1.IPAddressType:
			if _, err := netip.ParseAddr(a.Value); a.Value != "" && err != nil {
				v.errf(p, "invalid IP address %q", a.Value)
			}
		case *a.Type == gwv1.HostnameAddressType:
			if a.Value != "" {
				v.rule(p, a.Value, hostnameRule)
			}
		}
	}
	if inf := o.Spec.Infrastructure; inf != nil {
		if len(inf.Labels) > 8 {
			v.errf("spec.infrastructure.labels", "must have at most 8 entries, got %d", len(inf.Labels))
		}
		if len(inf.Annotations) > 16 {
			v.errf("spec.infrastructure.annotations", "must have at most 16 entries, got %d", len(inf.Annotations))
		}
	}
	if t := o.Spec.TLS; t != nil && t.Frontend != nil {
		f := t.Frontend
		v.frontendTLS("spec.tls.frontend.default", f.Default)
		v.maxItems("spec.tls.frontend.perPort", len(f.PerPort), 64)
		unique(v, "spec.tls.frontend.perPort", f.PerPort, func(pp gwv1.TLSPortConfig) string { return fmt.Sprint(pp.Port) }, "port")
		for i, pp := range f.PerPort {
			p := fmt.Sprintf("spec.tls.frontend.perPort[%d]", i)
			v.port(p+".port", pp.Port)
			v.frontendTLS(p+".tls", pp.TLS)
		}
	}
}

func (v *validator) frontendTLS(path string, c gwv1.TLSConfig) {
	if c.Validation == nil {
		return
	}
	n := len(c.Validation.CACertificateRefs)
	if n == 0 {
		v.errf(path+".validation.caCertificateRefs", "required: at least one CA certificate reference")
	}
	v.maxItems(path+".validation.caCertificateRefs", n, 16)
}

func (v *validator) referenceGrant(o *gwv1.ReferenceGrant) {
	for _, l := range []struct {
		path string
		n    int
	}{{"spec.from", len(o.Spec.From)}, {"spec.to", len(o.Spec.To)}} {
		if l.n == 0 {
			v.errf(l.path, "required: at least one entry")
		}
		v.maxItems(l.path, l.n, 16)
	}
}

// routeCommon checks what HTTPRoute and GRPCRoute share.
func (v *validator) routeCommon(spec gwv1.CommonRouteSpec, hostnames []gwv1.Hostname) {
	v.maxItems("spec.hostnames", len(hostnames), 16)
	for i, h := range hostnames {
		v.hostname(fmt.Sprintf("spec.hostnames[%d]", i), string(h))
	}
	refs := spec.ParentRefs
	v.maxItems("spec.parentRefs", len(refs), 32)
	parent := func(r gwv1.ParentReference) string {
		g, k, ns := gwv1.GroupName, "Gateway", ""
		if r.Group != nil {
			g = string(*r.Group)
		}
		if r.Kind != nil {
			k = string(*r.Kind)
		}
		if r.Namespace != nil {
			ns = string(*r.Namespace)
		}
		return g + "/" + k + "/" + ns + "/" + string(r.Name)
	}
	count := map[string]int{}
	for _, r := range refs {
		count[parent(r)]++
	}
	for i, r := range refs {
		p := fmt.Sprintf("spec.parentRefs[%d]", i)
		if r.Port != nil {
			v.port(p+".port", *r.Port)
		}
		if count[parent(r)] > 1 && (r.SectionName == nil || *r.SectionName == "") {
			v.errf(p+".sectionName", "required when parentRefs has two or more references to the same parent")
		}
	}
	unique(v, "spec.parentRefs", refs, func(r gwv1.ParentReference) string {
		s, port := "", ""
		if r.SectionName != nil {
			s = string(*r.SectionName)
		}
		if r.Port != nil {
			port = fmt.Sprint(*r.Port)
		}
		return parent(r) + "/" + s + "/" + port
	}, "parent reference (same parent, sectionName and port)")
}

func (v *validator) backendRef(path string, r gwv1.BackendObjectReference) {
	if (r.Group == nil || *r.Group == "") && (r.Kind == nil || *r.Kind == "Service") && r.Port == nil {
		v.errf(path+".port", "required for a Service reference")
	}
	if r.Port != nil {
		v.port(path+".port", *r.Port)
	}
}

func (v *validator) weight(path string, w *int32) {
	if w != nil && (*w < 0 || *w > 1000000) {
		v.errf(path, "weight %d out of range: must be between 0 and 1000000", *w)
	}
}

// headerModifier checks a RequestHeaderModifier or ResponseHeaderModifier.
func (v *validator) headerModifier(path string, m *gwv1.HTTPHeaderFilter) {
	if m == nil {
		return
	}
	name := func(h gwv1.HTTPHeader) string { return string(h.Name) }
	v.maxItems(path+".add", len(m.Add), 16)
	unique(v, path+".add", m.Add, name, "header name")
	v.maxItems(path+".set", len(m.Set), 16)
	unique(v, path+".set", m.Set, name, "header name")
	v.maxItems(path+".remove", len(m.Remove), 16)
	unique(v, path+".remove", m.Remove, func(s string) string { return s }, "header name")
	for i, r := range m.Remove {
		v.rule(fmt.Sprintf("%s.remove[%d]", path, i), r, headerRule)
	}
}

func (v *validator) mirror(path string, m *gwv1.HTTPRequestMirrorFilter) {
	if m == nil {
		return
	}
	v.backendRef(path+".backendRef", m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		v.errf(path, "only one of percent or fraction may be set")
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		v.errf(path+".percent", "must be between 0 and 100, got %d", *m.Percent)
	}
	if f := m.Fraction; f != nil {
		d := int32(100)
		if f.Denominator != nil {
			d = *f.Denominator
		}
		switch {
		case d < 1:
			v.errf(path+".fraction.denominator", "must be at least 1, got %d", d)
		case f.Numerator < 0:
			v.errf(path+".fraction.numerator", "must be at least 0, got %d", f.Numerator)
		case f.Numerator > d:
			v.errf(path+".fraction", "numerator %d must be less than or equal to denominator %d", f.Numerator, d)
		}
	}
}

// filterFields lists the fields of an HTTPRouteFilter by the filter type
// that goes with each.
func httpFilterFields(f gwv1.HTTPRouteFilter) map[gwv1.HTTPRouteFilterType]bool {
	return map[gwv1.HTTPRouteFilterType]bool{
		gwv1.HTTPRouteFilterRequestHeaderModifier:  f.RequestHeaderModifier != nil,
		gwv1.HTTPRouteFilterResponseHeaderModifier: f.ResponseHeaderModifier != nil,
		gwv1.HTTPRouteFilterRequestMirror:          f.RequestMirror != nil,
		gwv1.HTTPRouteFilterRequestRedirect:        f.RequestRedirect != nil,
		gwv1.HTTPRouteFilterURLRewrite:             f.URLRewrite != nil,
		gwv1.HTTPRouteFilterExtensionRef:           f.ExtensionRef != nil,
		gwv1.HTTPRouteFilterCORS:                   f.CORS != nil,
	}
}

var filterFieldNames = map[string]string{
	"RequestHeaderModifier":  "requestHeaderModifier",
	"ResponseHeaderModifier": "responseHeaderModifier",
	"RequestMirror":          "requestMirror",
	"RequestRedirect":        "requestRedirect",
	"URLRewrite":             "urlRewrite",
	"ExtensionRef":           "extensionRef",
	"CORS":                   "cors",
}

// filterShape checks that a filter sets the field of its type and no other.
func filterShape[T ~string](v *validator, path string, typ T, set map[T]bool, allowed []string) {
	if !slices.Contains(allowed, string(typ)) {
		v.errf(path+".type", "unsupported value %q: must be one of %s", typ, strings.Join(allowed, ", "))
		return
	}
	for _, t := range allowed {
		field := filterFieldNames[t]
		switch has := set[T(t)]; {
		case t == string(typ) && !has:
			v.errf(path+"."+field, "required for filter type %s", t)
		case t != string(typ) && has:
			v.errf(path+"."+field, "must not be set for filter type %s", typ)
		}
	}
}

// repeated reports filter types that appear more than once in a list where
// they must not.
func repeated[T ~string](v *validator, path string, types []T, once ...T) {
	for _, t := range once {
		if n := slices.Index(types, t); n >= 0 && slices.Index(types[n+1:], t) >= 0 {
			v.errf(path, "%s filter cannot be repeated", t)
		}
	}
}

var httpFilterTypes = []string{"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite", "ExtensionRef", "CORS"}

// httpFilters checks the filters of a rule or of a backendRef. matches are
// the rule's matches, for the ReplacePrefixMatch rule.
func (v *validator) httpFilters(path string, fs []gwv1.HTTPRouteFilter, matches []gwv1.HTTPRouteMatch, rulePath string) {
	v.maxItems(path, len(fs), 16)
	var types []gwv1.HTTPRouteFilterType
	for _, f := range fs {
		types = append(types, f.Type)
	}
	if slices.Contains(types, gwv1.HTTPRouteFilterRequestRedirect) && slices.Contains(types, gwv1.HTTPRouteFilterURLRewrite) {
		v.errf(path, "may have either a RequestRedirect or a URLRewrite filter, not both")
	}
	repeated(v, path, types, gwv1.HTTPRouteFilterCORS, gwv1.HTTPRouteFilterRequestHeaderModifier,
		gwv1.HTTPRouteFilterResponseHeaderModifier, gwv1.HTTPRouteFilterRequestRedirect, gwv1.HTTPRouteFilterURLRewrite)
	for i, f := range fs {
		p := fmt.Sprintf("%s[%d]", path, i)
		filterShape(v, p, f.Type, httpFilterFields(f), httpFilterTypes)
		v.headerModifier(p+".requestHeaderModifier", f.RequestHeaderModifier)
		v.headerModifier(p+".responseHeaderModifier", f.ResponseHeaderModifier)
		v.mirror(p+".requestMirror", f.RequestMirror)
		var pm *gwv1.HTTPPathModifier
		pmPath := ""
		if r := f.RequestRedirect; r != nil {
			if r.Scheme != nil && *r.Scheme != "http" && *r.Scheme != "https" {
				v.errf(p+".requestRedirect.scheme", "unsupported value %q: must be one of http, https", *r.Scheme)
			}
			if r.Hostname != nil {
				v.hostname(p+".requestRedirect.hostname", string(*r.Hostname))
			}
			if r.Port != nil {
				v.port(p+".requestRedirect.port", *r.Port)
			}
			if r.StatusCode != nil && !slices.Contains([]int{301, 302, 303, 307, 308}, *r.StatusCode) {
				v.errf(p+".requestRedirect.statusCode", "unsupported value %d: must be one of 301, 302, 303, 307, 308", *r.StatusCode)
			}
			pm, pmPath = r.Path, p+".requestRedirect.path"
		}
		if r := f.URLRewrite; r != nil {
			if r.Hostname != nil {
				v.hostname(p+".urlRewrite.hostname", string(*r.Hostname))
			}
			pm, pmPath = r.Path, p+".urlRewrite.path"
		}
		if pm != nil {
			switch {
			case pm.Type == gwv1.FullPathHTTPPathModifier && pm.ReplaceFullPath == nil:
				v.errf(pmPath+".replaceFullPath", "required when type is ReplaceFullPath")
			case pm.Type != gwv1.FullPathHTTPPathModifier && pm.ReplaceFullPath != nil:
				v.errf(pmPath+".type", "must be ReplaceFullPath when replaceFullPath is set")
			case pm.Type == gwv1.PrefixMatchHTTPPathModifier && pm.ReplacePrefixMatch == nil:
				v.errf(pmPath+".replacePrefixMatch", "required when type is ReplacePrefixMatch")
			case pm.Type != gwv1.PrefixMatchHTTPPathModifier && pm.ReplacePrefixMatch != nil:
				v.errf(pmPath+".type", "must be ReplacePrefixMatch when replacePrefixMatch is set")
			}
			// With the CRD's defaults applied (no matches: one PathPrefix "/"
			// match; no path or no path type: PathPrefix), exactly one
			// PathPrefix match.
			onePrefix := len(matches) == 0 || len(matches) == 1 &&
				(matches[0].Path == nil || matches[0].Path.Type == nil || *matches[0].Path.Type == gwv1.PathMatchPathPrefix)
			if pm.Type == gwv1.PrefixMatchHTTPPathModifier && pm.ReplacePrefixMatch != nil && !onePrefix {
				v.errf(pmPath+".replacePrefixMatch", "needs %s.matches to have exactly one match, of path type PathPrefix", rulePath)
			}
		}
		if c := f.CORS; c != nil {
			cp := p + ".cors"
			v.maxItems(cp+".allowOrigins", len(c.AllowOrigins), 64)
			v.maxItems(cp+".allowMethods", len(c.AllowMethods), 9)
			v.maxItems(cp+".allowHeaders", len(c.AllowHeaders), 64)
			v.maxItems(cp+".exposeHeaders", len(c.ExposeHeaders), 64)
			if slices.Contains(c.AllowOrigins, "*") && len(c.AllowOrigins) > 1 {
				v.errf(cp+".allowOrigins", `"*" cannot be combined with other origins`)
			}
			if slices.Contains(c.AllowMethods, "*") && len(c.AllowMethods) > 1 {
				v.errf(cp+".allowMethods", `"*" cannot be combined with other methods`)
			}
			if slices.Contains(c.AllowHeaders, "*") && len(c.AllowHeaders) > 1 {
				v.errf(cp+".allowHeaders", `"*" cannot be combined with other headers`)
			}
			unique(v, cp+".allowOrigins", c.AllowOrigins, func(o gwv1.CORSOrigin) string { return string(o) }, "origin")
			unique(v, cp+".allowMethods", c.AllowMethods, func(m gwv1.HTTPMethodWithWildcard) string { return string(m) }, "method")
			unique(v, cp+".allowHeaders", c.AllowHeaders, func(h gwv1.HTTPHeaderName) string { return string(h) }, "header")
			unique(v, cp+".exposeHeaders", c.ExposeHeaders, func(h gwv1.HTTPHeaderName) string { return string(h) }, "header")
			if c.MaxAge != 0 && c.MaxAge < 1 {
				v.errf(cp+".maxAge", "must be at least 1, got %d", c.MaxAge)
			}
		}
	}
}

var pathChars = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)

func (v *validator) pathMatch(path string, m *gwv1.HTTPPathMatch) {
	if m == nil || m.Value == nil {
		return
	}
	t := gwv1.PathMatchPathPrefix
	if m.Type != nil {
		t = *m.Type
	}
	val := *m.Value
	if len(val) > 1024 {
		v.errf(path+".value", "must be at most 1024 characters long, got %d", len(val))
	}
	if t == gwv1.PathMatchRegularExpression {
		v.regex(path+".value", val)
		return
	}
	if t != gwv1.PathMatchExact && t != gwv1.PathMatchPathPrefix {
		return // the enum rule reports it
	}
	bad := ""
	switch {
	case !strings.HasPrefix(val, "/"):
		bad = "must be an absolute path starting with '/'"
	case strings.Contains(val, "//"), strings.Contains(val, "/./"), strings.Contains(val, "/../"),
		strings.Contains(val, "%2f"), strings.Contains(val, "%2F"), strings.Contains(val, "#"):
		bad = "must not contain '//', '/./', '/../', '%2f', '%2F' or '#'"
	case strings.HasSuffix(val, "/.."), strings.HasSuffix(val, "/."):
		bad = "must not end with '/..' or '/.'"
	case !pathChars.MatchString(val):
		bad = "must contain only valid URL path characters (RFC 3986) and %-escapes"
	}
	if bad != "" {
		v.errf(path+".value", "invalid path %q for type %s: %s", val, t, bad)
	}
}

func (v *validator) httpRoute(o *gwv1.HTTPRoute) {
	v.routeCommon(o.Spec.CommonRouteSpec, o.Spec.Hostnames)
	rules := o.Spec.Rules
	v.maxItems("spec.rules", len(rules), 16)
	total := 0
	for i, r := range rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		total += len(r.Matches)
		v.maxItems(p+".matches", len(r.Matches), 64)
		for j, m := range r.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			v.pathMatch(mp+".path", m.Path)
			v.maxItems(mp+".headers", len(m.Headers), 16)
			unique(v, mp+".headers", m.Headers, func(h gwv1.HTTPHeaderMatch) string { return string(h.Name) }, "header name")
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.headers[%d].value", mp, k), h.Value)
				}
			}
			v.maxItems(mp+".queryParams", len(m.QueryParams), 16)
			unique(v, mp+".queryParams", m.QueryParams, func(q gwv1.HTTPQueryParamMatch) string { return string(q.Name) }, "query parameter name")
			for k, q := range m.QueryParams {
				if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.queryParams[%d].value", mp, k), q.Value)
				}
			}
		}
		v.httpFilters(p+".filters", r.Filters, r.Matches, p)
		if len(r.BackendRefs) > 0 && slices.ContainsFunc(r.Filters, func(f gwv1.HTTPRouteFilter) bool { return f.RequestRedirect != nil }) {
			v.errf(p, "a RequestRedirect filter must not be used together with backendRefs")
		}
		v.maxItems(p+".backendRefs", len(r.BackendRefs), 16)
		for j, b := range r.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			v.backendRef(bp, b.BackendObjectReference)
			v.weight(bp+".weight", b.Weight)
			v.httpFilters(bp+".filters", b.Filters, r.Matches, p)
		}
		if t := r.Timeouts; t != nil {
			v.timeouts(p+".timeouts", t)
		}
	}
	if total > 128 {
		v.errf("spec.rules", "must have at most 128 matches across all rules, got %d", total)
	}
}

func (v *validator) timeouts(path string, t *gwv1.HTTPRouteTimeouts) {
	if t.Request == nil || t.BackendRequest == nil {
		return
	}
	req, err1 := time.ParseDuration(string(*t.Request))
	be, err2 := time.ParseDuration(string(*t.BackendRequest))
	if err1 == nil && err2 == nil && req != 0 && be > req {
		v.errf(path+".backendRequest", "timeout %s cannot be longer than the request timeout %s", *t.BackendRequest, *t.Request)
	}
}

var (
	grpcFilterTypes = []string{"ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"}
	grpcServiceRE   = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func (v *validator) grpcRoute(o *gwv1.GRPCRoute) {
	v.routeCommon(o.Spec.CommonRouteSpec, o.Spec.Hostnames)
	rules := o.Spec.Rules
	v.maxItems("spec.rules", len(rules), 16)
	total := 0
	for i, r := range rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		total += len(r.Matches)
		v.maxItems(p+".matches", len(r.Matches), 64)
		for j, m := range r.Matches {
			mp := fmt.Sprintf("%s.matches[%d]", p, j)
			if mm := m.Method; mm != nil {
				regex := mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression
				if mm.Service == nil && mm.Method == nil {
					v.errf(mp+".method", "one or both of service and method must be set")
				}
				for _, f := range []struct {
					name string
					val  *string
					re   *regexp.Regexp
				}{{"service", mm.Service, grpcServiceRE}, {"method", mm.Method, grpcMethodRE}} {
					switch {
					case f.val == nil:
					case regex:
						v.regex(mp+".method."+f.name, *f.val)
					case !f.re.MatchString(*f.val):
						v.errf(mp+".method."+f.name, "invalid %s %q: must match %s", f.name, *f.val, f.re)
					}
				}
			}
			v.maxItems(mp+".headers", len(m.Headers), 16)
			unique(v, mp+".headers", m.Headers, func(h gwv1.GRPCHeaderMatch) string { return string(h.Name) }, "header name")
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression {
					v.regex(fmt.Sprintf("%s.headers[%d].value", mp, k), h.Value)
				}
			}
		}
		v.grpcFilters(p+".filters", r.Filters)
		v.maxItems(p+".backendRefs", len(r.BackendRefs), 16)
		for j, b := range r.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			v.backendRef(bp, b.BackendObjectReference)
			v.weight(bp+".weight", b.Weight)
			v.grpcFilters(bp+".filters", b.Filters)
		}
	}
	if total > 128 {
		v.errf("spec.rules", "must have at most 128 matches across all rules, got %d", total)
	}
}

func (v *validator) grpcFilters(path string, fs []gwv1.GRPCRouteFilter) {
	v.maxItems(path, len(fs), 16)
	var types []gwv1.GRPCRouteFilterType
	for _, f := range fs {
		types = append(types, f.Type)
	}
	repeated(v, path, types, gwv1.GRPCRouteFilterRequestHeaderModifier, gwv1.GRPCRouteFilterResponseHeaderModifier)
	for i, f := range fs {
		p := fmt.Sprintf("%s[%d]", path, i)
		filterShape(v, p, f.Type, map[gwv1.GRPCRouteFilterType]bool{
			gwv1.GRPCRouteFilterRequestHeaderModifier:  f.RequestHeaderModifier != nil,
			gwv1.GRPCRouteFilterResponseHeaderModifier: f.ResponseHeaderModifier != nil,
			gwv1.GRPCRouteFilterRequestMirror:          f.RequestMirror != nil,
			gwv1.GRPCRouteFilterExtensionRef:           f.ExtensionRef != nil,
		}, grpcFilterTypes)
		v.headerModifier(p+".requestHeaderModifier", f.RequestHeaderModifier)
		v.headerModifier(p+".responseHeaderModifier", f.ResponseHeaderModifier)
		v.mirror(p+".requestMirror", f.RequestMirror)
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
