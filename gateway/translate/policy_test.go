package translate

import (
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	"github.com/sekisho/sekisho/ir"
)

// TestPoliciesWithoutServices: with no authorization service configured, a
// SecurityPolicy is not Accepted and its routes answer 500 instead of being
// served unprotected; with no rate-limit service, a RateLimitPolicy with
// global rules is not Accepted and its routes are not limited.
func TestPoliciesWithoutServices(t *testing.T) {
	var res resource.Resources
	for _, name := range []string{"policy-security.in.yaml", "policy-ratelimit.in.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var one resource.Resources
		if pp := file.ParseBytes(name, data, &one); len(pp) > 0 {
			t.Fatalf("%s: %v", name, pp)
		}
		if name == "policy-security.in.yaml" {
			res = one
			continue
		}
		res.RateLimitPolicies = one.RateLimitPolicies
	}
	r := Translate(&res, Options{DefaultAddresses: []string{"127.0.0.1"}})
	if r.IR.Authz != nil || r.IR.RateLimit != nil {
		t.Errorf("services configured with no service to run them: authz %v, rate limit %v", r.IR.Authz, r.IR.RateLimit)
	}
	routes := map[string]*ir.Route{}
	for _, g := range r.IR.Gateways {
		if len(g.AuthzService) > 0 || len(g.RateLimitService) > 0 {
			t.Errorf("gateway %s names services: %v %v", g.Name, g.AuthzService, g.RateLimitService)
		}
		for _, l := range g.Listeners {
			for _, fc := range l.FilterChains {
				for _, vh := range fc.VirtualHosts {
					for _, rt := range vh.Routes {
						routes[rt.Source.Name] = rt
					}
				}
			}
		}
	}
	for _, name := range []string{"api", "web", "broken"} {
		rt := routes[name]
		if rt == nil {
			t.Fatalf("no route of %s", name)
		}
		if rt.Auth != nil || rt.Forward != nil || rt.DirectResponse == nil || rt.DirectResponse.StatusCode != 500 {
			t.Errorf("route %s: want a 500 direct response and no auth, got %+v", name, rt)
		}
	}
	for _, k := range []status.PolicyKey{
		{Kind: "SecurityPolicy", Namespace: "default", Name: "api-auth"},
		{Kind: "SecurityPolicy", Namespace: "default", Name: "web-login"},
		{Kind: "RateLimitPolicy", Namespace: "default", Name: "api-limits"},
	} {
		st := r.Status.Policies[k]
		if st == nil || len(st.Ancestors) == 0 {
			t.Fatalf("%v: no status", k)
		}
		c := st.Ancestors[0].Conditions[0]
		if c.Type != "Accepted" || c.Status != metav1.ConditionFalse || c.Reason != "Invalid" {
			t.Errorf("%v: condition %+v, want Accepted=False Invalid", k, c)
		}
	}
}
