package auth

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// jwtPolicy is a policy with one provider reading the Authorization header,
// verifying with an RSA key "rsa1" and an EC key "ec1".
func jwtPolicy(t testing.TB, mod func(*JWTProvider)) *Config {
	keys(t)
	// The RSA key does not pin its algorithm (many issuers' JWKS do not),
	// so only the provider's algorithm list keeps PS256 out.
	rsa1 := rsaJWK("rsa1", &rsaKey.PublicKey)
	delete(rsa1, "alg")
	p := JWTProvider{
		Name:       "main",
		Issuer:     testIssuer,
		Audiences:  []string{testAudience, "other"},
		LocalJWKS:  jwksDoc(rsa1, ecJWK("ec1", &ecKey.PublicKey)),
		Algorithms: []string{"RS256", "ES256"},
		ClaimToHeaders: []ClaimToHeader{
			{Claim: "sub", Header: "X-User"},
			{Claim: "groups", Header: "x-groups"},
			{Claim: "email", Header: "x-email"},
			{Claim: "level", Header: "x-level"},
		},
	}
	if mod != nil {
		mod(&p)
	}
	return &Config{Policies: []Policy{{ID: testPolicy, JWT: &JWT{Providers: []JWTProvider{p}}}}}
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestJWTAttacksAreRefused(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	now := clock.Now()
	good := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, nil))

	rsaPubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})

	tampered := func() string {
		parts := strings.Split(good, ".")
		c := claimsAt(now, jwt.MapClaims{"sub": "admin"})
		b, _ := json.Marshal(c)
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}()
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claimsAt(now, nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// "none" with a kid the JWKS has, in case a verifier looked the key up
	// first.
	noneKid := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claimsAt(now, nil))
		tok.Header["kid"] = "rsa1"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()

	cases := []struct {
		name    string
		headers map[string]string
		path    string
		invalid bool // answered with error="invalid_token" (a token was found)
	}{
		{"alg none", bearer(noneTok), "", true},
		{"alg none with a known kid", bearer(noneKid), "", true},
		{"HS256 with the RSA public key (PEM) as secret", bearer(sign(t, jwt.SigningMethodHS256, rsaPubPEM, "rsa1", claimsAt(now, nil))), "", true},
		{"HS256 with the RSA public key (DER) as secret", bearer(sign(t, jwt.SigningMethodHS256, rsaPubDER, "rsa1", claimsAt(now, nil))), "", true},
		{"HS256 with the JWK modulus as secret", bearer(sign(t, jwt.SigningMethodHS256, rsaKey.N.Bytes(), "", claimsAt(now, nil))), "", true},
		{"expired", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}))), "", true},
		{"expired beyond the leeway", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"exp": now.Add(-31 * time.Second).Unix()}))), "", true},
		{"not yet valid", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}))), "", true},
		{"issued in the future", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"iat": now.Add(time.Hour).Unix()}))), "", true},
		{"wrong issuer", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"iss": "https://evil.test"}))), "", true},
		{"no issuer", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"iss": nil}))), "", true},
		{"wrong audience", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"aud": "someone-else"}))), "", true},
		{"audience array without ours", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"aud": []string{"a", "b"}}))), "", true},
		{"no audience", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"aud": nil}))), "", true},
		{"unknown kid", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa9", claimsAt(now, nil))), "", true},
		{"no kid with several keys", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "", claimsAt(now, nil))), "", true},
		{"signed by another key under a known kid", bearer(sign(t, jwt.SigningMethodRS256, rsaKey2, "rsa1", claimsAt(now, nil))), "", true},
		{"RS256 naming the EC key", bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "ec1", claimsAt(now, nil))), "", true},
		{"ES256 naming the RSA key", bearer(sign(t, jwt.SigningMethodES256, ecKey, "rsa1", claimsAt(now, nil))), "", true},
		{"algorithm not allowed (PS256)", bearer(sign(t, jwt.SigningMethodPS256, rsaKey, "rsa1", claimsAt(now, nil))), "", true},
		{"tampered payload", bearer(tampered), "", true},
		{"signature cut off", bearer(good[:strings.LastIndexByte(good, '.')+1]), "", true},
		{"garbage", bearer("not.a.jwt"), "", true},
		{"kid not a string", bearer(func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsAt(now, nil))
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(rsaKey)
			return s
		}()), "", true},
		{"critical header parameter", bearer(func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsAt(now, nil))
			tok.Header["kid"] = "rsa1"
			tok.Header["crit"] = []string{"exp"}
			s, _ := tok.SignedString(rsaKey)
			return s
		}()), "", true},
		{"no token", nil, "", false},
		{"basic credentials instead of a token", map[string]string{"authorization": "Basic YWxpY2U6cHc="}, "", false},
		{"token in a query parameter (policy reads headers)", nil, "/?access_token=" + good, false},
		{"token in a cookie (policy reads headers)", map[string]string{"cookie": "access_token=" + good + "; jwt=" + good}, "", false},
		{"token in another header", map[string]string{"x-jwt": good, "x-auth-token": "Bearer " + good}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = "/api"
			}
			a := check(t, s, req{path: path, headers: c.headers})
			if a.code != 401 {
				t.Fatalf("got %d, want 401", a.code)
			}
			wa := strings.Join(a.hdrs["www-authenticate"], ",")
			if c.invalid && wa != `Bearer error="invalid_token"` {
				t.Errorf("www-authenticate = %q, want Bearer error=\"invalid_token\"", wa)
			}
			if !c.invalid && wa != "Bearer" {
				t.Errorf("www-authenticate = %q, want Bearer", wa)
			}
		})
	}

	// The good token passes: the refusals above are the checks'.
	if a := check(t, s, req{path: "/api", headers: bearer(good)}); a.code != 200 {
		t.Fatalf("a valid token got %d", a.code)
	}
}

