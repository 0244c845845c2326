package translate

import (
	"cmp"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	"github.com/sekisho/sekisho/ir"
)

// Policy attachment (GEP-713). A policy targets Gateways, HTTPRoutes and
// GRPCRoutes of its own namespace; a route target may name one rule with
// sectionName. Each route of a Gateway takes, per policy kind, the policy
// that targets its rule, else the one that targets the route, else the one
// that targets the Gateway: the most specific wins, and the policies are not
// merged. Two policies of one kind with the same target conflict: the oldest
// (creation time, then namespace/name) is applied to it, the other is not
// Accepted for it.
//
// A SecurityPolicy that cannot be applied (its client secret is missing, no
// authorization service is configured) still guards its routes: they answer
// 500 rather than serve what the policy protects. A RateLimitPolicy that
// cannot be applied is not applied.

// RateLimitDomain is the rate-limit domain of every descriptor sekisho emits.
const RateLimitDomain = "sekisho"

// Policy condition reasons, as GEP-713 names them.
const (
	reasonAccepted       = "Accepted"
	reasonInvalid        = "Invalid"
	reasonConflicted     = "Conflicted"
	reasonTargetNotFound = "TargetNotFound"
)

type policyKind int

const (
	kindRateLimit policyKind = iota
	kindSecurity
)

// policyCtx is one policy of either kind while it is attached.
type policyCtx struct {
	kind    policyKind
	key     resource.ObjectKey
	meta    *metav1.ObjectMeta
	targets []gwv1.LocalPolicyTargetReferenceWithSectionName
	rl      *policyv1alpha1.RateLimitPolicy
	sec     *policyv1alpha1.SecurityPolicy

	// invalid is why the policy cannot be applied ("" when it can), and
	// invalidField the field at fault.
	invalid, invalidField string
	// authz is the translated SecurityPolicy; rules the translated global
	// rules of a RateLimitPolicy.
	authz *ir.AuthzPolicy
	rules []ir.RateLimitRule

	// ancestors collects the status of each Gateway the policy reaches.
	ancestors map[string]*gwv1.PolicyAncestorStatus
	order     []string
	used      bool
}

// targetKey is one thing a policy can target.
type targetKey struct {
	kind, namespace, name, section string
}

func (p *policyCtx) invalidMessage() string {
	if p.invalidField == "" {
		return p.invalid
	}
	return p.invalidField + ": " + p.invalid
}

func (p *policyCtx) older(q *policyCtx) bool {
	a, b := p.meta.CreationTimestamp, q.meta.CreationTimestamp
	if !a.Equal(&b) {
		return a.Before(&b)
	}
	return p.key.String() < q.key.String()
}

