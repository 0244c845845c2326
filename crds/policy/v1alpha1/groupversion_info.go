// Package v1alpha1 holds the policy.sekisho.dev/v1alpha1 API: the policies that
// attach to Gateways and routes (Gateway API policy attachment, GEP-713).
//
//   - RateLimitPolicy: global quotas counted by the rate-limit service across
//     every proxy and replica, and local per-proxy limits.
//   - SecurityPolicy: JWT validation, the OIDC login flow and authorization
//     rules, enforced by the external authorization service.
//
// +kubebuilder:object:generate=true
// +groupName=policy.sekisho.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of this package's kinds.
const GroupName = "policy.sekisho.dev"

// Kinds of this package.
const (
	RateLimitPolicyKind = "RateLimitPolicy"
	SecurityPolicyKind  = "SecurityPolicy"
)

var (
	// GroupVersion is the group and version of this package's kinds.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of a resource of this group, such as
// "ratelimitpolicies".
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&RateLimitPolicy{},
		&RateLimitPolicyList{},
		&SecurityPolicy{},
		&SecurityPolicyList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}

// FailureMode says what a proxy does with a request when the service that
// enforces a policy cannot answer in time.
//
// +kubebuilder:validation:Enum=Open;Closed
type FailureMode string

const (
	// FailureModeOpen lets the request through.
	FailureModeOpen FailureMode = "Open"
	// FailureModeClosed refuses the request (503).
	FailureModeClosed FailureMode = "Closed"
)