func TestJWTValidTokens(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	now := clock.Now()
	extra := jwt.MapClaims{
		"groups": []string{"dev", "ops"},
		"level":  3,
		"admin":  true,
		"org":    map[string]any{"id": "x"},
		"aud":    []string{"x", testAudience},
	}
	for _, c := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, extra))},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(now, extra))},
		{"expired within the leeway", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"exp": now.Add(-20 * time.Second).Unix(), "groups": []string{"dev", "ops"}, "level": 3}))},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := bearer(c.tok)
			h["x-user"] = "admin"      // forged: replaced
			h["x-email"] = "boss@corp" // forged, no such claim: removed
			h["accept"] = "text/html"  // unrelated: untouched
			a := check(t, s, req{path: "/api/items?x=1", headers: h})
			if a.code != 200 {
				t.Fatalf("got %d (%s)", a.code, a.body)
			}
			if a.set["x-user"] != "alice" {
				t.Errorf("x-user = %q, want alice", a.set["x-user"])
			}
			if a.set["x-groups"] != "dev,ops" {
				t.Errorf("x-groups = %q, want dev,ops", a.set["x-groups"])
			}
			if a.set["x-level"] != "3" {
				t.Errorf("x-level = %q, want 3", a.set["x-level"])
			}
			if !a.isRemoved("x-email") {
				t.Errorf("forged x-email is not removed: removed %v", a.removed)
			}
			if !a.isRemoved("authorization") {
				t.Errorf("token is forwarded: removed %v", a.removed)
			}
			cl := a.claims()
			if cl["sub"] != "alice" || cl["iss"] != testIssuer || cl["level"] != float64(3) {
				t.Errorf("metadata claims = %v", cl)
			}
			if c.name == "RS256" && cl["admin"] != true {
				t.Errorf("metadata claims = %v", cl)
			}
			if _, ok := cl["org"]; ok {
				t.Errorf("metadata has an object claim: %v", cl)
			}
			if _, ok := cl["groups"]; ok {
				t.Errorf("metadata has an array claim: %v", cl)
			}
		})
	}
}

func TestJWTForwardToken(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, func(p *JWTProvider) { p.ForwardToken = true }))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), nil))
	a := check(t, s, req{path: "/", headers: bearer(tok)})
	if a.code != 200 {
		t.Fatalf("got %d", a.code)
	}
	if a.isRemoved("authorization") {
		t.Fatal("the token is removed although forwardToken is set")
	}
}

func TestJWTCachedTokenStillExpires(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	now := clock.Now()
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(now, jwt.MapClaims{"exp": now.Add(2 * time.Minute).Unix()}))
	for i := 0; i < 3; i++ {
		if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
			t.Fatalf("check %d: got %d", i, a.code)
		}
	}
	if n := s.snap.Load().policies[testPolicy].jwt.cache.len(); n != 1 {
		t.Fatalf("cache holds %d tokens, want 1", n)
	}
	clock.Add(2*time.Minute + 29*time.Second)
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("within the leeway: got %d", a.code)
	}
	clock.Add(2 * time.Second)
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 401 {
		t.Fatalf("after exp + leeway: got %d, want 401", a.code)
	}
}

func TestJWTTokenCacheSize(t *testing.T) {
	for _, tc := range []struct {
		size, want int
	}{{0, 1}, {-1, 0}, {4, 1}} {
		clock := newClock()
		reg := prometheus.NewRegistry()
		s, err := NewServer(Options{Registerer: reg, Clock: clock.Now, TokenCacheSize: tc.size})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetConfig(*jwtPolicy(t, nil)); err != nil {
			t.Fatal(err)
		}
		tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), nil))
		for i := 0; i < 3; i++ {
			if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
				t.Fatalf("size %d, check %d: got %d", tc.size, i, a.code)
			}
		}
		if n := s.snap.Load().policies[testPolicy].jwt.cache.len(); n != tc.want {
			t.Errorf("TokenCacheSize %d: cache holds %d tokens, want %d", tc.size, n, tc.want)
		}
		if bad := check(t, s, req{path: "/", headers: bearer(tok[:len(tok)-4] + "AAAA")}); bad.code != 401 {
			t.Errorf("TokenCacheSize %d: a tampered token got %d, want 401", tc.size, bad.code)
		}
	}
}

