package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GatewayClassConfigKind is the kind a GatewayClass names in spec.parametersRef
// (with group config.sekisho.dev, a name and a namespace).
const GatewayClassConfigKind = "GatewayClassConfig"

// Defaults the API server fills in; code that reads a GatewayClassConfig that
// did not come through an API server (a file, a test) applies the same ones.
const (
	// DefaultProxyReplicas is the number of proxy Pods per Gateway.
	DefaultProxyReplicas int32 = 1
	// DefaultProxyServiceType is the type of each Gateway's proxy Service.
	DefaultProxyServiceType = corev1.ServiceTypeLoadBalancer
	// DefaultLogLevel is the proxies' log level.
	DefaultLogLevel = LogLevelInfo
	// DefaultAccessLog says whether proxies log each request.
	DefaultAccessLog = true
	// DefaultXDSAddress is the controller's xDS Service as the Helm chart
	// installs it with its default release name and namespace.
	DefaultXDSAddress = "sekisho-controller.sekisho-system.svc:18000"
)

// GatewayClassConfig says how sekisho provisions the proxies of the Gateways of a
// GatewayClass: the GatewayClass names it in spec.parametersRef. It is namespaced,
// so the reference must carry a namespace; it usually lives beside the controller.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=sekisho,shortName=gcconfig
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.proxy.replicas`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.proxy.service.type`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GatewayClassConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the proxy provisioning configuration.
	//
	// +optional
	// +kubebuilder:default={}
	Spec GatewayClassConfigSpec `json:"spec,omitempty"`

	// Status is written by the controller.
	//
	// +optional
	Status GatewayClassConfigStatus `json:"status,omitempty"`
}

// GatewayClassConfigSpec is what a GatewayClassConfig configures. Every field is
// optional; an empty spec gives each Gateway one proxy behind a LoadBalancer
// Service, dialling the controller where the controller says.
type GatewayClassConfigSpec struct {
	// Proxy configures the Deployment and Service provisioned for each Gateway.
	//
	// +optional
	// +kubebuilder:default={}
	Proxy *ProxyConfig `json:"proxy,omitempty"`

	// XDS configures how proxies reach the controller's xDS server.
	//
	// +optional
	// +kubebuilder:default={}
	XDS *XDSConfig `json:"xds,omitempty"`

	// RateLimit configures the global rate-limit service that
	// RateLimitPolicies use.
	//
	// +optional
	RateLimit *RateLimitConfig `json:"rateLimit,omitempty"`
}

// ProxyConfig configures each Gateway's proxy Deployment and Service.
type ProxyConfig struct {
	// Image is the proxy container image. Defaults to the controller's own
	// image (the sekisho binary runs as `sekisho proxy`).
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains(' ')",message="image must not contain spaces"
	Image *string `json:"image,omitempty"`

	// ImagePullPolicy is the proxy container's pull policy. Defaults to the
	// Kubernetes default for the image's tag.
	//
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy *corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Replicas is the number of proxy Pods per Gateway. 0 scales the proxies
	// down while keeping their Deployment and Service.
	//
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources are the proxy container's compute resources.
	//
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Service configures each Gateway's proxy Service.
	//
	// +optional
	// +kubebuilder:default={}
	Service *ProxyServiceConfig `json:"service,omitempty"`

	// PodAnnotations are added to each proxy Pod.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.matches(r\"\"\"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$\"\"\"))",message="annotation keys must be an optional DNS subdomain prefix and '/', then a name of at most 63 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.split('/')[0].size() <= 253)",message="an annotation key's prefix must be at most 253 characters"
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// PodLabels are added to each proxy Pod. The labels sekisho selects its
	// proxies by take precedence over these.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.matches(r\"\"\"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$\"\"\"))",message="label keys must be an optional DNS subdomain prefix and '/', then a name of at most 63 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.split('/')[0].size() <= 253)",message="a label key's prefix must be at most 253 characters"
	PodLabels map[string]LabelValue `json:"podLabels,omitempty"`

	// NodeSelector constrains the nodes proxy Pods run on.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations let proxy Pods run on tainted nodes.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// LogLevel is the proxies' log level.
	//
	// +optional
	// +kubebuilder:default=info
	LogLevel *LogLevel `json:"logLevel,omitempty"`

	// AccessLog says whether proxies log each request (one structured line
	// per request).
	//
	// +optional
	// +kubebuilder:default=true
	AccessLog *bool `json:"accessLog,omitempty"`
}