// attachPolicies applies every policy to the routes of cfg, fills cfg.Authz
// and cfg.RateLimit, and writes each policy's status.
func (t *translator) attachPolicies(cfg *ir.Config) {
	var all []*policyCtx
	for _, o := range t.res.RateLimitPolicies {
		if o == nil {
			continue
		}
		p := &policyCtx{kind: kindRateLimit, meta: &o.ObjectMeta, targets: o.Spec.TargetRefs, rl: o,
			key: resource.ObjectKey{Kind: policyv1alpha1.RateLimitPolicyKind, Namespace: o.Namespace, Name: o.Name}}
		t.prepareRateLimit(p)
		all = append(all, p)
	}
	for _, o := range t.res.SecurityPolicies {
		if o == nil {
			continue
		}
		p := &policyCtx{kind: kindSecurity, meta: &o.ObjectMeta, targets: o.Spec.TargetRefs, sec: o,
			key: resource.ObjectKey{Kind: policyv1alpha1.SecurityPolicyKind, Namespace: o.Namespace, Name: o.Name}}
		t.prepareSecurity(p)
		all = append(all, p)
	}
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b *policyCtx) int {
		if a.older(b) {
			return -1
		}
		if b.older(a) {
			return 1
		}
		return 0
	})

	// The winner of each target, per kind; conflicts lose for good.
	winners := [2]map[targetKey]*policyCtx{{}, {}}
	type loss struct {
		p      *policyCtx
		target targetKey
		winner *policyCtx
	}
	var losses []loss
	for _, p := range all {
		for _, r := range p.targets {
			k := targetKey{kind: string(r.Kind), namespace: p.key.Namespace, name: string(r.Name)}
			if r.SectionName != nil {
				k.section = string(*r.SectionName)
			}
			if w := winners[p.kind][k]; w != nil {
				losses = append(losses, loss{p: p, target: k, winner: w})
				continue
			}
			winners[p.kind][k] = p
		}
	}

	var authz []ir.AuthzPolicy
	var rules []ir.RateLimitRule
	for _, g := range cfg.Gateways {
		copies := map[*ir.Route]*ir.Route{}
		for _, l := range g.Listeners {
			for _, fc := range l.FilterChains {
				for _, vh := range fc.VirtualHosts {
					for i, r := range vh.Routes {
						if c, ok := copies[r]; ok {
							vh.Routes[i] = c
							continue
						}
						c := t.applyToRoute(g, r, winners)
						copies[r] = c
						vh.Routes[i] = c
					}
				}
			}
		}
		for _, r := range copies {
			if r.Auth != nil && g.AuthzService == nil {
				g.AuthzService = t.opts.AuthzService
			}
			if r.RateLimit != nil && len(r.RateLimit.Global) > 0 && g.RateLimitService == nil {
				g.RateLimitService = t.opts.RateLimitService
			}
		}
	}

	// Targets that name nothing sekisho serves.
	for _, p := range all {
		for _, r := range p.targets {
			k := targetKey{kind: string(r.Kind), namespace: p.key.Namespace, name: string(r.Name)}
			if r.SectionName != nil {
				k.section = string(*r.SectionName)
			}
			if !t.targetExists(k) {
				p.setAncestor(targetAncestor(k), false, reasonTargetNotFound,
					fmt.Sprintf("%s %s/%s%s does not exist or is not served by %s", k.kind, k.namespace, k.name, sectionSuffix(k.section), t.controllerName))
			}
		}
		if p.used && p.invalid == "" {
			switch p.kind {
			case kindSecurity:
				authz = append(authz, *p.authz)
			case kindRateLimit:
				rules = append(rules, p.rules...)
			}
		}
	}
	for _, l := range losses {
		msg := fmt.Sprintf("conflicts with %s, which targets %s %s/%s%s too and is older", l.winner.key, l.target.kind, l.target.namespace, l.target.name, sectionSuffix(l.target.section))
		for _, gw := range t.gatewaysOfTarget(l.target) {
			l.p.setAncestor(gatewayAncestor(gw), false, reasonConflicted, msg)
		}
		t.problem(l.p.key, "spec.targetRefs", msg, false)
	}
	for _, p := range all {
		if p.invalid != "" {
			t.problem(p.key, cmp.Or(p.invalidField, "spec"), p.invalid, false)
		}
		t.writePolicyStatus(p)
	}

	if len(authz) > 0 {
		slices.SortFunc(authz, func(a, b ir.AuthzPolicy) int { return strings.Compare(a.ID, b.ID) })
		cfg.Authz = &ir.AuthzConfig{Policies: authz}
	}
	if len(rules) > 0 {
		slices.SortFunc(rules, func(a, b ir.RateLimitRule) int { return strings.Compare(a.ID, b.ID) })
		cfg.RateLimit = &ir.RateLimitConfig{Domain: RateLimitDomain, Rules: rules}
	}
}

func sectionSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

