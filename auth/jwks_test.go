package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func remotePolicy(uri string, ttl time.Duration) *Config {
	return &Config{Policies: []Policy{{ID: testPolicy, JWT: &JWT{Providers: []JWTProvider{{
		Name: "remote", Issuer: testIssuer, Audiences: []string{testAudience},
		RemoteJWKS: &RemoteJWKS{URI: uri, CacheDuration: Duration(ttl)},
	}}}}}}
}

func TestJWKSRefetchOnRotation(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock := newClock()
	s, reg := newTestServer(t, clock, remotePolicy(js.URL, 10*time.Minute))
	now := clock.Now()

	old := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(now, nil))
	if a := check(t, s, req{path: "/", headers: bearer(old)}); a.code != 200 {
		t.Fatalf("k1: got %d", a.code)
	}
	if js.hits.Load() != 1 {
		t.Fatalf("fetches = %d, want 1", js.hits.Load())
	}
	// The issuer rotates: k2 is published and tokens are signed with it.
	js.doc.Store(jwksDoc(rsaJWK("k1", &rsaKey.PublicKey), rsaJWK("k2", &rsaKey2.PublicKey)))
	rotated := sign(t, jwt.SigningMethodRS256, rsaKey2, "k2", claimsAt(now, nil))
	if a := check(t, s, req{path: "/", headers: bearer(rotated)}); a.code != 200 {
		t.Fatalf("k2 after rotation: got %d", a.code)
	}
	if js.hits.Load() != 2 {
		t.Fatalf("fetches = %d, want 2 (one refetch for the unknown kid)", js.hits.Load())
	}
	if a := check(t, s, req{path: "/", headers: bearer(old)}); a.code != 200 {
		t.Fatalf("k1 after rotation: got %d", a.code)
	}
	if got := counterValue(t, reg, "sekisho_authz_jwks_fetch_total", map[string]string{"result": "success"}); got != 2 {
		t.Errorf("jwks_fetch_total{success} = %v, want 2", got)
	}
}

func TestJWKSUnknownKidRefetchIsRateLimited(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock := newClock()
	s, _ := newTestServer(t, clock, remotePolicy(js.URL, time.Hour))
	now := clock.Now()
	if a := check(t, s, req{path: "/", headers: bearer(sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(now, nil)))}); a.code != 200 {
		t.Fatalf("k1: got %d", a.code)
	}
	base := js.hits.Load()

	// Tokens naming kids the JWKS does not have, as an attacker would send.
	for i := 0; i < 20; i++ {
		tok := sign(t, jwt.SigningMethodRS256, rsaKey2, "nope"+string(rune('a'+i)), claimsAt(now, nil))
		if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 401 {
			t.Fatalf("unknown kid %d: got %d, want 401", i, a.code)
		}
		clock.Add(100 * time.Millisecond) // 2s in all: within one interval
	}
	if got := js.hits.Load() - base; got != 1 {
		t.Fatalf("refetches for unknown kids within 10s = %d, want 1", got)
	}
	clock.Add(kidRefetchInterval)
	tok := sign(t, jwt.SigningMethodRS256, rsaKey2, "still-unknown", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 401 {
		t.Fatalf("unknown kid: got %d", a.code)
	}
	if got := js.hits.Load() - base; got != 2 {
		t.Fatalf("refetches after the interval = %d, want 2", got)
	}
}

func TestJWKSKeptWhenFetchFails(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock := newClock()
	s, reg := newTestServer(t, clock, remotePolicy(js.URL, time.Minute))
	tokAt := func() string {
		// A new token each time, so the verification cache does not hide
		// the key lookup.
		return sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(clock.Now(), jwt.MapClaims{"jti": clock.Now().String()}))
	}
	if a := check(t, s, req{path: "/", headers: bearer(tokAt())}); a.code != 200 {
		t.Fatalf("first: got %d", a.code)
	}

	js.fail.Store(true)
	clock.Add(2 * time.Minute) // the cache is due
	if a := check(t, s, req{path: "/", headers: bearer(tokAt())}); a.code != 200 {
		t.Fatalf("JWKS answering 500: got %d, want 200 with the cached keys", a.code)
	}
	if js.hits.Load() != 2 {
		t.Fatalf("fetches = %d, want 2", js.hits.Load())
	}
	if got := counterValue(t, reg, "sekisho_authz_jwks_fetch_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("jwks_fetch_total{error} = %v, want 1", got)
	}
	// Not fetched again on every request after a failure.
	clock.Add(time.Second)
	if a := check(t, s, req{path: "/", headers: bearer(tokAt())}); a.code != 200 {
		t.Fatalf("got %d", a.code)
	}
	if js.hits.Load() != 2 {
		t.Fatalf("fetches = %d right after a failure, want 2", js.hits.Load())
	}

	js.Close() // the JWKS server is gone
	clock.Add(2 * time.Minute)
	if a := check(t, s, req{path: "/", headers: bearer(tokAt())}); a.code != 200 {
		t.Fatalf("JWKS server stopped: got %d, want 200 with the cached keys", a.code)
	}
	if got := counterValue(t, reg, "sekisho_authz_jwks_fetch_total", map[string]string{"result": "error"}); got != 2 {
		t.Errorf("jwks_fetch_total{error} = %v, want 2", got)
	}
}

