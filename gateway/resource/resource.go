// Package resource holds the Kubernetes objects sekisho translates, as one
// provider (a folder of YAML, or the Kubernetes API) hands them to the
// translator, and where each came from, so that every problem can name its
// file, object and field.
package resource

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
)

// ControllerName is the GatewayClass controllerName sekisho serves.
const ControllerName = "sekisho.dev/gateway-controller"

// Resources is one consistent view of every object the translator reads.
// Every object carries its apiVersion/kind in TypeMeta. Slices are in the order
// the provider read them; the translator does not depend on that order.
type Resources struct {
	GatewayClasses  []*gwv1.GatewayClass
	Gateways        []*gwv1.Gateway
	HTTPRoutes      []*gwv1.HTTPRoute
	GRPCRoutes      []*gwv1.GRPCRoute
	ReferenceGrants []*gwv1.ReferenceGrant // v1beta1 objects are converted to v1 by the provider
	Services        []*corev1.Service
	EndpointSlices  []*discoveryv1.EndpointSlice
	Secrets         []*corev1.Secret
	Namespaces      []*corev1.Namespace
	// GatewayClassConfigs are sekisho's GatewayClass parameters.
	GatewayClassConfigs []*configv1alpha1.GatewayClassConfig
	// RateLimitPolicies and SecurityPolicies are sekisho's policies.
	RateLimitPolicies []*policyv1alpha1.RateLimitPolicy
	SecurityPolicies  []*policyv1alpha1.SecurityPolicy

	// Sources says where each object was read from; the file provider fills it,
	// the Kubernetes provider leaves it empty.
	Sources map[ObjectKey]Source

	// Content holds, for each object of a custom resource the file provider
	// decoded, the object as the API server would have it before validation
	// (unknown fields pruned, defaults applied), which the file provider
	// validates against the object's CRD. Others leave it empty.
	Content map[ObjectKey]map[string]any
}

// ObjectKey names one object.
type ObjectKey struct {
	Kind      string // e.g. "HTTPRoute"
	Namespace string // "" for cluster-scoped kinds
	Name      string
}

func (k ObjectKey) String() string {
	if k.Namespace == "" {
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// Source is where an object was read from.
type Source struct {
	File string // path as given to the provider
	Doc  int    // index of the YAML document in the file, from 0
}

func (s Source) String() string {
	if s.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d", s.File, s.Doc)
}

// Problem is one thing wrong with the input, located as precisely as known.
type Problem struct {
	Source Source
	Object ObjectKey // zero when the document could not be decoded that far
	Field  string    // JSON path, e.g. "spec.rules[0].matches[1].path.value"; may be empty
	Msg    string
	// Warning problems do not stop the object from being used.
	Warning bool
}

// String formats a problem as "FILE:DOC-INDEX: Kind ns/name: field: message",
// leaving out the parts that are not known.
func (p Problem) String() string {
	s := ""
	if src := p.Source.String(); src != "" {
		s = src + ": "
	}
	if p.Object.Kind != "" {
		s += p.Object.String() + ": "
	}
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s + p.Msg
}
