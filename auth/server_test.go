package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestUnknownOrMissingPolicyIsDenied(t *testing.T) {
	clock := newClock()
	s, reg := newTestServer(t, clock, nil)
	if a := check(t, s, req{path: "/"}); a.code != 403 {
		t.Fatalf("before any config: %d, want 403", a.code)
	}
	if err := s.SetConfig(Config{Policies: []Policy{{ID: "default/open"}}}); err != nil {
		t.Fatal(err)
	}
	if a := check(t, s, req{policy: "default/open", path: "/"}); a.code != 200 {
		t.Fatalf("known policy: %d", a.code)
	}
	if a := check(t, s, req{policy: "default/typo", path: "/"}); a.code != 403 {
		t.Fatalf("unknown policy: %d, want 403", a.code)
	}
	if a := check(t, s, req{policy: "-", path: "/"}); a.code != 403 {
		t.Fatalf("no policy: %d, want 403", a.code)
	}
	if got := counterValue(t, reg, "sekisho_authz_checks_total", map[string]string{"result": "unknown_policy"}); got != 2 {
		t.Errorf("checks_total{unknown_policy} = %v, want 2", got)
	}
	if got := counterValue(t, reg, "sekisho_authz_checks_total", map[string]string{"result": "no_policy"}); got != 1 {
		t.Errorf("checks_total{no_policy} = %v, want 1", got)
	}
	if got := counterValue(t, reg, "sekisho_authz_checks_total", map[string]string{"policy": "default/open", "result": "allow"}); got != 1 {
		t.Errorf("checks_total{default/open, allow} = %v, want 1", got)
	}
}

func TestBadConfigKeepsTheLastGood(t *testing.T) {
	clock := newClock()
	cfg := jwtPolicy(t, nil)
	s, _ := newTestServer(t, clock, cfg)
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), nil))

	bad := jwtPolicy(t, func(p *JWTProvider) { p.Algorithms = []string{"HS256"} })
	err := s.SetConfig(*bad)
	if err == nil || !strings.Contains(err.Error(), `policy "default/api": jwt.providers[0].algorithms[0]`) {
		t.Fatalf("SetConfig error = %v", err)
	}
	if a := check(t, s, req{path: "/", headers: bearer(tok)}); a.code != 200 {
		t.Fatalf("after a rejected config: %d, want the last good config to serve", a.code)
	}
	if s.Ready() != nil {
		t.Fatal("not ready")
	}
}

func TestUnchangedPolicyKeepsItsState(t *testing.T) {
	clock := newClock()
	cfg := jwtPolicy(t, nil)
	s, _ := newTestServer(t, clock, cfg)
	before := s.snap.Load().policies[testPolicy]
	cfg.Policies = append(cfg.Policies, Policy{ID: "default/other"})
	if err := s.SetConfig(*cfg); err != nil {
		t.Fatal(err)
	}
	if s.snap.Load().policies[testPolicy] != before {
		t.Fatal("an unchanged policy was rebuilt (its caches dropped)")
	}
	cfg.Policies[0].JWT.Optional = true
	if err := s.SetConfig(*cfg); err != nil {
		t.Fatal(err)
	}
	if s.snap.Load().policies[testPolicy] == before {
		t.Fatal("a changed policy was not rebuilt")
	}
}

func TestHandler(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, nil)
	h := s.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before config: %d", code)
	}
	if err := s.SetConfig(*jwtPolicy(t, nil)); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	check(t, s, req{path: "/"})
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, m := range []string{"sekisho_authz_checks_total", "sekisho_authz_check_duration_seconds_bucket"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestBadPathIs400(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, &Config{Policies: []Policy{{ID: testPolicy}}})
	for _, p := range []string{"/a%2Fb", "/a%5cb", "/a#b", "/a%zz", "a", "/a b"} {
		if a := check(t, s, req{path: p}); a.code != 400 {
			t.Errorf("%q: %d, want 400", p, a.code)
		}
	}
}

// TestGRPC runs Check through a real gRPC server on 127.0.0.1, with
// concurrent callers and a config swap in the middle.
func TestGRPC(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	lis, srv := serveGRPC(t, s)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	toks := []string{
		sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), nil)),
		sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(clock.Now(), nil)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.Check(ctx, req{path: "/", headers: bearer(toks[(w+i)%2])}.proto())
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if resp.GetOkResponse() == nil {
					errs <- io.ErrUnexpectedEOF
					return
				}
			}
		}(w)
	}
	cfg := jwtPolicy(t, nil)
	cfg.Policies = append(cfg.Policies, Policy{ID: "default/x"})
	if err := s.SetConfig(*cfg); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
