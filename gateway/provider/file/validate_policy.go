package file

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
)

// The rules below are the OpenAPI and CEL rules of sekisho's policy CRDs
// (crds/policy/v1alpha1), checked here as the API server checks them on
// admission, plus RE2 and CIDR syntax.

func (v *validator) targetRefs(path string, refs []gwv1.LocalPolicyTargetReferenceWithSectionName) {
	if len(refs) == 0 {
		v.errf(path, "required: at least one target")
	}
	v.maxItems(path, len(refs), 16)
	for i, r := range refs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if r.Group != gatewayGroup {
			v.errf(p+".group", "must be %q, got %q", gatewayGroup, r.Group)
		}
		switch r.Kind {
		case "Gateway", "HTTPRoute", "GRPCRoute":
		default:
			v.errf(p+".kind", "must be Gateway, HTTPRoute or GRPCRoute, got %q", r.Kind)
		}
		if r.Name == "" {
			v.errf(p+".name", "required")
		}
	}
	unique(v, path, refs, func(r gwv1.LocalPolicyTargetReferenceWithSectionName) string {
		s := string(r.Kind) + "/" + string(r.Name)
		if r.SectionName != nil {
			s += "/" + string(*r.SectionName)
		}
		return s
	}, "target")
}

const gatewayGroup = gwv1.GroupName

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (v *validator) ruleName(path, name string) {
	if len(name) == 0 || len(name) > 63 || !dnsLabel.MatchString(name) {
		v.errf(path, "invalid name %q: must be a lowercase RFC 1123 label (at most 63 characters)", name)
	}
}

func (v *validator) cidr(path, s string) {
	if _, err := netip.ParsePrefix(s); err != nil {
		v.errf(path, "invalid CIDR %q: %v", s, err)
	}
}

func (v *validator) rateLimitPolicy(o *policyv1alpha1.RateLimitPolicy) {
	s := &o.Spec
	v.targetRefs("spec.targetRefs", s.TargetRefs)
	if s.Global == nil && s.Local == nil {
		v.errf("spec", "global or local must be set")
	}
	if g := s.Global; g != nil {
		if len(g.Rules) == 0 {
			v.errf("spec.global.rules", "required: at least one rule")
		}
		v.maxItems("spec.global.rules", len(g.Rules), 64)
		unique(v, "spec.global.rules", g.Rules, func(r policyv1alpha1.GlobalRateLimitRule) string { return r.Name }, "rule name")
		for i, r := range g.Rules {
			p := fmt.Sprintf("spec.global.rules[%d]", i)
			v.ruleName(p+".name", r.Name)
			v.limit(p+".limit", r.Limit)
			if r.Burst != nil {
				if r.Algorithm == nil || *r.Algorithm != policyv1alpha1.TokenBucket {
					v.errf(p+".burst", "burst is for the TokenBucket algorithm only")
				}
				if *r.Burst < 1 {
					v.errf(p+".burst", "must be at least 1, got %d", *r.Burst)
				}
			}
			if r.Cost != nil && (*r.Cost < 1 || *r.Cost > 1000000) {
				v.errf(p+".cost", "must be between 1 and 1000000, got %d", *r.Cost)
			}
			if r.Match != nil {
				v.rateLimitMatch(p+".match", r.Match)
			}
		}
	}
	if l := s.Local; l != nil {
		if len(l.Rules) == 0 {
			v.errf("spec.local.rules", "required: at least one rule")
		}
		v.maxItems("spec.local.rules", len(l.Rules), 8)
		unique(v, "spec.local.rules", l.Rules, func(r policyv1alpha1.LocalRateLimitRule) string { return r.Name }, "rule name")
		for i, r := range l.Rules {
			p := fmt.Sprintf("spec.local.rules[%d]", i)
			v.ruleName(p+".name", r.Name)
			v.limit(p+".limit", r.Limit)
		}
	}
}

func (v *validator) limit(path string, l policyv1alpha1.RateLimitValue) {
	if l.Requests < 1 {
		v.errf(path+".requests", "must be at least 1, got %d", l.Requests)
	}
}

func (v *validator) rateLimitMatch(path string, m *policyv1alpha1.RateLimitMatch) {
	v.maxItems(path+".headers", len(m.Headers), 16)
	for i, h := range m.Headers {
		p := fmt.Sprintf("%s.headers[%d]", path, i)
		t := deref(h.Type, policyv1alpha1.MatchExact)
		if t == policyv1alpha1.MatchDistinct {
			if h.Value != nil {
				v.errf(p+".value", "not allowed for type Distinct")
			}
			continue
		}
		if h.Value == nil {
			v.errf(p+".value", "required for type %s", t)
			continue
		}
		if t == policyv1alpha1.MatchRegularExpression {
			v.regex(p+".value", *h.Value)
		}
	}
	v.maxItems(path+".methods", len(m.Methods), 9)
	if m.Path != nil {
		v.pathMatch(path+".path", m.Path)
	}
	v.maxItems(path+".clientCIDRs", len(m.ClientCIDRs), 16)
	for i, c := range m.ClientCIDRs {
		p := fmt.Sprintf("%s.clientCIDRs[%d]", path, i)
		v.cidr(p+".value", c.Value)
		if t := deref(c.Type, policyv1alpha1.MatchExact); t != policyv1alpha1.MatchExact && t != policyv1alpha1.MatchDistinct {
			v.errf(p+".type", "must be Exact or Distinct, got %q", t)
		}
	}
	if n := len(m.ClientCIDRs); n > 1 {
		first := deref(m.ClientCIDRs[0].Type, policyv1alpha1.MatchExact)
		for i, c := range m.ClientCIDRs[1:] {
			if deref(c.Type, policyv1alpha1.MatchExact) != first {
				v.errf(fmt.Sprintf("%s.clientCIDRs[%d].type", path, i+1), "every entry of one rule must have the same type (%s, as clientCIDRs[0])", first)
			}
		}
	}
	v.maxItems(path+".claims", len(m.Claims), 4)
	for i, c := range m.Claims {
		p := fmt.Sprintf("%s.claims[%d]", path, i)
		if c.Name == "" {
			v.errf(p+".name", "required")
		}
		if t := deref(c.Type, policyv1alpha1.MatchDistinct); t != policyv1alpha1.MatchDistinct {
			v.errf(p+".type", "must be Distinct, got %q", t)
		}
	}
}

