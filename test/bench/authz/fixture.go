package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sekisho/sekisho/auth"
)

const (
	policyID = "bench/api"
	issuer   = "https://id.bench.test"
	audience = "orders-api"
)

// fixture is the policy and the tokens of a run.
type fixture struct {
	cfg    auth.Config
	tokens map[string]string // by algorithm
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newFixture() (*fixture, error) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ep, err := ek.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64(ep[1:33]), "y": b64(ep[33:])},
	}})
	if err != nil {
		return nil, err
	}
	fx := &fixture{tokens: map[string]string{}}
	fx.cfg = auth.Config{Policies: []auth.Policy{{
		ID: policyID,
		JWT: &auth.JWT{Providers: []auth.JWTProvider{{
			Name: "corp", Issuer: issuer, Audiences: []string{audience},
			LocalJWKS: string(jwks),
			ClaimToHeaders: []auth.ClaimToHeader{
				{Claim: "sub", Header: "x-user"},
				{Claim: "groups", Header: "x-groups"},
				{Claim: "tenant", Header: "x-tenant"},
			},
		}}},
		Authorization: &auth.Authorization{
			DefaultAction: auth.ActionDeny,
			Rules: []auth.AuthzRule{
				{Name: "admins", Action: auth.ActionAllow,
					Principal: &auth.Principal{Claims: []auth.ClaimMatch{{Name: "groups", Values: []string{"admin"}}}},
					Operation: &auth.Operation{Paths: []auth.PathMatch{{Type: auth.PathPrefix, Value: "/admin"}}}},
				{Name: "no-admin", Action: auth.ActionDeny,
					Operation: &auth.Operation{Paths: []auth.PathMatch{{Type: auth.PathPrefix, Value: "/admin"}}}},
				{Name: "office", Action: auth.ActionAllow,
					Principal: &auth.Principal{ClientCIDRs: []string{"10.1.0.0/16"}},
					Operation: &auth.Operation{Paths: []auth.PathMatch{{Type: auth.PathPrefix, Value: "/reports"}}}},
				{Name: "health", Action: auth.ActionAllow,
					Operation: &auth.Operation{Methods: []string{"GET"}, Paths: []auth.PathMatch{{Type: auth.PathExact, Value: "/healthz"}}}},
				{Name: "static", Action: auth.ActionAllow,
					Operation: &auth.Operation{Paths: []auth.PathMatch{{Type: auth.PathRegularExpression, Value: `/static/[a-z0-9]+\.(css|js)`}}}},
				{Name: "orders", Action: auth.ActionAllow,
					Principal: &auth.Principal{Claims: []auth.ClaimMatch{{Name: "scope", Values: []string{"orders:read"}}}},
					Operation: &auth.Operation{Methods: []string{"GET", "HEAD"}, Paths: []auth.PathMatch{{Type: auth.PathPrefix, Value: "/api/v1/orders"}}}},
			},
		},
	}}}
	if err := fx.cfg.Validate(); err != nil {
		return nil, err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": "user-4711", "tenant": "acme",
		"groups": []string{"staff", "orders"}, "scope": []string{"orders:read", "orders:write"},
		"email": "someone@acme.example", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(),
	}
	for alg, signer := range map[string]struct {
		m   jwt.SigningMethod
		key any
		kid string
	}{
		"RS256": {jwt.SigningMethodRS256, rk, "rsa-1"},
		"ES256": {jwt.SigningMethodES256, ek, "ec-1"},
	} {
		t := jwt.NewWithClaims(signer.m, claims)
		t.Header["kid"] = signer.kid
		s, err := t.SignedString(signer.key)
		if err != nil {
			return nil, err
		}
		fx.tokens[alg] = s
	}
	return fx, nil
}

func (fx *fixture) writeConfig(dir string) (string, error) {
	b, err := json.Marshal(fx.cfg)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "authz.json")
	return p, os.WriteFile(p, b, 0o600)
}

// request is a typical API call as the proxy sends it: a bearer token and
// a browser's worth of headers.
func (fx *fixture) request(alg string) *authv3.CheckRequest {
	const path = "/api/v1/orders/1234?expand=items"
	h := map[string]string{
		"authorization":     "Bearer " + fx.tokens[alg],
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
		"accept":            "application/json",
		"accept-encoding":   "gzip, deflate, br",
		"accept-language":   "en-US,en;q=0.9",
		"x-request-id":      "3f1e2d4c-5b6a-4789-8a9b-0c1d2e3f4a5b",
		"x-forwarded-for":   "203.0.113.9",
		"x-forwarded-proto": "https",
		":authority":        "api.example.com",
		":path":             path,
		":method":           "GET",
		":scheme":           "https",
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: path, Host: "api.example.com", Scheme: "https", Headers: h, Protocol: "HTTP/1.1",
		}},
		ContextExtensions: map[string]string{auth.PolicyKey: policyID},
	}}
}

// checkOK returns an error unless a response allows the request.
func checkOK(resp *authv3.CheckResponse) error {
	if resp.GetOkResponse() == nil {
		return fmt.Errorf("request denied: %d %s", resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
	}
	return nil
}