// applyToRoute returns r with the policies that apply to it on gateway g (a
// copy when any does; routes are shared between Gateways).
func (t *translator) applyToRoute(g *ir.Gateway, r *ir.Route, winners [2]map[targetKey]*policyCtx) *ir.Route {
	src := r.Source
	find := func(kind policyKind) *policyCtx {
		ks := []targetKey{}
		if src.RuleName != "" {
			ks = append(ks, targetKey{kind: src.Kind, namespace: src.Namespace, name: src.Name, section: src.RuleName})
		}
		ks = append(ks,
			targetKey{kind: src.Kind, namespace: src.Namespace, name: src.Name},
			targetKey{kind: "Gateway", namespace: g.Namespace, name: g.GatewayName})
		for _, k := range ks {
			if p := winners[kind][k]; p != nil {
				return p
			}
		}
		return nil
	}
	sec, rl := find(kindSecurity), find(kindRateLimit)
	if sec == nil && rl == nil {
		return r
	}
	c := *r
	gwAncestor := gatewayAncestor(resource.ObjectKey{Kind: "Gateway", Namespace: g.Namespace, Name: g.GatewayName})
	if sec != nil {
		sec.used = true
		if sec.invalid != "" || len(t.opts.AuthzService) == 0 {
			if sec.invalid == "" {
				sec.invalid = "no external authorization service is configured, so the policy cannot be enforced"
			}
			msg := sec.invalidMessage()
			sec.setAncestor(gwAncestor, false, reasonInvalid, msg+"; its routes answer 500")
			c.Forward, c.Redirect = nil, nil
			c.DirectResponse = &ir.DirectResponse{StatusCode: 500}
		} else {
			sec.setAncestor(gwAncestor, true, reasonAccepted, "Accepted")
			c.Auth = &ir.RouteAuth{Policy: sec.authz.ID, FailOpen: sec.authz.FailureMode == string(policyv1alpha1.FailureModeOpen)}
		}
	}
	if rl != nil {
		rl.used = true
		switch {
		case rl.invalid != "":
			rl.setAncestor(gwAncestor, false, reasonInvalid, rl.invalidMessage())
		case len(rl.rules) > 0 && len(t.opts.RateLimitService) == 0:
			rl.invalid = "no rate-limit service is configured, so the global rules cannot be enforced"
			rl.setAncestor(gwAncestor, false, reasonInvalid, rl.invalid)
		default:
			rl.setAncestor(gwAncestor, true, reasonAccepted, "Accepted")
			c.RateLimit = t.routeRateLimit(rl, &c)
		}
	}
	return &c
}

// routeRateLimit is what a RateLimitPolicy asks of one route.
func (t *translator) routeRateLimit(p *policyCtx, r *ir.Route) *ir.RouteRateLimit {
	spec := &p.rl.Spec
	out := &ir.RouteRateLimit{FailClosed: deref(spec.FailureMode, policyv1alpha1.FailureModeOpen) == policyv1alpha1.FailureModeClosed}
	scope := r.Source.Kind + "/" + r.Source.Namespace + "/" + r.Source.Name
	if g := spec.Global; g != nil {
		for i, rule := range g.Rules {
			gl := ir.GlobalRateLimit{Rule: p.rules[i].ID, Cost: uint32(deref(rule.Cost, 1))}
			if !deref(rule.Shared, false) {
				gl.Scope = scope
			}
			if m := rule.Match; m != nil {
				for _, h := range m.Headers {
					rh := ir.RateLimitHeader{Name: strings.ToLower(string(h.Name))}
					switch deref(h.Type, policyv1alpha1.MatchExact) {
					case policyv1alpha1.MatchDistinct:
						rh.Distinct = true
					case policyv1alpha1.MatchRegularExpression:
						rh.Type, rh.Value = ir.MatchRegex, deref(h.Value, "")
					default:
						rh.Type, rh.Value = ir.MatchExact, deref(h.Value, "")
					}
					gl.Headers = append(gl.Headers, rh)
				}
				for _, meth := range m.Methods {
					gl.Methods = append(gl.Methods, string(meth))
				}
				if m.Path != nil {
					pm := ir.PathMatch{Type: ir.MatchPrefix, Value: deref(m.Path.Value, "/")}
					switch deref(m.Path.Type, gwv1.PathMatchPathPrefix) {
					case gwv1.PathMatchExact:
						pm.Type = ir.MatchExact
					case gwv1.PathMatchRegularExpression:
						pm.Type = ir.MatchRegex
					}
					gl.Path = &pm
				}
				for _, c := range m.ClientCIDRs {
					gl.ClientCIDRs = append(gl.ClientCIDRs, c.Value)
					if deref(c.Type, policyv1alpha1.MatchExact) == policyv1alpha1.MatchDistinct {
						gl.DistinctClient = true
					}
				}
				for _, c := range m.Claims {
					gl.Claims = append(gl.Claims, c.Name)
				}
				if len(m.Claims) > 0 && r.Auth == nil {
					t.problem(p.key, fmt.Sprintf("spec.global.rules[%d].match.claims", i),
						fmt.Sprintf("route %s has no SecurityPolicy to validate a JWT, so this rule counts none of its requests", scope), true)
				}
			}
			out.Global = append(out.Global, gl)
		}
	}
	if l := spec.Local; l != nil {
		for _, rule := range l.Rules {
			out.Local = append(out.Local, ir.LocalRateLimit{
				Name:     p.key.Namespace + "/" + p.key.Name + "/" + rule.Name,
				Requests: uint32(rule.Limit.Requests),
				Per:      unitDuration(rule.Limit.Unit),
			})
		}
	}
	return out
}