func (v *validator) securityPolicy(o *policyv1alpha1.SecurityPolicy) {
	s := &o.Spec
	v.targetRefs("spec.targetRefs", s.TargetRefs)
	if s.JWT == nil && s.OIDC == nil && s.Authorization == nil {
		v.errf("spec", "at least one of jwt, oidc and authorization must be set")
	}
	if j := s.JWT; j != nil {
		if len(j.Providers) == 0 {
			v.errf("spec.jwt.providers", "required: at least one provider")
		}
		v.maxItems("spec.jwt.providers", len(j.Providers), 8)
		unique(v, "spec.jwt.providers", j.Providers, func(p policyv1alpha1.JWTProvider) string { return p.Name }, "provider name")
		for i, pr := range j.Providers {
			p := fmt.Sprintf("spec.jwt.providers[%d]", i)
			v.ruleName(p+".name", pr.Name)
			if pr.Issuer == "" {
				v.errf(p+".issuer", "required")
			}
			if (pr.RemoteJWKS == nil) == (pr.LocalJWKS == nil) {
				v.errf(p, "exactly one of remoteJWKS and localJWKS must be set")
			}
			if pr.RemoteJWKS != nil {
				v.httpURL(p+".remoteJWKS.uri", pr.RemoteJWKS.URI)
			}
			if pr.LocalJWKS != nil && len(pr.LocalJWKS.Inline) < 2 {
				v.errf(p+".localJWKS.inline", "required: a JWKS document")
			}
			for k, c := range pr.ClaimToHeaders {
				if c.Claim == "" {
					v.errf(fmt.Sprintf("%s.claimToHeaders[%d].claim", p, k), "required")
				}
			}
		}
	}
	if oc := s.OIDC; oc != nil {
		v.httpURL("spec.oidc.provider.issuer", oc.Provider.Issuer)
		if oc.ClientID == "" {
			v.errf("spec.oidc.clientID", "required")
		}
		for _, pp := range []struct {
			path string
			val  *string
		}{{"spec.oidc.redirectPath", oc.RedirectPath}, {"spec.oidc.logoutPath", oc.LogoutPath}, {"spec.oidc.postLogoutRedirectPath", oc.PostLogoutRedirectPath}} {
			if pp.val != nil && !strings.HasPrefix(*pp.val, "/") {
				v.errf(pp.path, "must be an absolute path starting with '/', got %q", *pp.val)
			}
		}
		if c := oc.Cookie; c != nil && c.SameSite != nil {
			switch *c.SameSite {
			case "Lax", "Strict", "None":
			default:
				v.errf("spec.oidc.cookie.sameSite", "must be Lax, Strict or None, got %q", *c.SameSite)
			}
		}
	}
	if a := s.Authorization; a != nil {
		v.maxItems("spec.authorization.rules", len(a.Rules), 64)
		unique(v, "spec.authorization.rules", a.Rules, func(r policyv1alpha1.AuthorizationRule) string { return r.Name }, "rule name")
		for i, r := range a.Rules {
			p := fmt.Sprintf("spec.authorization.rules[%d]", i)
			v.ruleName(p+".name", r.Name)
			if r.Action == "" {
				v.errf(p+".action", "required: Allow or Deny")
			}
			if pr := r.Principal; pr != nil {
				for k, c := range pr.Claims {
					if c.Name == "" {
						v.errf(fmt.Sprintf("%s.principal.claims[%d].name", p, k), "required")
					}
					if len(c.Values) == 0 {
						v.errf(fmt.Sprintf("%s.principal.claims[%d].values", p, k), "required: at least one value")
					}
				}
				for k, c := range pr.ClientCIDRs {
					v.cidr(fmt.Sprintf("%s.principal.clientCIDRs[%d]", p, k), c)
				}
			}
			if op := r.Operation; op != nil {
				for k := range op.Paths {
					v.pathMatch(fmt.Sprintf("%s.operation.paths[%d]", p, k), &op.Paths[k])
				}
			}
		}
	}
}

func (v *validator) httpURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errf(path, "must be an absolute http(s) URL, got %q", s)
	}
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