func TestJWKSCacheExpiry(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock := newClock()
	s, _ := newTestServer(t, clock, remotePolicy(js.URL, time.Minute))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("got %d", a.code)
	}
	clock.Add(50 * time.Second)
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("got %d", a.code)
	}
	if js.hits.Load() != 1 {
		t.Fatalf("fetches before the cache duration = %d, want 1", js.hits.Load())
	}

	// k1 is withdrawn. Once the cache is due the JWKS is fetched again, and
	// the verification cached for the token is not trusted any more.
	js.doc.Store(jwksDoc(rsaJWK("k2", &rsaKey2.PublicKey)))
	clock.Add(11 * time.Second)
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 401 {
		t.Fatalf("token of a withdrawn key: got %d, want 401", a.code)
	}
	if js.hits.Load() < 2 {
		t.Fatalf("fetches after the cache duration = %d, want at least 2", js.hits.Load())
	}
	tok2 := sign(t, jwt.SigningMethodRS256, rsaKey2, "k2", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(tok2)}); a.code != 200 {
		t.Fatalf("k2: got %d", a.code)
	}
}

func TestJWKSNeverLoaded(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, "")
	js.fail.Store(true)
	clock := newClock()
	s, _ := newTestServer(t, clock, remotePolicy(js.URL, time.Minute))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 503 {
		t.Fatalf("no keys ever loaded: got %d, want 503", a.code)
	}
	js.fail.Store(false)
	js.doc.Store(jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock.Add(emptyRetryInterval)
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("after the JWKS came up: got %d", a.code)
	}
}

func TestSetConfigKeepsJWKSCache(t *testing.T) {
	keys(t)
	js := newJWKSServer(t, jwksDoc(rsaJWK("k1", &rsaKey.PublicKey)))
	clock := newClock()
	cfg := remotePolicy(js.URL, time.Hour)
	s, _ := newTestServer(t, clock, cfg)
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", claimsAt(clock.Now(), nil))
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("got %d", a.code)
	}
	// The policy changes (a claim header), the provider's JWKS does not.
	cfg.Policies[0].JWT.Providers[0].ClaimToHeaders = []ClaimToHeader{{Claim: "sub", Header: "x-user"}}
	cfg.Policies = append(cfg.Policies, Policy{ID: "default/other"})
	if err := s.SetConfig(*cfg); err != nil {
		t.Fatal(err)
	}
	a := check(t, s, req{path: "/", headers: bearer(tok)})
	if a.code != 200 || a.set["x-user"] != "alice" {
		t.Fatalf("after SetConfig: %d %v", a.code, a.set)
	}
	if js.hits.Load() != 1 {
		t.Fatalf("fetches = %d, want 1: the JWKS cache was dropped", js.hits.Load())
	}
}

func TestParseJWKS(t *testing.T) {
	keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := ecJWK("bad", &ecKey.PublicKey)
	y := []byte(offCurve["y"].(string))
	if y[0] == 'A' {
		y[0] = 'B'
	} else {
		y[0] = 'A'
	}
	offCurve["y"] = string(y)
	enc := rsaJWK("enc", &rsaKey.PublicKey)
	enc["use"] = "enc"
	wrongAlg := rsaJWK("wrong", &rsaKey.PublicKey)
	wrongAlg["alg"] = "ES256"

	ks, err := parseJWKS([]byte(jwksDoc(
		rsaJWK("small", &small.PublicKey),
		offCurve,
		enc,
		wrongAlg,
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
		rsaJWK("good", &rsaKey.PublicKey),
		ecJWK("good-ec", &ecKey.PublicKey),
	)))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range ks.keys {
		kids = append(kids, k.kid)
	}
	if strings.Join(kids, ",") != "good,good-ec" {
		t.Fatalf("usable keys = %v, want good,good-ec", kids)
	}
	if _, err := parseJWKS([]byte(jwksDoc(rsaJWK("small", &small.PublicKey)))); err == nil {
		t.Fatal("a JWKS with only a 1024-bit key parsed")
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a JWKS with only a symmetric key parsed")
	}
	if _, err := parseJWKS([]byte(`not json`)); err == nil {
		t.Fatal("invalid JSON parsed")
	}
}
