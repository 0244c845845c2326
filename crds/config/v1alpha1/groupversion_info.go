// Package v1alpha1 holds the config.sekisho.dev/v1alpha1 API: GatewayClassConfig, the
// parameters a GatewayClass points at with spec.parametersRef to say how sekisho
// provisions the proxies of that class's Gateways.
//
// +kubebuilder:object:generate=true
// +groupName=config.sekisho.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of this package's kinds.
const GroupName = "config.sekisho.dev"

var (
	// GroupVersion is the group and version of this package's kinds.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of a resource of this group, such as
// "gatewayclassconfigs".
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&GatewayClassConfig{},
		&GatewayClassConfigList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
