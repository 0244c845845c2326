package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RateLimitPolicy limits the requests of the Gateways and routes it targets.
// Global rules are counted by the rate-limit service, so a limit holds across
// every proxy and every rate-limit replica (a mesh-wide quota); local rules are
// counted by each proxy on its own, with no network hop.
//
// A policy that targets a route takes precedence over one that targets the
// route's Gateway. Two policies that target the same object conflict: the
// older one (by creation time, then namespace/name) is used and the other is
// not Accepted.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=sekisho,shortName=rlp
// +kubebuilder:metadata:labels="gateway.networking.k8s.io/policy=Direct"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says what to limit.
	Spec RateLimitPolicySpec `json:"spec"`

	// Status says, for each Gateway the policy reaches, whether it is applied.
	//
	// +optional
	Status gwv1.PolicyStatus `json:"status,omitempty"`
}

// RateLimitPolicySpec is what a RateLimitPolicy limits.
//
// +kubebuilder:validation:XValidation:rule="has(self.global) || has(self.local)",message="global or local must be set"
type RateLimitPolicySpec struct {
	// TargetRefs are the Gateways, HTTPRoutes and GRPCRoutes (in the policy's
	// namespace) the policy applies to.
	//
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])",message="targetRefs may name only Gateways, HTTPRoutes and GRPCRoutes of group gateway.networking.k8s.io"
	TargetRefs []gwv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// FailureMode says what happens to a request when the rate-limit service
	// cannot answer in time: Open lets it through, Closed answers 503.
	//
	// +optional
	// +kubebuilder:default=Open
	FailureMode *FailureMode `json:"failureMode,omitempty"`

	// Global rules are counted by the rate-limit service, across every proxy.
	//
	// +optional
	Global *GlobalRateLimit `json:"global,omitempty"`

	// Local rules are counted by each proxy on its own.
	//
	// +optional
	Local *LocalRateLimit `json:"local,omitempty"`
}

// GlobalRateLimit is the policy's global rules. A request is refused (429)
// when any rule that applies to it is over its limit.
type GlobalRateLimit struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Rules []GlobalRateLimitRule `json:"rules"`
}

// GlobalRateLimitRule is one limit and the requests it counts.
//
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || (has(self.algorithm) && self.algorithm == 'TokenBucket')",message="burst is for the TokenBucket algorithm only"
type GlobalRateLimitRule struct {
	// Name identifies the rule in the policy, in metrics and in logs.
	//
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Match says which requests the rule counts: every listed condition must
	// hold. With no match, the rule counts every request.
	//
	// +optional
	Match *RateLimitMatch `json:"match,omitempty"`

	// Limit is how many requests the rule admits per unit of time.
	Limit RateLimitValue `json:"limit"`

	// Algorithm is how requests are counted against the limit.
	//
	// +optional
	// +kubebuilder:default=FixedWindow
	Algorithm *RateLimitAlgorithm `json:"algorithm,omitempty"`

	// Burst is the bucket's capacity for TokenBucket (default: the limit's
	// requests): how many requests may come at once after a quiet period.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`

	// Cost is how much each request counts.
	//
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Cost *int32 `json:"cost,omitempty"`

	// Shared counts the requests of every targeted route against one counter.
	// When false, each targeted route (each route attached to a targeted
	// Gateway) has its own.
	//
	// +optional
	// +kubebuilder:default=false
	Shared *bool `json:"shared,omitempty"`

	// Shadow counts requests and reports the ones over the limit (metrics,
	// the RateLimit-* headers) but never refuses them: a way to try a limit
	// before enforcing it.
	//
	// +optional
	// +kubebuilder:default=false
	Shadow *bool `json:"shadow,omitempty"`
}

// RateLimitMatch selects the requests a rule counts.
type RateLimitMatch struct {
	// Headers: an Exact or RegularExpression entry must match the header's
	// value; a Distinct entry gives each value of the header its own counter
	// (requests without the header are not counted by the rule).
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Headers []RateLimitHeaderMatch `json:"headers,omitempty"`

	// Methods: the request's method must be one of these.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=9
	Methods []gwv1.HTTPMethod `json:"methods,omitempty"`

	// Path: the request's (normalised) path must match.
	//
	// +optional
	Path *gwv1.HTTPPathMatch `json:"path,omitempty"`

	// ClientCIDRs: the client's address must be inside one of these. Exact
	// entries share one counter; Distinct entries give each client address
	// its own counter.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ClientCIDRs []CIDRMatch `json:"clientCIDRs,omitempty"`

	// Claims give each value of a claim of the JWT that a SecurityPolicy on
	// the same route validated its own counter (requests without the claim
	// are not counted by the rule).
	//
	// +optional
	// +kubebuilder:validation:MaxItems=4
	Claims []ClaimMatch `json:"claims,omitempty"`
}

