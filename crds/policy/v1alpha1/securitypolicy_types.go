package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// SecurityPolicy says who may reach the Gateways and routes it targets: JWTs
// validated against the issuer's keys, a browser login through an OpenID
// Connect provider, and authorization rules on the identity and the request.
// The external authorization service enforces it for every proxy.
//
// A policy that targets a route takes precedence over one that targets the
// route's Gateway. Two policies that target the same object conflict: the
// older one (by creation time, then namespace/name) is used and the other is
// not Accepted.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=sekisho,shortName=secpol
// +kubebuilder:metadata:labels="gateway.networking.k8s.io/policy=Direct"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecurityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says who may reach the targets.
	Spec SecurityPolicySpec `json:"spec"`

	// Status says, for each Gateway the policy reaches, whether it is applied.
	//
	// +optional
	Status gwv1.PolicyStatus `json:"status,omitempty"`
}

// SecurityPolicySpec is what a SecurityPolicy enforces.
//
// +kubebuilder:validation:XValidation:rule="has(self.jwt) || has(self.oidc) || has(self.authorization)",message="at least one of jwt, oidc and authorization must be set"
type SecurityPolicySpec struct {
	// TargetRefs are the Gateways, HTTPRoutes and GRPCRoutes (in the policy's
	// namespace) the policy applies to.
	//
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])",message="targetRefs may name only Gateways, HTTPRoutes and GRPCRoutes of group gateway.networking.k8s.io"
	TargetRefs []gwv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// FailureMode says what happens to a request when the authorization
	// service cannot be reached: Closed (the default) answers 503, Open lets
	// it through.
	//
	// +optional
	// +kubebuilder:default=Closed
	FailureMode *FailureMode `json:"failureMode,omitempty"`

	// JWT validates bearer tokens.
	//
	// +optional
	JWT *JWT `json:"jwt,omitempty"`

	// OIDC logs browsers in through an OpenID Connect provider
	// (authorization-code flow with PKCE) and keeps the session in an
	// encrypted cookie.
	//
	// +optional
	OIDC *OIDC `json:"oidc,omitempty"`

	// Authorization decides, once the request is authenticated, whether it
	// may proceed.
	//
	// +optional
	Authorization *Authorization `json:"authorization,omitempty"`
}

// JWT validates bearer tokens.
type JWT struct {
	// Optional lets requests without a token through (with no identity); a
	// token that is present but not valid is still refused.
	//
	// +optional
	// +kubebuilder:default=false
	Optional *bool `json:"optional,omitempty"`

	// Providers are the issuers whose tokens are accepted; a token is checked
	// against the provider whose issuer matches its iss claim.
	//
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=name
	Providers []JWTProvider `json:"providers"`
}

// JWTProvider is one token issuer.
//
// +kubebuilder:validation:XValidation:rule="has(self.remoteJWKS) != has(self.localJWKS)",message="exactly one of remoteJWKS and localJWKS must be set"
type JWTProvider struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Issuer must equal the token's iss claim.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Issuer string `json:"issuer"`

	// Audiences: the token's aud must contain one of these. Empty: any.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Audiences []string `json:"audiences,omitempty"`

	// RemoteJWKS is where the issuer publishes its keys.
	//
	// +optional
	RemoteJWKS *RemoteJWKS `json:"remoteJWKS,omitempty"`

	// LocalJWKS holds the keys in the policy.
	//
	// +optional
	LocalJWKS *LocalJWKS `json:"localJWKS,omitempty"`

	// Algorithms the token may be signed with. "none" and HMAC algorithms
	// are never accepted.
	//
	// +optional
	// +kubebuilder:default={RS256,ES256}
	// +kubebuilder:validation:MaxItems=9
	Algorithms []JWTAlgorithm `json:"algorithms,omitempty"`

	// ExtractFrom says where the token is read from. Default: the
	// Authorization header with the "Bearer " prefix.
	//
	// +optional
	ExtractFrom *JWTExtractor `json:"extractFrom,omitempty"`

	// ClaimToHeaders copies claims into request headers for the backend.
	// Headers of these names that the client sent are removed first.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`

	// ForwardToken keeps the token in the request sent to the backend.
	//
	// +optional
	// +kubebuilder:default=false
	ForwardToken *bool `json:"forwardToken,omitempty"`
}

// JWTAlgorithm is a JWS signature algorithm.
//
// +kubebuilder:validation:Enum=RS256;RS384;RS512;PS256;PS384;PS512;ES256;ES384;ES512
type JWTAlgorithm string

// RemoteJWKS is a JWKS endpoint.
type RemoteJWKS struct {
	// URI of the JWKS document (https, or http for a provider on loopback).
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URI string `json:"uri"`

	// CacheDuration is how long fetched keys are used before they are
	// fetched again. An unknown key ID fetches them at once (at most once
	// every 10 seconds); keys already fetched are kept when a fetch fails.
	//
	// +optional
	// +kubebuilder:default="10m"
	CacheDuration *gwv1.Duration `json:"cacheDuration,omitempty"`
}

// LocalJWKS is a JWKS document held in the policy.
type LocalJWKS struct {
	// Inline is the JWKS JSON.
	//
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=65536
	Inline string `json:"inline"`
}

// JWTExtractor says where a token is read from; the first place that has one
// is used.
type JWTExtractor struct {
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Headers []JWTHeaderExtractor `json:"headers,omitempty"`

	// Cookies, by name.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Cookies []string `json:"cookies,omitempty"`

	// Params are query parameters, by name.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Params []string `json:"params,omitempty"`
}