func unitDuration(u policyv1alpha1.RateLimitUnit) time.Duration {
	switch u {
	case policyv1alpha1.UnitMinute:
		return time.Minute
	case policyv1alpha1.UnitHour:
		return time.Hour
	case policyv1alpha1.UnitDay:
		return 24 * time.Hour
	}
	return time.Second
}

func (t *translator) prepareRateLimit(p *policyCtx) {
	spec := &p.rl.Spec
	if spec.Global == nil {
		return
	}
	for _, rule := range spec.Global.Rules {
		r := ir.RateLimitRule{
			ID:          p.key.Namespace + "/" + p.key.Name + "/" + rule.Name,
			Requests:    uint64(max(rule.Limit.Requests, 1)),
			Unit:        string(rule.Limit.Unit),
			Algorithm:   string(deref(rule.Algorithm, policyv1alpha1.FixedWindow)),
			Shadow:      deref(rule.Shadow, false),
			FailureMode: string(deref(spec.FailureMode, policyv1alpha1.FailureModeOpen)),
		}
		if rule.Burst != nil && *rule.Burst > 0 {
			r.Burst = uint64(*rule.Burst)
		}
		p.rules = append(p.rules, r)
	}
}

func (t *translator) prepareSecurity(p *policyCtx) {
	spec := &p.sec.Spec
	a := &ir.AuthzPolicy{ID: p.key.Namespace + "/" + p.key.Name, FailureMode: string(deref(spec.FailureMode, policyv1alpha1.FailureModeClosed))}
	p.authz = a
	if j := spec.JWT; j != nil {
		a.JWT = &ir.JWTAuthn{Optional: deref(j.Optional, false)}
		for _, pr := range j.Providers {
			out := ir.JWTProvider{Name: pr.Name, Issuer: pr.Issuer, Audiences: pr.Audiences, ForwardToken: deref(pr.ForwardToken, false)}
			if pr.RemoteJWKS != nil {
				out.RemoteJWKS = &ir.RemoteJWKS{URI: pr.RemoteJWKS.URI}
				if d := pr.RemoteJWKS.CacheDuration; d != nil {
					dur, err := parseGatewayDuration(string(*d))
					if err != nil {
						p.invalidField, p.invalid = fmt.Sprintf("spec.jwt.providers[%s].remoteJWKS.cacheDuration", pr.Name), err.Error()
						return
					}
					out.RemoteJWKS.CacheDuration = ir.Duration(dur)
				}
			}
			if pr.LocalJWKS != nil {
				out.LocalJWKS = pr.LocalJWKS.Inline
			}
			for _, alg := range pr.Algorithms {
				out.Algorithms = append(out.Algorithms, string(alg))
			}
			if e := pr.ExtractFrom; e != nil {
				x := &ir.JWTExtractFrom{Cookies: e.Cookies, Params: e.Params}
				for _, h := range e.Headers {
					x.Headers = append(x.Headers, ir.JWTHeader{Name: string(h.Name), ValuePrefix: deref(h.ValuePrefix, "")})
				}
				out.ExtractFrom = x
			}
			out.ClaimToHeaders = claimHeaders(pr.ClaimToHeaders)
			a.JWT.Providers = append(a.JWT.Providers, out)
		}
	}
	if o := spec.OIDC; o != nil {
		secret, why := t.clientSecret(p.key.Namespace, o.ClientSecretRef)
		if why != "" {
			p.invalidField, p.invalid = "spec.oidc.clientSecretRef", why
			return
		}
		out := &ir.OIDCLogin{
			Issuer:             o.Provider.Issuer,
			ClientID:           o.ClientID,
			ClientSecret:       secret,
			Scopes:             o.Scopes,
			RedirectPath:       deref(o.RedirectPath, "/oauth2/callback"),
			LogoutPath:         deref(o.LogoutPath, ""),
			PostLogoutRedirect: deref(o.PostLogoutRedirectPath, "/"),
			RefreshToken:       deref(o.RefreshToken, true),
			ClaimToHeaders:     claimHeaders(o.ClaimToHeaders),
			ForwardAccessToken: deref(o.ForwardAccessToken, false),
			SessionKey:         sessionKey(a.ID, o.ClientID, secret),
		}
		if len(out.Scopes) == 0 {
			out.Scopes = []string{"openid"}
		}
		if c := o.Cookie; c != nil {
			out.CookieName = deref(c.Name, "")
			out.CookieSameSite = deref(c.SameSite, "")
		}
		a.OIDC = out
	}
	if az := spec.Authorization; az != nil {
		out := &ir.AuthorizationRules{DefaultAction: string(deref(az.DefaultAction, policyv1alpha1.ActionDeny))}
		for _, r := range az.Rules {
			rule := ir.AuthzRule{Name: r.Name, Action: string(r.Action)}
			if pr := r.Principal; pr != nil {
				ap := &ir.AuthzPrincipal{ClientCIDRs: pr.ClientCIDRs}
				for _, c := range pr.Claims {
					ap.Claims = append(ap.Claims, ir.ClaimValues{Name: c.Name, Values: c.Values})
				}
				rule.Principal = ap
			}
			if op := r.Operation; op != nil {
				ao := &ir.AuthzOperation{}
				for _, m := range op.Methods {
					ao.Methods = append(ao.Methods, string(m))
				}
				for _, pm := range op.Paths {
					m := ir.PathMatch{Type: ir.MatchPrefix, Value: deref(pm.Value, "/")}
					switch deref(pm.Type, gwv1.PathMatchPathPrefix) {
					case gwv1.PathMatchExact:
						m.Type = ir.MatchExact
					case gwv1.PathMatchRegularExpression:
						m.Type = ir.MatchRegex
					}
					ao.Paths = append(ao.Paths, m)
				}
				rule.Operation = ao
			}
			out.Rules = append(out.Rules, rule)
		}
		a.Authorization = out
	}
}