// RateLimitHeaderMatch matches one request header.
//
// +kubebuilder:validation:XValidation:rule="(has(self.type) && self.type == 'Distinct') ? !has(self.value) : has(self.value)",message="value is required for Exact and RegularExpression, and not allowed for Distinct"
type RateLimitHeaderMatch struct {
	// Name of the header (case-insensitive).
	Name gwv1.HTTPHeaderName `json:"name"`

	// Type is how the header is matched.
	//
	// +optional
	// +kubebuilder:default=Exact
	Type *MatchType `json:"type,omitempty"`

	// Value to match (Exact, RegularExpression: RE2, whole value).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
}

// MatchType is how a value is matched.
//
// +kubebuilder:validation:Enum=Exact;RegularExpression;Distinct
type MatchType string

const (
	MatchExact             MatchType = "Exact"
	MatchRegularExpression MatchType = "RegularExpression"
	MatchDistinct          MatchType = "Distinct"
)

// CIDRMatch matches the client's address.
type CIDRMatch struct {
	// Value is an IPv4 or IPv6 CIDR, e.g. 10.0.0.0/8.
	//
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value"`

	// Type: Exact (default) shares one counter between every address inside
	// the CIDR; Distinct gives each address its own.
	//
	// +optional
	// +kubebuilder:default=Exact
	// +kubebuilder:validation:Enum=Exact;Distinct
	Type *MatchType `json:"type,omitempty"`
}

// ClaimMatch names a JWT claim.
type ClaimMatch struct {
	// Name of a top-level claim, e.g. sub.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Type: Distinct, a counter per value of the claim.
	//
	// +optional
	// +kubebuilder:default=Distinct
	// +kubebuilder:validation:Enum=Distinct
	Type *MatchType `json:"type,omitempty"`
}

// RateLimitValue is a number of requests per unit of time.
type RateLimitValue struct {
	// +kubebuilder:validation:Minimum=1
	Requests int32 `json:"requests"`

	Unit RateLimitUnit `json:"unit"`
}

// RateLimitUnit is the period of a limit.
//
// +kubebuilder:validation:Enum=Second;Minute;Hour;Day
type RateLimitUnit string

const (
	UnitSecond RateLimitUnit = "Second"
	UnitMinute RateLimitUnit = "Minute"
	UnitHour   RateLimitUnit = "Hour"
	UnitDay    RateLimitUnit = "Day"
)

// RateLimitAlgorithm is how requests are counted.
//
// FixedWindow counts per calendar window of the unit (at most the limit per
// window; a client may spend two windows' worth around a boundary).
// SlidingWindow weighs the previous window's count by how much of it is
// still inside the last unit of time, which smooths that boundary.
// TokenBucket refills the limit's requests continuously over the unit, up to
// burst.
//
// +kubebuilder:validation:Enum=FixedWindow;SlidingWindow;TokenBucket
type RateLimitAlgorithm string

const (
	FixedWindow   RateLimitAlgorithm = "FixedWindow"
	SlidingWindow RateLimitAlgorithm = "SlidingWindow"
	TokenBucket   RateLimitAlgorithm = "TokenBucket"
)

// LocalRateLimit is the policy's per-proxy rules. Each rule is a token
// bucket per proxy and per targeted route; a request needs a token from every
// rule.
type LocalRateLimit struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=name
	Rules []LocalRateLimitRule `json:"rules"`
}

// LocalRateLimitRule is one per-proxy limit.
type LocalRateLimitRule struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	Limit RateLimitValue `json:"limit"`
}

// RateLimitPolicyList is a list of RateLimitPolicies.
//
// +kubebuilder:object:root=true
type RateLimitPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RateLimitPolicy `json:"items"`
}