// JWTHeaderExtractor reads a token from a header.
type JWTHeaderExtractor struct {
	Name gwv1.HTTPHeaderName `json:"name"`

	// ValuePrefix is stripped from the header's value, e.g. "Bearer ".
	//
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ValuePrefix *string `json:"valuePrefix,omitempty"`
}

// ClaimToHeader copies a claim into a request header.
type ClaimToHeader struct {
	// Claim is a top-level claim name.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Claim string `json:"claim"`

	Header gwv1.HTTPHeaderName `json:"header"`
}

// OIDC is the OpenID Connect login flow.
type OIDC struct {
	// Provider is the OpenID provider; its endpoints come from discovery.
	Provider OIDCProvider `json:"provider"`

	// ClientID registered with the provider.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ClientID string `json:"clientID"`

	// ClientSecretRef is a Secret in the policy's namespace holding the
	// client secret under the key client-secret.
	ClientSecretRef gwv1.SecretObjectReference `json:"clientSecretRef"`

	// Scopes requested; openid is always requested.
	//
	// +optional
	// +kubebuilder:default={openid}
	// +kubebuilder:validation:MaxItems=16
	Scopes []string `json:"scopes,omitempty"`

	// RedirectPath is where the provider sends the browser back; it must be
	// among the client's redirect URIs at the provider.
	//
	// +optional
	// +kubebuilder:default="/oauth2/callback"
	// +kubebuilder:validation:Pattern=`^/`
	RedirectPath *string `json:"redirectPath,omitempty"`

	// LogoutPath ends the session here and at the provider.
	//
	// +optional
	// +kubebuilder:validation:Pattern=`^/`
	LogoutPath *string `json:"logoutPath,omitempty"`

	// PostLogoutRedirectPath is where the browser lands after logout.
	//
	// +optional
	// +kubebuilder:default="/"
	// +kubebuilder:validation:Pattern=`^/`
	PostLogoutRedirectPath *string `json:"postLogoutRedirectPath,omitempty"`

	// Cookie configures the session cookie.
	//
	// +optional
	Cookie *OIDCCookie `json:"cookie,omitempty"`

	// RefreshToken renews the session with the refresh token shortly before
	// it expires.
	//
	// +optional
	// +kubebuilder:default=true
	RefreshToken *bool `json:"refreshToken,omitempty"`

	// ClaimToHeaders copies ID token claims into request headers.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`

	// ForwardAccessToken sends the access token to the backend as
	// "Authorization: Bearer".
	//
	// +optional
	// +kubebuilder:default=false
	ForwardAccessToken *bool `json:"forwardAccessToken,omitempty"`
}

// OIDCProvider is an OpenID provider.
type OIDCProvider struct {
	// Issuer is the provider's issuer URL; discovery is read from
	// ISSUER/.well-known/openid-configuration.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	Issuer string `json:"issuer"`
}

// OIDCCookie configures the session cookie. It is always HttpOnly, and Secure
// on HTTPS.
type OIDCCookie struct {
	// Name of the cookie.
	//
	// +optional
	// +kubebuilder:default=sekisho-session
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +kubebuilder:validation:MaxLength=64
	Name *string `json:"name,omitempty"`

	// +optional
	// +kubebuilder:default=Lax
	// +kubebuilder:validation:Enum=Lax;Strict;None
	SameSite *string `json:"sameSite,omitempty"`
}

// Authorization decides whether an authenticated request may proceed: the
// first rule that matches gives the action, else DefaultAction.
type Authorization struct {
	// +optional
	// +kubebuilder:default=Deny
	DefaultAction *AuthorizationAction `json:"defaultAction,omitempty"`

	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationAction is Allow or Deny.
//
// +kubebuilder:validation:Enum=Allow;Deny
type AuthorizationAction string

const (
	ActionAllow AuthorizationAction = "Allow"
	ActionDeny  AuthorizationAction = "Deny"
)

// AuthorizationRule matches who sends a request and what it asks for.
type AuthorizationRule struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	Action AuthorizationAction `json:"action"`

	// Principal: who. Every listed condition must hold; absent: anyone.
	//
	// +optional
	Principal *Principal `json:"principal,omitempty"`

	// Operation: what. Every listed condition must hold; absent: anything.
	//
	// +optional
	Operation *Operation `json:"operation,omitempty"`
}

// Principal matches the identity.
type Principal struct {
	// Claims: each named claim must have one of its values (a claim that is
	// a list must contain one). Never matches a request with no identity.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Claims []ClaimValues `json:"claims,omitempty"`

	// ClientCIDRs: the client's address must be inside one of these.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ClientCIDRs []string `json:"clientCIDRs,omitempty"`
}

// ClaimValues is a claim and the values it may have.
type ClaimValues struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Values []string `json:"values"`
}

// Operation matches the request.
type Operation struct {
	// +optional
	// +kubebuilder:validation:MaxItems=9
	Methods []gwv1.HTTPMethod `json:"methods,omitempty"`

	// Paths are matched on the normalised path, the one routes match on.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Paths []gwv1.HTTPPathMatch `json:"paths,omitempty"`
}

// SecurityPolicyList is a list of SecurityPolicies.
//
// +kubebuilder:object:root=true
type SecurityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecurityPolicy `json:"items"`
}