func TestJWTOptional(t *testing.T) {
	clock := newClock()
	cfg := jwtPolicy(t, nil)
	cfg.Policies[0].JWT.Optional = true
	s, _ := newTestServer(t, clock, cfg)

	a := check(t, s, req{path: "/", headers: map[string]string{"x-user": "admin"}})
	if a.code != 200 {
		t.Fatalf("no token: got %d", a.code)
	}
	if !a.isRemoved("x-user") || !a.isRemoved("x-groups") {
		t.Errorf("anonymous request keeps claim headers: removed %v", a.removed)
	}
	if a.resp.GetDynamicMetadata() != nil {
		t.Errorf("anonymous request has metadata %v", a.resp.GetDynamicMetadata())
	}
	bad := sign(t, jwt.SigningMethodRS256, rsaKey2, "rsa1", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(bad)}); a.code != 401 {
		t.Fatalf("bad token on an optional policy: got %d, want 401", a.code)
	}
}

func TestJWTCookieAndParam(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, func(p *JWTProvider) {
		p.ExtractFrom = &ExtractFrom{
			Headers: []TokenHeader{{Name: "X-JWT"}},
			Cookies: []string{"jwt"},
			Params:  []string{"access_token"},
		}
	}))
	tok := sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(clock.Now(), nil))

	a := check(t, s, req{path: "/", headers: map[string]string{"cookie": "theme=dark; jwt=" + tok + "; lang=en"}})
	if a.code != 200 {
		t.Fatalf("cookie: got %d", a.code)
	}
	if a.set["cookie"] != "theme=dark; lang=en" {
		t.Errorf("cookie sent upstream = %q", a.set["cookie"])
	}
	a = check(t, s, req{path: "/", headers: map[string]string{"cookie": "jwt=" + tok}})
	if a.code != 200 || !a.isRemoved("cookie") {
		t.Errorf("only cookie: got %d, removed %v", a.code, a.removed)
	}

	a = check(t, s, req{path: "/search?q=1&access_token=" + tok})
	if a.code != 200 {
		t.Fatalf("param: got %d", a.code)
	}
	if len(a.qremoved) != 1 || a.qremoved[0] != "access_token" {
		t.Errorf("query parameters removed: %v", a.qremoved)
	}

	a = check(t, s, req{path: "/", headers: map[string]string{"x-jwt": tok}})
	if a.code != 200 || !a.isRemoved("x-jwt") {
		t.Errorf("header: got %d, removed %v", a.code, a.removed)
	}
	// The Authorization header is not a place this provider reads.
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 401 {
		t.Errorf("Authorization: got %d, want 401", a.code)
	}
}

func TestJWTSeveralProviders(t *testing.T) {
	keys(t)
	clock := newClock()
	cfg := &Config{Policies: []Policy{{ID: testPolicy, JWT: &JWT{Providers: []JWTProvider{
		{
			Name: "corp", Issuer: "https://corp.test", LocalJWKS: jwksDoc(rsaJWK("k", &rsaKey.PublicKey)),
			ClaimToHeaders: []ClaimToHeader{{Claim: "sub", Header: "x-user"}},
		},
		{
			Name: "partner", Issuer: "https://partner.test", LocalJWKS: jwksDoc(ecJWK("k", &ecKey.PublicKey)),
			ExtractFrom:    &ExtractFrom{Headers: []TokenHeader{{Name: "x-partner-token"}}},
			ClaimToHeaders: []ClaimToHeader{{Claim: "sub", Header: "x-partner"}},
		},
	}}}}}
	s, _ := newTestServer(t, clock, cfg)
	now := clock.Now()
	corp := sign(t, jwt.SigningMethodRS256, rsaKey, "k", claimsAt(now, jwt.MapClaims{"iss": "https://corp.test", "aud": nil}))
	partner := sign(t, jwt.SigningMethodES256, ecKey, "k", claimsAt(now, jwt.MapClaims{"iss": "https://partner.test", "aud": nil, "sub": "bob"}))
	forged := sign(t, jwt.SigningMethodES256, ecKey, "k", claimsAt(now, jwt.MapClaims{"iss": "https://corp.test", "aud": nil}))

	a := check(t, s, req{path: "/", headers: map[string]string{"authorization": "Bearer " + corp, "x-partner": "forged"}})
	if a.code != 200 || a.set["x-user"] != "alice" || !a.isRemoved("x-partner") {
		t.Errorf("corp token: %d set %v removed %v", a.code, a.set, a.removed)
	}
	a = check(t, s, req{path: "/", headers: map[string]string{"x-partner-token": partner}})
	if a.code != 200 || a.set["x-partner"] != "bob" || !a.isRemoved("x-user") || !a.isRemoved("x-partner-token") {
		t.Errorf("partner token: %d set %v removed %v", a.code, a.set, a.removed)
	}
	for name, h := range map[string]map[string]string{
		"partner token where only corp reads":     bearer(partner),
		"corp issuer signed with the partner key": bearer(forged),
		"corp token where only partner reads":     {"x-partner-token": corp},
	} {
		if a := check(t, s, req{path: "/", headers: h}); a.code != 401 {
			t.Errorf("%s: got %d, want 401", name, a.code)
		}
	}
}