func claimHeaders(in []policyv1alpha1.ClaimToHeader) []ir.ClaimToHeader {
	var out []ir.ClaimToHeader
	for _, c := range in {
		out = append(out, ir.ClaimToHeader{Claim: c.Claim, Header: string(c.Header)})
	}
	return out
}

// clientSecret reads the OIDC client secret: key client-secret of a Secret
// in the policy's namespace.
func (t *translator) clientSecret(ns string, ref gwv1.SecretObjectReference) (string, string) {
	if ref.Group != nil && *ref.Group != "" {
		return "", fmt.Sprintf("group %q is not supported (core Secrets only)", *ref.Group)
	}
	if ref.Kind != nil && *ref.Kind != "Secret" {
		return "", fmt.Sprintf("kind %q is not supported (Secret only)", *ref.Kind)
	}
	if ref.Namespace != nil && string(*ref.Namespace) != ns {
		return "", "a Secret in another namespace is not supported"
	}
	s := t.secrets[nsName{Namespace: ns, Name: string(ref.Name)}]
	if s == nil {
		return "", fmt.Sprintf("Secret %s/%s not found", ns, ref.Name)
	}
	v := s.Data["client-secret"]
	if len(v) == 0 {
		return "", fmt.Sprintf("Secret %s/%s has no key client-secret", ns, ref.Name)
	}
	return string(v), ""
}

// sessionKey derives the key that encrypts a policy's session cookies from
// its client secret, so every authorization replica, and a restarted
// controller, derive the same key; rotating the secret ends the sessions.
func sessionKey(id, clientID, secret string) string {
	k, err := hkdf.Key(sha256.New, []byte(secret), []byte(id), "sekisho oidc session "+clientID, 32)
	if err != nil {
		panic(err) // only for lengths hkdf cannot produce
	}
	return base64.StdEncoding.EncodeToString(k)
}

