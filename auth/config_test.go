package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestConfigJSON(t *testing.T) {
	in := `{
	  "policies": [{
	    "id": "shop/api",
	    "failureMode": "FailClosed",
	    "jwt": {
	      "optional": true,
	      "providers": [{
	        "name": "corp", "issuer": "https://id.corp", "audiences": ["api"],
	        "remoteJWKS": {"uri": "https://id.corp/jwks", "cacheDuration": "5m"},
	        "algorithms": ["ES256"],
	        "extractFrom": {"headers": [{"name": "x-token", "valuePrefix": "Token "}], "cookies": ["t"], "params": ["tok"]},
	        "claimToHeaders": [{"claim": "sub", "header": "x-user"}],
	        "forwardToken": true
	      }]
	    },
	    "oidc": {
	      "issuer": "https://id.corp", "clientID": "shop", "clientSecret": "s",
	      "scopes": ["email"], "redirectPath": "/cb", "logoutPath": "/logout",
	      "postLogoutRedirect": "/", "cookieSameSite": "Strict", "cookieName": "shop",
	      "refreshToken": true, "forwardAccessToken": true,
	      "claimToHeaders": [{"claim": "email", "header": "x-email"}],
	      "sessionKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	    },
	    "authorization": {
	      "defaultAction": "Deny",
	      "rules": [{
	        "name": "r", "action": "Allow",
	        "principal": {"claims": [{"name": "groups", "values": ["a"]}], "clientCIDRs": ["10.0.0.0/8"]},
	        "operation": {"methods": ["GET"], "paths": [{"type": "PathPrefix", "value": "/x"}], "hosts": ["shop.example"]}
	      }]
	    }
	  }]
	}`
	var c Config
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := c.Policies[0]
	if got := time.Duration(p.JWT.Providers[0].RemoteJWKS.CacheDuration); got != 5*time.Minute {
		t.Errorf("cacheDuration = %v", got)
	}
	if p.Authorization.Rules[0].Principal.ClientCIDRs[0] != "10.0.0.0/8" || p.OIDC.CookieSameSite != "Strict" || p.FailureMode != "FailClosed" {
		t.Errorf("decoded %+v", p)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"cacheDuration":"5m"`) {
		t.Errorf("marshalled: %s", out)
	}
	var again Config
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	out2, _ := json.Marshal(again)
	if string(out) != string(out2) {
		t.Errorf("round trip changed the config:\n%s\n%s", out, out2)
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]string{
		`"10m"`: `"10m"`, `"1h"`: `"1h"`, `"1h30m"`: `"1h30m"`, `"90s"`: `"1m30s"`,
		`"500ms"`: `"500ms"`, `"0s"`: `"0s"`, `""`: `"0s"`, `"2h0m5s"`: `"2h5s"`,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Errorf("%s → %s, want %s", in, out, want)
		}
	}
	for _, bad := range []string{`10`, `"ten minutes"`, `true`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestValidateNamesPolicyAndField(t *testing.T) {
	keys(t)
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	okProvider := func() JWTProvider {
		return JWTProvider{Name: "p", Issuer: "https://i", LocalJWKS: jwksDoc(rsaJWK("k", &rsaKey.PublicKey))}
	}
	okOIDC := func() *OIDC {
		return &OIDC{Issuer: "https://i", ClientID: "c", RedirectPath: "/cb", SessionKey: key}
	}
	cases := []struct {
		name string
		p    Policy
		want string
	}{
		{"no id", Policy{}, `policy "policies[0]": id: required`},
		{"no providers", Policy{ID: "a/b", JWT: &JWT{}}, `policy "a/b": jwt.providers: at least one provider`},
		{"no issuer", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider { p := okProvider(); p.Issuer = ""; return p }()}}}, `policy "a/b": jwt.providers[0].issuer: required`},
		{"no keys", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{{Name: "p", Issuer: "https://i"}}}}, `policy "a/b": jwt.providers[0]: one of remoteJWKS and localJWKS`},
		{"both keys", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider {
			p := okProvider()
			p.RemoteJWKS = &RemoteJWKS{URI: "https://i/jwks"}
			return p
		}()}}}, `jwt.providers[0]: remoteJWKS and localJWKS are exclusive`},
		{"bad uri", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{{Name: "p", Issuer: "https://i", RemoteJWKS: &RemoteJWKS{URI: "ftp://x"}}}}}, `policy "a/b": jwt.providers[0].remoteJWKS.uri:`},
		{"bad local", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{{Name: "p", Issuer: "https://i", LocalJWKS: `{"keys":[]}`}}}}, `policy "a/b": jwt.providers[0].localJWKS:`},
		{"HS256", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider { p := okProvider(); p.Algorithms = []string{"RS256", "HS256"}; return p }()}}}, `policy "a/b": jwt.providers[0].algorithms[1]: unsupported algorithm "HS256"`},
		{"none", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider { p := okProvider(); p.Algorithms = []string{"none"}; return p }()}}}, `jwt.providers[0].algorithms[0]: unsupported algorithm "none"`},
		{"bad header", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider {
			p := okProvider()
			p.ClaimToHeaders = []ClaimToHeader{{Claim: "sub", Header: "x user"}}
			return p
		}()}}}, `jwt.providers[0].claimToHeaders[0].header: invalid header name`},
		{"reserved header", Policy{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{func() JWTProvider {
			p := okProvider()
			p.ClaimToHeaders = []ClaimToHeader{{Claim: "sub", Header: "Host"}}
			return p
		}()}}}, `jwt.providers[0].claimToHeaders[0].header: "Host" cannot be set`},
		{"oidc key", Policy{ID: "a/b", OIDC: func() *OIDC { o := okOIDC(); o.SessionKey = "c2hvcnQ="; return o }()}, `policy "a/b": oidc.sessionKey: decodes to 5 bytes, want 32`},
		{"oidc redirect", Policy{ID: "a/b", OIDC: func() *OIDC { o := okOIDC(); o.RedirectPath = "cb"; return o }()}, `oidc.redirectPath: must be a path`},
		{"oidc samesite", Policy{ID: "a/b", OIDC: func() *OIDC { o := okOIDC(); o.CookieSameSite = "lax"; return o }()}, `oidc.cookieSameSite: must be Lax, Strict or None`},
		{"oidc post logout", Policy{ID: "a/b", OIDC: func() *OIDC { o := okOIDC(); o.PostLogoutRedirect = "//evil.test"; return o }()}, `oidc.postLogoutRedirect`},
		{"default action", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "allow"}}, `policy "a/b": authorization.defaultAction: must be Allow or Deny`},
		{"rule action", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Permit"}}}}, `authorization.rules[0].action`},
		{"regex", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Allow", Operation: &Operation{Paths: []PathMatch{{Type: PathRegularExpression, Value: "(("}}}}}}}, `authorization.rules[0].operation.paths[0].value`},
		{"path type", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Allow", Operation: &Operation{Paths: []PathMatch{{Type: "Prefix", Value: "/"}}}}}}}, `authorization.rules[0].operation.paths[0].type`},
		{"prefix without slash", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Allow", Operation: &Operation{Paths: []PathMatch{{Type: PathPrefix, Value: "admin"}}}}}}}, `authorization.rules[0].operation.paths[0].value: must start with '/'`},
		{"cidr", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Allow", Principal: &Principal{ClientCIDRs: []string{"10.0.0.0/33"}}}}}}, `authorization.rules[0].principal.clientCIDRs[0]`},
		{"claim values", Policy{ID: "a/b", Authorization: &Authorization{DefaultAction: "Deny", Rules: []AuthzRule{{Action: "Allow", Principal: &Principal{Claims: []ClaimMatch{{Name: "g"}}}}}}}, `authorization.rules[0].principal.claims[0].values`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Config{Policies: []Policy{c.p}}.Validate()
			if err == nil {
				t.Fatal("valid")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
	dup := Config{Policies: []Policy{{ID: "a/b"}, {ID: "a/b"}}}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), `policy "a/b": id: duplicate`) {
		t.Fatalf("duplicate IDs: %v", err)
	}
	good := Config{Policies: []Policy{{ID: "a/b", JWT: &JWT{Providers: []JWTProvider{okProvider()}}, OIDC: okOIDC()}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}
