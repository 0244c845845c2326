package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// authzPolicy: optional JWT, default Deny, and rules in this order:
//
//	admins    Allow  groups∋admin            /admin/*
//	no-admin  Deny   everyone                /admin/*
//	internal  Deny   everyone                /internal/* on api.example.com and *.corp.test
//	office    Allow  from 10.1.0.0/16        /reports/*
//	public    Allow  everyone, GET and HEAD  /, /public/*, /static/<x>.css
//	users     Allow  role ∈ {user, admin}    anything
func authzPolicy(t testing.TB) *Config {
	cfg := jwtPolicy(t, nil)
	cfg.Policies[0].JWT.Optional = true
	cfg.Policies[0].Authorization = &Authorization{
		DefaultAction: ActionDeny,
		Rules: []AuthzRule{
			{Name: "admins", Action: ActionAllow,
				Principal: &Principal{Claims: []ClaimMatch{{Name: "groups", Values: []string{"admin"}}}},
				Operation: &Operation{Paths: []PathMatch{{Type: PathPrefix, Value: "/admin"}}}},
			{Name: "no-admin", Action: ActionDeny,
				Operation: &Operation{Paths: []PathMatch{{Type: PathPrefix, Value: "/admin/"}}}},
			{Name: "internal", Action: ActionDeny,
				Operation: &Operation{Hosts: []string{"api.example.com", "*.corp.test"}, Paths: []PathMatch{{Type: PathPrefix, Value: "/internal"}}}},
			{Name: "office", Action: ActionAllow,
				Principal: &Principal{ClientCIDRs: []string{"10.1.0.0/16", "192.0.2.7"}},
				Operation: &Operation{Paths: []PathMatch{{Type: PathPrefix, Value: "/reports"}}}},
			{Name: "public", Action: ActionAllow,
				Operation: &Operation{Methods: []string{"GET", "head"}, Paths: []PathMatch{
					{Type: PathExact, Value: "/"},
					{Type: PathPrefix, Value: "/public"},
					{Type: PathRegularExpression, Value: `/static/[a-z]+\.css`},
				}}},
			{Name: "users", Action: ActionAllow,
				Principal: &Principal{Claims: []ClaimMatch{{Name: "role", Values: []string{"user", "admin"}}}}},
		},
	}
	return cfg
}