// parseGatewayDuration parses a Gateway API duration ("1h", "10m", "1m30s").
func parseGatewayDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// targetExists says whether k names a Gateway of sekisho's or a route
// attached to one (and, with a section, a rule of that name).
func (t *translator) targetExists(k targetKey) bool {
	switch k.kind {
	case "Gateway":
		g := t.gateways[nsName{Namespace: k.namespace, Name: k.name}]
		return g != nil && k.section == ""
	case "HTTPRoute":
		for _, r := range t.res.HTTPRoutes {
			if r != nil && r.Namespace == k.namespace && r.Name == k.name {
				return k.section == "" || slices.ContainsFunc(r.Spec.Rules, func(rule gwv1.HTTPRouteRule) bool { return named(rule.Name, k.section) })
			}
		}
	case "GRPCRoute":
		for _, r := range t.res.GRPCRoutes {
			if r != nil && r.Namespace == k.namespace && r.Name == k.name {
				return k.section == "" || slices.ContainsFunc(r.Spec.Rules, func(rule gwv1.GRPCRouteRule) bool { return named(rule.Name, k.section) })
			}
		}
	}
	return false
}

// named says whether a rule's optional name is name.
func named(n *gwv1.SectionName, name string) bool { return n != nil && string(*n) == name }

// gatewaysOfTarget lists the Gateways of sekisho's a target reaches.
func (t *translator) gatewaysOfTarget(k targetKey) []resource.ObjectKey {
	if k.kind == "Gateway" {
		if t.gateways[nsName{Namespace: k.namespace, Name: k.name}] != nil {
			return []resource.ObjectKey{{Kind: "Gateway", Namespace: k.namespace, Name: k.name}}
		}
		return nil
	}
	var out []resource.ObjectKey
	for _, g := range t.gwOrder {
		for _, l := range g.listeners {
			for _, a := range l.attachments {
				if a.route.kind == k.kind && a.route.meta.Namespace == k.namespace && a.route.meta.Name == k.name {
					out = append(out, g.key)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b resource.ObjectKey) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

func gatewayAncestor(k resource.ObjectKey) gwv1.ParentReference {
	g, kind := gwv1.Group(gatewayGroup), gwv1.Kind("Gateway")
	ns := gwv1.Namespace(k.Namespace)
	return gwv1.ParentReference{Group: &g, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(k.Name)}
}

func targetAncestor(k targetKey) gwv1.ParentReference {
	g, kind := gwv1.Group(gatewayGroup), gwv1.Kind(k.kind)
	ns := gwv1.Namespace(k.namespace)
	ref := gwv1.ParentReference{Group: &g, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(k.name)}
	if k.section != "" {
		s := gwv1.SectionName(k.section)
		ref.SectionName = &s
	}
	return ref
}

// setAncestor records the policy's condition for one ancestor. A refusal
// (ok false) is never overwritten by an acceptance.
func (p *policyCtx) setAncestor(ref gwv1.ParentReference, ok bool, reason, msg string) {
	if p.ancestors == nil {
		p.ancestors = map[string]*gwv1.PolicyAncestorStatus{}
	}
	id := status.ParentString(ref, p.key.Namespace)
	a := p.ancestors[id]
	if a == nil {
		a = &gwv1.PolicyAncestorStatus{AncestorRef: ref}
		p.ancestors[id] = a
		p.order = append(p.order, id)
	} else if len(a.Conditions) > 0 && (ok || a.Conditions[0].Status == metav1.ConditionFalse) {
		return
	}
	a.Conditions = []metav1.Condition{condition(string(gwv1.PolicyConditionAccepted), ok, reason, msg, p.meta.Generation)}
}

func (t *translator) writePolicyStatus(p *policyCtx) {
	st := &gwv1.PolicyStatus{}
	if len(p.ancestors) == 0 && p.invalid != "" {
		for _, r := range p.targets {
			k := targetKey{kind: string(r.Kind), namespace: p.key.Namespace, name: string(r.Name)}
			p.setAncestor(targetAncestor(k), false, reasonInvalid, p.invalidMessage())
		}
	}
	slices.Sort(p.order)
	for _, id := range p.order {
		a := p.ancestors[id]
		a.ControllerName = t.controllerName
		st.Ancestors = append(st.Ancestors, *a)
	}
	// The API server keeps at most 16 ancestors.
	if len(st.Ancestors) > 16 {
		st.Ancestors = st.Ancestors[:16]
	}
	t.status.Policies[status.PolicyKey{Kind: p.key.Kind, Namespace: p.key.Namespace, Name: p.key.Name}] = st
}
