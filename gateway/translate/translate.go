// Package translate turns Gateway API resources into sekisho's IR and the
// status of every object sekisho owns. Translate is a pure function: the same
// resources always give the same IR, status and problems.
//
// Route precedence within one virtual host follows the Gateway API spec:
// Exact paths first, then RegularExpression paths (longer expressions first;
// the spec leaves their place to implementations, and putting them before
// prefixes keeps a catch-all PathPrefix "/" from hiding them), then PathPrefix
// paths (longest first); ties go to matches with a method, then with more
// header matches, then more query matches, then the oldest route, then
// namespace/name in alphabetical order, then rule and match order. A request
// is served by the virtual host with the most specific matching domain only.
//
// GRPCRoute matches become path matches and share the same order: service and
// method Exact is an Exact path "/<service>/<method>", service only is a
// PathPrefix "/<service>/", method only (or any RegularExpression) is a
// RegularExpression path. So a method-only match ranks before a service-only
// match, where the GRPCRoute spec would rank the service first.
//
// Rules with unsupported or invalid values (filters, regular expressions,
// durations, ...) are dropped: the route stays Accepted with
// PartiallyInvalid=True when other rules remain, and is Accepted=False
// (UnsupportedValue) when none do.
package translate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	"github.com/sekisho/sekisho/ir"
)

// Options tunes Translate.
type Options struct {
	// ControllerName is the GatewayClass controllerName served; default resource.ControllerName.
	ControllerName string
	// DefaultAddresses are reported in Gateway status when the Gateway has no
	// spec.addresses; file mode passes "127.0.0.1".
	DefaultAddresses []string
	// Addresses, when set, gives the addresses of a Gateway that sets none
	// (in Kubernetes mode: those of the proxy Service provisioned for it),
	// in place of DefaultAddresses. None yet: the Gateway is served, but not
	// Programmed (AddressNotAssigned) until it has one.
	Addresses func(namespace, name string) []string
	// AuthzService and RateLimitService are where proxies reach the external
	// authorization and rate-limit services (every replica). Empty: not
	// available, so policies that need them are not Accepted.
	AuthzService     []ir.ServiceAddress
	RateLimitService []ir.ServiceAddress
}

// Result is what Translate computed.
type Result struct {
	IR     *ir.Config
	Status *status.Set
	// Problems is every condition that is not OK, located by source, object and
	// field, sorted. It is also what `sekisho validate` prints.
	Problems []resource.Problem
}

const gatewayGroup = gwv1.GroupName

type nsName = types.NamespacedName

type probKey struct {
	obj   resource.ObjectKey
	field string
	msg   string
}

type translator struct {
	res            *resource.Resources
	opts           Options
	controllerName gwv1.GatewayController
	status         *status.Set
	problems       []resource.Problem
	probSeen       map[probKey]bool

	classes     map[string]*gwv1.GatewayClass // ours only
	gateways    map[nsName]*gatewayCtx
	gwOrder     []*gatewayCtx
	services    map[nsName]*corev1.Service
	epSlices    map[nsName][]*discoveryv1.EndpointSlice // by namespace/service-name
	secrets     map[nsName]*corev1.Secret
	nsLabels    map[string]map[string]string
	nsLabelSets map[string]labels.Set
	grants      map[string][]*gwv1.ReferenceGrant // by namespace
	regexErrs   map[string]error
	clusters    map[string]*ir.Cluster
}