func TestAuthorizationRules(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, authzPolicy(t))
	now := clock.Now()
	user := bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"role": "user", "groups": []string{"dev"}})))
	admin := bearer(sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(now, jwt.MapClaims{"role": "admin", "groups": []string{"dev", "admin"}})))
	adminStr := bearer(sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(now, jwt.MapClaims{"groups": "admin"})))
	anon := map[string]string(nil)

	cases := []struct {
		name    string
		who     map[string]string
		method  string
		path    string
		host    string
		source  string
		want    int
		comment string
	}{
		// Plain decisions.
		{name: "anonymous home", who: anon, path: "/", want: 200},
		{name: "anonymous public", who: anon, path: "/public/a.js?v=1", want: 200},
		{name: "anonymous public HEAD", who: anon, method: "HEAD", path: "/public", want: 200},
		{name: "anonymous public POST", who: anon, method: "POST", path: "/public/form", want: 401},
		{name: "lower-case method is the method", who: anon, method: "get", path: "/public", want: 200},
		{name: "anonymous regex", who: anon, path: "/static/site.css", want: 200},
		{name: "regex matches the whole path", who: anon, path: "/static/site.cssx", want: 401},
		{name: "regex does not match a longer path", who: anon, path: "/x/static/site.css", want: 401},
		{name: "prefix is whole segments", who: anon, path: "/publicity", want: 401},
		{name: "anonymous default deny", who: anon, path: "/api/items", want: 401},
		{name: "user anywhere", who: user, path: "/api/items", want: 200},
		{name: "user admin", who: user, path: "/admin", want: 403},
		{name: "admin admin", who: admin, path: "/admin/users", want: 200},
		{name: "groups as a string", who: adminStr, path: "/admin", want: 200},
		{name: "claims rule never matches anonymous", who: anon, path: "/admin", want: 401},
		{name: "office network", who: anon, path: "/reports/q1", source: "10.1.200.3", want: 200},
		{name: "office single address", who: anon, path: "/reports/q1", source: "192.0.2.7", want: 200},
		{name: "IPv4-mapped office address", who: anon, path: "/reports/q1", source: "::ffff:10.1.0.9", want: 200},
		{name: "outside the office", who: anon, path: "/reports/q1", source: "10.2.0.1", want: 401},
		{name: "internal on another host", who: user, path: "/internal/x", host: "www.example.com", want: 200},

		// Bypass attempts on /admin by a user without the admin group.
		{name: "trailing slash", who: user, path: "/admin/", want: 403},
		{name: "encoded letter", who: user, path: "/%61dmin", want: 403},
		{name: "encoded letters, lower-case hex", who: user, path: "/%61%64%6d%69%6e/x", want: 403},
		{name: "double slash", who: user, path: "//admin", want: 403},
		{name: "slashes inside", who: user, path: "/public//..//admin", want: 403},
		{name: "dot segment", who: user, path: "/./admin", want: 403},
		{name: "dot-dot segment", who: user, path: "/public/../admin", want: 403},
		{name: "encoded dot-dot", who: user, path: "/public/%2e%2e/admin", want: 403},
		{name: "dot-dot above the root", who: user, path: "/../../admin", want: 403},
		{name: "backslashes", who: user, path: `/public\..\admin`, want: 403},
		{name: "encoded slash", who: user, path: "/public/..%2Fadmin", want: 400},
		{name: "encoded slash, lower case", who: user, path: "/public%2f..%2fadmin", want: 400},
		{name: "encoded backslash", who: user, path: "/public/..%5Cadmin", want: 400},
		{name: "fragment", who: user, path: "/admin#x", want: 400},
		{name: "bad escape", who: user, path: "/%zzadmin", want: 400},
		{name: "path parameter on dot-dot", who: user, path: "/public/..;/admin", want: 403},
		{name: "path parameter on the segment", who: user, path: "/admin;jsessionid=1/users", want: 403},
		{name: "upper case is another path", who: user, path: "/ADMIN", want: 200,
			comment: "paths are case-sensitive, as in the router; an allow-list policy refuses it (next case)"},

		// The same attempts by an anonymous client through the public prefix.
		{name: "anonymous dot-dot from public", who: anon, path: "/public/../admin", want: 401},
		{name: "anonymous path parameter from public", who: anon, path: "/public/..;/admin", want: 401},
		{name: "anonymous encoded dot-dot from public", who: anon, path: "/public/%2E%2E/admin", want: 401},
		{name: "anonymous from the css regex", who: anon, path: "/static/a.css/../../admin", want: 401},
		{name: "anonymous upper case", who: anon, path: "/ADMIN", want: 401},
		{name: "anonymous upper-case public", who: anon, path: "/PUBLIC/x", want: 401},
		{name: "public path parameter is still public", who: anon, path: "/public/a;v=1", want: 200},

		// Host tricks on the host-scoped rule.
		{name: "host exact", who: user, path: "/internal/x", host: "api.example.com", want: 403},
		{name: "host upper case", who: user, path: "/internal/x", host: "API.Example.COM", want: 403},
		{name: "host with port", who: user, path: "/internal/x", host: "api.example.com:8443", want: 403},
		{name: "host with trailing dot", who: user, path: "/internal/x", host: "api.example.com.", want: 403},
		{name: "host with everything", who: user, path: "/internal", host: "Api.Example.Com.:443", want: 403},
		{name: "wildcard host", who: user, path: "/internal/x", host: "a.b.CORP.test:80", want: 403},
		{name: "wildcard needs a label", who: user, path: "/internal/x", host: "corp.test", want: 200},
		{name: "encoded path on the host rule", who: user, path: "/%69nternal", host: "api.example.com", want: 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := check(t, s, req{method: c.method, path: c.path, host: c.host, source: c.source, headers: c.who})
			if a.code != c.want {
				t.Fatalf("%s %s (host %q): got %d, want %d %s", c.method, c.path, c.host, a.code, c.want, c.comment)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string][2]string{
		"Example.COM":           {"example.com", "example.com"},
		"example.com:8080":      {"example.com", "example.com:8080"},
		"example.com.":          {"example.com", "example.com"},
		"example.com.:443":      {"example.com", "example.com:443"},
		"[::1]:8443":            {"[::1]", "[::1]:8443"},
		"[2001:DB8::1]":         {"[2001:db8::1]", "[2001:db8::1]"},
		"":                      {"", ""},
		"  api.example.com  ":   {"api.example.com", "api.example.com"},
		"api.example.com:":      {"api.example.com", "api.example.com"},
		"xn--bcher-kva.example": {"xn--bcher-kva.example", "xn--bcher-kva.example"},
	} {
		h, a := normalizeHost(in)
		if h != want[0] || a != want[1] {
			t.Errorf("normalizeHost(%q) = %q, %q; want %q, %q", in, h, a, want[0], want[1])
		}
	}
}
