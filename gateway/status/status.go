// Package status holds the status sekisho computes for the Gateway API objects
// it owns: what the translator decided, before a writer (the Kubernetes
// provider, or `sekisho status`) records or shows it.
package status

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Set is the status of every object the translator owns, keyed by
// namespace/name (GatewayClasses are cluster-scoped: Namespace is empty).
// Conditions carry observedGeneration = metadata.generation and a zero
// lastTransitionTime: the writer fills it in when a condition changes.
type Set struct {
	GatewayClasses map[types.NamespacedName]*gwv1.GatewayClassStatus
	Gateways       map[types.NamespacedName]*gwv1.GatewayStatus
	HTTPRoutes     map[types.NamespacedName]*gwv1.HTTPRouteStatus
	GRPCRoutes     map[types.NamespacedName]*gwv1.GRPCRouteStatus
	// Policies is the status of sekisho's policies, by kind
	// (RateLimitPolicy, SecurityPolicy) and namespace/name: one ancestor per
	// Gateway the policy reaches.
	Policies map[PolicyKey]*gwv1.PolicyStatus
}

// PolicyKey names a policy.
type PolicyKey struct {
	Kind      string
	Namespace string
	Name      string
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{
		GatewayClasses: map[types.NamespacedName]*gwv1.GatewayClassStatus{},
		Gateways:       map[types.NamespacedName]*gwv1.GatewayStatus{},
		HTTPRoutes:     map[types.NamespacedName]*gwv1.HTTPRouteStatus{},
		GRPCRoutes:     map[types.NamespacedName]*gwv1.GRPCRouteStatus{},
		Policies:       map[PolicyKey]*gwv1.PolicyStatus{},
	}
}

// Key returns the map key of an object.
func Key(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

// Row is one condition of one object, as WriteTable prints it.
type Row struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`   // namespace/name, or name for cluster-scoped kinds
	Parent  string `json:"parent"` // route parent or listener name; "-" for the object itself
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

var kindOrder = map[string]int{"GatewayClass": 0, "Gateway": 1, "HTTPRoute": 2, "GRPCRoute": 3, "RateLimitPolicy": 4, "SecurityPolicy": 5}

// Rows returns one Row per condition, sorted by kind, name, parent and type.
func (s *Set) Rows() []Row {
	var rows []Row
	add := func(kind string, key types.NamespacedName, parent string, conds []metav1.Condition) {
		name := key.Name
		if key.Namespace != "" {
			name = key.Namespace + "/" + key.Name
		}
		for _, c := range conds {
			rows = append(rows, Row{Kind: kind, Name: name, Parent: parent, Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message})
		}
	}
	for k, st := range s.GatewayClasses {
		add("GatewayClass", k, "-", st.Conditions)
	}
	for k, st := range s.Gateways {
		add("Gateway", k, "-", st.Conditions)
		for _, l := range st.Listeners {
			add("Gateway", k, string(l.Name), l.Conditions)
		}
	}
	routeRows := func(kind string, k types.NamespacedName, parents []gwv1.RouteParentStatus) {
		for _, p := range parents {
			add(kind, k, ParentString(p.ParentRef, k.Namespace), p.Conditions)
		}
	}
	for k, st := range s.HTTPRoutes {
		routeRows("HTTPRoute", k, st.Parents)
	}
	for k, st := range s.GRPCRoutes {
		routeRows("GRPCRoute", k, st.Parents)
	}
	for k, st := range s.Policies {
		for _, a := range st.Ancestors {
			add(k.Kind, Key(k.Namespace, k.Name), ParentString(a.AncestorRef, k.Namespace), a.Conditions)
		}
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		return cmp.Or(
			cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]),
			strings.Compare(a.Name, b.Name),
			cmp.Compare(parentRank(a.Parent), parentRank(b.Parent)),
			strings.Compare(a.Parent, b.Parent),
			strings.Compare(a.Type, b.Type),
		)
	})
	return rows
}

func parentRank(p string) int {
	if p == "-" {
		return 0
	}
	return 1
}

// ParentString names a route's parentRef as "namespace/name", followed by
// "/sectionName" and ":port" when they are set. routeNamespace is the default
// namespace.
func ParentString(ref gwv1.ParentReference, routeNamespace string) string {
	ns := routeNamespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	s := ns + "/" + string(ref.Name)
	if ref.Kind != nil && *ref.Kind != "" && *ref.Kind != "Gateway" {
		s = string(*ref.Kind) + ":" + s
	}
	if ref.SectionName != nil && *ref.SectionName != "" {
		s += "/" + string(*ref.SectionName)
	}
	if ref.Port != nil {
		s += ":" + strconv.Itoa(int(*ref.Port))
	}
	return s
}

// WriteTable prints one aligned row per condition: KIND, NAMESPACE/NAME,
// PARENT, TYPE, STATUS, REASON, MESSAGE.
func (s *Set) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE/NAME\tPARENT\tTYPE\tSTATUS\tREASON\tMESSAGE")
	for _, r := range s.Rows() {
		msg := strings.ReplaceAll(r.Message, "\n", " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Name, r.Parent, r.Type, r.Status, r.Reason, msg)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the status table: %w", err)
	}
	return nil
}