// LabelValue is the value of a Kubernetes label: at most 63 characters,
// alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type LabelValue string

// LogLevel is a log level of sekisho's processes.
//
// +kubebuilder:validation:Enum=debug;info;warn;error
type LogLevel string

// The log levels.
const (
	LogLevelDebug LogLevel = "debug"
	LogLevelInfo  LogLevel = "info"
	LogLevelWarn  LogLevel = "warn"
	LogLevelError LogLevel = "error"
)

// ProxyServiceConfig configures each Gateway's proxy Service.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.externalTrafficPolicy) && has(self.type) && self.type == 'ClusterIP')",message="externalTrafficPolicy applies only to LoadBalancer and NodePort Services"
type ProxyServiceConfig struct {
	// Type is the Service type.
	//
	// +optional
	// +kubebuilder:default=LoadBalancer
	// +kubebuilder:validation:Enum=LoadBalancer;NodePort;ClusterIP
	Type *corev1.ServiceType `json:"type,omitempty"`

	// Annotations are added to the Service (a cloud load balancer's settings,
	// for example).
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.matches(r\"\"\"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$\"\"\"))",message="annotation keys must be an optional DNS subdomain prefix and '/', then a name of at most 63 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(key, key.split('/')[0].size() <= 253)",message="an annotation key's prefix must be at most 253 characters"
	Annotations map[string]string `json:"annotations,omitempty"`

	// ExternalTrafficPolicy is the Service's externalTrafficPolicy: Local keeps
	// client source addresses and skips a second hop. Only for LoadBalancer and
	// NodePort Services.
	//
	// +optional
	// +kubebuilder:validation:Enum=Cluster;Local
	ExternalTrafficPolicy *corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// XDSConfig says how proxies reach the controller's xDS server.
type XDSConfig struct {
	// Address is the host:port proxies dial for their configuration over ADS.
	// Unset: the controller's own --proxy-xds-address (by default its Service
	// in its namespace).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=260
	// +kubebuilder:validation:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$`
	Address *string `json:"address,omitempty"`
}

// RateLimitConfig configures the global rate-limit service.
type RateLimitConfig struct {
	// Redis is the store shared counters are kept in. Without it, counters
	// are kept in each rate-limit replica's memory.
	//
	// +optional
	Redis *RedisConfig `json:"redis,omitempty"`
}

// RedisConfig locates a Redis server.
type RedisConfig struct {
	// Address is the Redis server's host:port.
	//
	// +kubebuilder:validation:MaxLength=260
	// +kubebuilder:validation:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$`
	Address string `json:"address"`
}

// GatewayClassConfigStatus is the observed state of a GatewayClassConfig.
type GatewayClassConfigStatus struct {
	// Conditions describe the GatewayClassConfig's state. Accepted is True
	// when the controller can use it for a GatewayClass of its own.
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types and reasons of a GatewayClassConfig.
const (
	// ConditionAccepted is True when the controller accepts the
	// GatewayClassConfig for a GatewayClass it controls.
	ConditionAccepted = "Accepted"

	// ReasonAccepted goes with Accepted=True.
	ReasonAccepted = "Accepted"
	// ReasonInvalid goes with Accepted=False: the spec cannot be used.
	ReasonInvalid = "Invalid"
)

// GatewayClassConfigList is a list of GatewayClassConfigs.
//
// +kubebuilder:object:root=true
type GatewayClassConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GatewayClassConfig `json:"items"`
}
