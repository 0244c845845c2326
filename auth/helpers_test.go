package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Keys are generated once per test binary: RSA 2048 generation is slow.
var (
	keysOnce             sync.Once
	rsaKey, rsaKey2      *rsa.PrivateKey
	ecKey, ecKey2        *ecdsa.PrivateKey
	testIssuer           = "https://issuer.test"
	testAudience         = "api.sekisho.test"
	testPolicy           = "default/api"
	testStart            = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	errTestKeyGeneration error
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			errTestKeyGeneration = err
			return
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			errTestKeyGeneration = err
			return
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			errTestKeyGeneration = err
			return
		}
		if ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			errTestKeyGeneration = err
		}
	})
	if errTestKeyGeneration != nil {
		t.Fatal(errTestKeyGeneration)
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes()),
	}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	n := (len(b) - 1) / 2
	return map[string]any{
		"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
		"x": b64u(b[1 : 1+n]), "y": b64u(b[1+n:]),
	}
}

func jwksDoc(keys ...map[string]any) string {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sign makes a token; kid "" leaves the header without one.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt are valid claims for testIssuer/testAudience at now.
func claimsAt(now time.Time, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "alice",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestServer makes a server on a fake clock with its own registry.
func newTestServer(t testing.TB, clock *fakeClock, cfg *Config) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := NewServer(Options{Registerer: reg, Clock: clock.Now, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		if err := s.SetConfig(*cfg); err != nil {
			t.Fatal(err)
		}
	}
	return s, reg
}

// req is a request to check.
type req struct {
	policy  string
	method  string
	path    string
	host    string
	scheme  string
	source  string
	headers map[string]string
}

func (r req) proto() *authv3.CheckRequest {
	if r.method == "" {
		r.method = "GET"
	}
	if r.host == "" {
		r.host = "app.example.com"
	}
	switch r.scheme {
	case "":
		r.scheme = "https"
	case "-":
		r.scheme = ""
	}
	if r.source == "" {
		r.source = "127.0.0.1"
	}
	if r.policy == "" {
		r.policy = testPolicy
	}
	h := map[string]string{}
	for k, v := range r.headers {
		h[strings.ToLower(k)] = v
	}
	ext := map[string]string{}
	if r.policy != "-" {
		ext[PolicyKey] = r.policy
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: r.source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.method, Path: r.path, Host: r.host, Scheme: r.scheme, Headers: h,
		}},
		ContextExtensions: ext,
	}}
}

// answer is a CheckResponse read for assertions.
type answer struct {
	resp *authv3.CheckResponse
	code int // 200 for OK
	// OK
	set      map[string]string
	removed  []string
	qremoved []string
	respHdrs map[string][]string
	// denied
	hdrs map[string][]string
	body string
}

func check(t testing.TB, s *Server, r req) answer {
	t.Helper()
	resp, err := s.Check(context.Background(), r.proto())
	if err != nil {
		t.Fatalf("Check returned an error: %v", err)
	}
	a := answer{resp: resp, set: map[string]string{}, respHdrs: map[string][]string{}, hdrs: map[string][]string{}}
	if ok := resp.GetOkResponse(); ok != nil {
		if resp.GetStatus().GetCode() != 0 {
			t.Fatalf("OK response with status %d", resp.GetStatus().GetCode())
		}
		a.code = 200
		for _, h := range ok.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Fatalf("request header %q is not set with OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey())
			}
			a.set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		a.removed = append(a.removed, ok.GetHeadersToRemove()...)
		sort.Strings(a.removed)
		a.qremoved = ok.GetQueryParametersToRemove()
		for _, h := range ok.GetResponseHeadersToAdd() {
			a.respHdrs[h.GetHeader().GetKey()] = append(a.respHdrs[h.GetHeader().GetKey()], h.GetHeader().GetValue())
		}
		for _, k := range a.removed {
			if _, both := a.set[k]; both {
				t.Fatalf("header %q is both set and removed", k)
			}
		}
		return a
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("response is neither OK nor denied: %v", resp)
	}
	if resp.GetStatus().GetCode() == 0 {
		t.Fatal("denied response with status OK")
	}
	a.code = int(d.GetStatus().GetCode())
	for _, h := range d.GetHeaders() {
		a.hdrs[h.GetHeader().GetKey()] = append(a.hdrs[h.GetHeader().GetKey()], h.GetHeader().GetValue())
	}
	a.body = d.GetBody()
	return a
}

func (a answer) claims() map[string]any {
	m := a.resp.GetDynamicMetadata().AsMap()
	c, _ := m["claims"].(map[string]any)
	return c
}

func (a answer) isRemoved(h string) bool {
	for _, x := range a.removed {
		if x == h {
			return true
		}
	}
	return false
}

// counterValue reads a counter of a registry.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// jwksServer serves a JWKS document on 127.0.0.1 and counts requests.
type jwksServer struct {
	*httptest.Server
	doc  atomic.Value // string
	fail atomic.Bool
	hits atomic.Int64
}

func newJWKSServer(t testing.TB, doc string) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	js.doc.Store(doc)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		js.hits.Add(1)
		if js.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(js.doc.Load().(string)))
	}))
	t.Cleanup(js.Close)
	return js
}