// Translate computes the IR, the status and the problems of res. It never
// fails: what cannot be translated is reported in the status and as problems,
// and the rest is translated.
func Translate(res *resource.Resources, opts Options) *Result {
	if res == nil {
		res = &resource.Resources{}
	}
	if opts.ControllerName == "" {
		opts.ControllerName = resource.ControllerName
	}
	t := &translator{
		res:            res,
		opts:           opts,
		controllerName: gwv1.GatewayController(opts.ControllerName),
		status:         status.NewSet(),
		probSeen:       map[probKey]bool{},
		classes:        map[string]*gwv1.GatewayClass{},
		gateways:       map[nsName]*gatewayCtx{},
		services:       map[nsName]*corev1.Service{},
		epSlices:       map[nsName][]*discoveryv1.EndpointSlice{},
		secrets:        map[nsName]*corev1.Secret{},
		nsLabels:       map[string]map[string]string{},
		nsLabelSets:    map[string]labels.Set{},
		grants:         map[string][]*gwv1.ReferenceGrant{},
		regexErrs:      map[string]error{},
		clusters:       map[string]*ir.Cluster{},
	}
	t.index()
	t.translateClasses()
	t.translateGateways()
	t.translateRoutes()
	cfg := t.build()
	t.attachPolicies(cfg)
	t.finishGateways()
	slices.SortStableFunc(t.problems, compareProblems)
	return &Result{IR: cfg, Status: t.status, Problems: t.problems}
}

func compareProblems(a, b resource.Problem) int {
	return cmp.Or(
		strings.Compare(a.Source.File, b.Source.File),
		cmp.Compare(a.Source.Doc, b.Source.Doc),
		strings.Compare(a.Object.Kind, b.Object.Kind),
		strings.Compare(a.Object.Namespace, b.Object.Namespace),
		strings.Compare(a.Object.Name, b.Object.Name),
		strings.Compare(a.Field, b.Field),
		strings.Compare(a.Msg, b.Msg),
	)
}

func (t *translator) index() {
	for _, s := range t.res.Services {
		if s != nil {
			t.services[nsName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	for _, es := range t.res.EndpointSlices {
		if es == nil {
			continue
		}
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := nsName{Namespace: es.Namespace, Name: svc}
		t.epSlices[k] = append(t.epSlices[k], es)
	}
	for _, s := range t.res.Secrets {
		if s != nil {
			t.secrets[nsName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	for _, n := range t.res.Namespaces {
		if n != nil {
			t.nsLabels[n.Name] = n.Labels
		}
	}
	for _, g := range t.res.ReferenceGrants {
		if g != nil {
			t.grants[g.Namespace] = append(t.grants[g.Namespace], g)
		}
	}
}

// namespaceLabels returns a namespace's labels, with the
// kubernetes.io/metadata.name label the API server always sets.
func (t *translator) namespaceLabels(ns string) labels.Set {
	if s, ok := t.nsLabelSets[ns]; ok {
		return s
	}
	l := t.nsLabels[ns]
	out := make(labels.Set, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[corev1.LabelMetadataName] = ns
	t.nsLabelSets[ns] = out
	return out
}

// granted says whether a ReferenceGrant in toNS lets objects of fromKind in
// fromNS refer to the object toGroup/toKind/toName.
func (t *translator) granted(fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	for _, g := range t.grants[toNS] {
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == gatewayGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
				break
			}
		}
		if !from {
			continue
		}
		for _, to := range g.Spec.To {
			if string(to.Group) == toGroup && string(to.Kind) == toKind && (to.Name == nil || *to.Name == "" || string(*to.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// checkRegex compiles an RE2 expression once and returns why it is invalid.
func (t *translator) checkRegex(expr string) error {
	if err, ok := t.regexErrs[expr]; ok {
		return err
	}
	_, err := regexp.Compile(expr)
	if err != nil {
		err = fmt.Errorf("compiling regular expression %q: %w", expr, err)
	}
	t.regexErrs[expr] = err
	return err
}

// problem records a problem once.
func (t *translator) problem(obj resource.ObjectKey, field, msg string, warning bool) {
	k := probKey{obj: obj, field: field, msg: msg}
	if t.probSeen[k] {
		return
	}
	t.probSeen[k] = true
	t.problems = append(t.problems, resource.Problem{
		Source:  t.res.Sources[obj],
		Object:  obj,
		Field:   field,
		Msg:     msg,
		Warning: warning,
	})
}

func condition(typ string, ok bool, reason, msg string, gen int64) metav1.Condition {
	st := metav1.ConditionTrue
	if !ok {
		st = metav1.ConditionFalse
	}
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen}
}

func sortConditions(c []metav1.Condition) {
	slices.SortStableFunc(c, func(a, b metav1.Condition) int { return strings.Compare(a.Type, b.Type) })
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
