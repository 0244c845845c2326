package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The policy part of the run measures what sekisho's policy services add to
// a request through the proxy. A second `sekisho run`, on the same backend,
// serves the quickstart's route for / and, on the same Gateway, one
// HTTPRoute per policy path, each with its own policy:
//
//   - /plain: no policy, the baseline;
//   - /jwt-rs256 and /jwt-es256: a SecurityPolicy that requires a JWT signed
//     with RS256 (RSA-2048) or ES256 (P-256), keys inline in the policy; the
//     proxy asks the embedded authorization service (ext_authz) about every
//     request;
//   - /ratelimit: a RateLimitPolicy with one global rule per x-user-id,
//     counted in memory by the embedded rate-limit service, with a limit no
//     run reaches.
//
// Every path gets the open-loop run of the main comparison (same rate,
// length and connections, after the same one-second warm-up); a path's
// figures minus those of /plain are what its policy's hop costs.
//
// It is a sekisho of its own so that the first one keeps the quickstart's
// config: once any route of a listener has a policy, the listener runs the
// ext_authz and ratelimit filters for all its routes (turned off for those
// without one), and the figures for / would no longer be the quickstart's.

// The tokens' claims and the key IDs of the JWKS.
const (
	benchIssuer   = "https://bench.sekisho.test"
	benchAudience = "bench"
	benchSubject  = "bench-user"
	rsaKeyID      = "bench-rs256"
	ecKeyID       = "bench-es256"

	// rateLimitUsers is how many x-user-id values the /ratelimit run cycles
	// through (u0 … u999): one counter each per window.
	rateLimitUsers = 1000
)

// policyPath is one path of the policy part and what it measured.
type policyPath struct {
	path   string // also the HTTPRoute's path prefix
	policy string // what the report says of its policy
	hop    string // "authz", "ratelimit" or "" for the baseline
	// reqs are the requests of the measured run and warm those of the
	// warm-up; the open loop cycles through each.
	reqs, warm [][]byte
	open       openLoopResult
	// cpuPerReq is sekisho's CPU time (proxy and both services) per request
	// of the measured run.
	cpuPerReq time.Duration
	// calls is what the proxy's service-call counters said during the
	// measured run, by "authz allowed", "ratelimit error" and so on.
	calls map[string]float64
	fresh bool // a new token on every request
	skip  string
	notes []string
}

// policyResult is the policy part of the report.
type policyResult struct {
	paths []*policyPath
	skip  string // the part was not run, and why
}

// benchKeys are the signing keys, a JWKS of the public half of each and a
// token signed with each.
type benchKeys struct {
	rsa               *rsa.PrivateKey
	ec                *ecdsa.PrivateKey
	rsaJWKS, ecJWKS   string
	rsaToken, ecToken string
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newBenchKeys makes an RSA-2048 and a P-256 key, a one-key JWKS for each,
// and one token signed with each.
func newBenchKeys(now time.Time) (*benchKeys, error) {
	var k benchKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("generating the RSA key: %w", err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("generating the P-256 key: %w", err)
	}
	pt, err := k.ec.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("encoding the P-256 key: %w", err)
	}
	jwks := func(key map[string]string) (string, error) {
		b, err := json.Marshal(map[string][]map[string]string{"keys": {key}})
		return string(b), err
	}
	if k.rsaJWKS, err = jwks(map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": rsaKeyID,
		"n": b64url(k.rsa.N.Bytes()), "e": b64url(big.NewInt(int64(k.rsa.E)).Bytes()),
	}); err != nil {
		return nil, err
	}
	size := (len(pt) - 1) / 2
	if k.ecJWKS, err = jwks(map[string]string{
		"kty": "EC", "use": "sig", "alg": "ES256", "kid": ecKeyID, "crv": "P-256",
		"x": b64url(pt[1 : 1+size]), "y": b64url(pt[1+size:]),
	}); err != nil {
		return nil, err
	}
	if k.rsaToken, err = k.sign("RS256", benchSubject, now); err != nil {
		return nil, err
	}
	if k.ecToken, err = k.sign("ES256", benchSubject, now); err != nil {
		return nil, err
	}
	return &k, nil
}

// sign makes a token for sub, valid for an hour from now, with the key of
// alg (RS256 or ES256).
func (k *benchKeys) sign(alg, sub string, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"iss": benchIssuer,
		"aud": benchAudience,
		"sub": sub,
		"exp": now.Add(time.Hour).Unix(),
	}
	var t *jwt.Token
	var key any
	switch alg {
	case "RS256":
		t, key = jwt.NewWithClaims(jwt.SigningMethodRS256, claims), k.rsa
		t.Header["kid"] = rsaKeyID
	case "ES256":
		t, key = jwt.NewWithClaims(jwt.SigningMethodES256, claims), k.ec
		t.Header["kid"] = ecKeyID
	default:
		return "", fmt.Errorf("no key for %s", alg)
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing an %s token: %w", alg, err)
	}
	return s, nil
}

// signMany signs n tokens with alg, each for its own subject (u0, u1, …),
// on every CPU.
func (k *benchKeys) signMany(alg string, n int, now time.Time) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, n)
	workers := runtime.NumCPU()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i], errs[i] = k.sign(alg, "u"+strconv.Itoa(i), now)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writePolicyConfig adds the policy paths' HTTPRoutes and policies to a
// config folder written by writeSekishoConfig.
func writePolicyConfig(dir string, keys *benchKeys) error {
	if err := writeFile(filepath.Join(dir, "policy-routes.yaml"), func(w *bufio.Writer) {
		for _, name := range []string{"plain", "jwt-rs256", "jwt-es256", "ratelimit"} {
			writeRoute(w, name, "/"+name, 0)
		}
	}); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "policies.yaml"), func(w *bufio.Writer) {
		jwtPolicy := func(route, alg, jwks string) {
			// A JWKS is JSON without single quotes: a single-quoted YAML
			// scalar holds it as it is.
			fmt.Fprintf(w, `---
apiVersion: policy.sekisho.dev/v1alpha1
kind: SecurityPolicy
metadata:
  name: %[1]s
  namespace: default
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: %[1]s
  jwt:
    providers:
    - name: bench
      issuer: %[2]s
      audiences: [%[3]s]
      localJWKS:
        inline: '%[4]s'
      algorithms: [%[5]s]
      claimToHeaders:
      - claim: sub
        header: x-user
`, route, benchIssuer, benchAudience, jwks, alg)
		}
		jwtPolicy("jwt-rs256", "RS256", keys.rsaJWKS)
		jwtPolicy("jwt-es256", "ES256", keys.ecJWKS)
		fmt.Fprint(w, `---
apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata:
  name: ratelimit
  namespace: default
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: ratelimit
  global:
    rules:
    - name: per-user
      match:
        headers:
        - name: x-user-id
          type: Distinct
      limit:
        requests: 1000000000
        unit: Second
`)
	})
}

// measurePolicies runs the policy part. An error means that a path did not
// answer as its policy says it must, or that the part could not run at all;
// either way its figures would not mean what the report says.
func measurePolicies(cfg config, tmp string, backendPort int) (*policyResult, error) {
	now := time.Now()
	progress("policies: generating an RSA-2048 and a P-256 key and signing tokens")
	keys, err := newBenchKeys(now)
	if err != nil {
		return nil, err
	}
	interval := time.Second / time.Duration(cfg.rate)
	warmN, runN := int(time.Second/interval), int(cfg.rateDuration/interval)
	var fresh [][]string // RS256, ES256: the run's tokens, then the warm-up's
	if cfg.freshTokens {
		for _, alg := range []string{"RS256", "ES256"} {
			start := time.Now()
			toks, err := keys.signMany(alg, runN+warmN, now)
			if err != nil {
				return nil, err
			}
			progress("policies: signed %d %s tokens in %s", len(toks), alg, time.Since(start).Round(time.Millisecond))
			fresh = append(fresh, toks)
		}
	}

	progress("policies: starting sekisho run with the policy routes")
	s, err := startSekisho(cfg.sekishoBin, tmp, "sekisho-policies", backendPort, 1, cfg.readyTimeout, "/plain",
		func(dir string) error { return writePolicyConfig(dir, keys) })
	if s != nil {
		defer s.stop()
	}
	if err != nil {
		return nil, fmt.Errorf("starting sekisho with the policy routes: %w", err)
	}
	progress("policies: sekisho ready in %s, gateway on %s", s.ready.Round(time.Millisecond), s.gateway)
	if err := checkPolicyPaths(s.gateway, keys); err != nil {
		return nil, s.failed(err)
	}

	addr := s.gateway
	bearer := func(tok string) string { return "Authorization: Bearer " + tok }
	one := func(path string, headers ...string) [][]byte { return [][]byte{olRequest(addr, path, headers...)} }
	users := make([][]byte, rateLimitUsers)
	for i := range users {
		users[i] = olRequest(addr, "/ratelimit", "x-user-id: u"+strconv.Itoa(i))
	}
	paths := []*policyPath{
		{path: "/plain", policy: "none", reqs: one("/plain")},
		{path: "/jwt-rs256", policy: "SecurityPolicy: JWT, RS256 (RSA-2048)", hop: "authz",
			reqs: one("/jwt-rs256", bearer(keys.rsaToken))},
		{path: "/jwt-es256", policy: "SecurityPolicy: JWT, ES256 (P-256)", hop: "authz",
			reqs: one("/jwt-es256", bearer(keys.ecToken))},
		{path: "/ratelimit", policy: "RateLimitPolicy: a global rule per x-user-id, counters in memory", hop: "ratelimit",
			reqs: users},
	}
	for i, alg := range []string{"RS256", "ES256"}[:len(fresh)] {
		p := &policyPath{path: "/jwt-" + strings.ToLower(alg), hop: "authz", fresh: true,
			policy: fmt.Sprintf("SecurityPolicy: JWT, %s; a new token on every request", alg)}
		for j, tok := range fresh[i] {
			r := olRequest(addr, p.path, bearer(tok))
			if j < runN {
				p.reqs = append(p.reqs, r)
			} else {
				p.warm = append(p.warm, r)
			}
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		measurePolicyPath(cfg, s, p)
	}
	return &policyResult{paths: paths}, nil
}

// checkPolicyPaths makes sure, before anything is measured, that each path
// answers 200 to the requests of its run and that the policies are in
// force: a JWT path refuses a request without a token and one with a token
// signed by the other path's key, and the rate-limit path's answers carry
// the rate-limit service's RateLimit-Limit header.
func checkPolicyPaths(addr string, keys *benchKeys) error {
	client := &http.Client{Timeout: 5 * time.Second}
	checks := []struct {
		path, with string
		header     [2]string // name, value
		want       int
		wantHeader string
	}{
		{path: "/plain", with: "no token", want: http.StatusOK},
		{path: "/jwt-rs256", with: "its RS256 token", header: [2]string{"Authorization", "Bearer " + keys.rsaToken}, want: http.StatusOK},
		{path: "/jwt-rs256", with: "no token", want: http.StatusUnauthorized},
		{path: "/jwt-rs256", with: "a token signed with the P-256 key", header: [2]string{"Authorization", "Bearer " + keys.ecToken}, want: http.StatusUnauthorized},
		{path: "/jwt-es256", with: "its ES256 token", header: [2]string{"Authorization", "Bearer " + keys.ecToken}, want: http.StatusOK},
		{path: "/jwt-es256", with: "no token", want: http.StatusUnauthorized},
		{path: "/jwt-es256", with: "a token signed with the RSA key", header: [2]string{"Authorization", "Bearer " + keys.rsaToken}, want: http.StatusUnauthorized},
		{path: "/ratelimit", with: "x-user-id: u0", header: [2]string{"x-user-id", "u0"}, want: http.StatusOK, wantHeader: "RateLimit-Limit"},
	}
	var bad []string
	for _, c := range checks {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+c.path, nil)
		if err != nil {
			return err
		}
		if c.header[0] != "" {
			req.Header.Set(c.header[0], c.header[1])
		}
		resp, err := client.Do(req)
		if err != nil {
			bad = append(bad, fmt.Sprintf("GET %s with %s: %v", c.path, c.with, err))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		switch {
		case resp.StatusCode != c.want:
			bad = append(bad, fmt.Sprintf("GET %s with %s answered %s, want %d %s (body: %q)",
				c.path, c.with, resp.Status, c.want, http.StatusText(c.want), strings.TrimSpace(string(body))))
		case c.wantHeader != "" && resp.Header.Get(c.wantHeader) == "":
			bad = append(bad, fmt.Sprintf("GET %s with %s answered %s without a %s header: the rate-limit service did not count it",
				c.path, c.with, resp.Status, c.wantHeader))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the policy paths do not answer as their policies say, so their figures would not mean what the report says:\n  %s",
			strings.Join(bad, "\n  "))
	}
	progress("policies: /plain, /jwt-rs256, /jwt-es256 and /ratelimit answer 200; without a token, or with the other key's, the JWT paths answer 401")
	return nil
}

// measurePolicyPath runs the open loop on one path (after a warm-up of a
// second at the same rate) and reads, around the measured run, sekisho's CPU
// time and the proxy's counters of service calls.
func measurePolicyPath(cfg config, s *sekisho, p *policyPath) {
	name := p.path
	if p.fresh {
		name += " (a new token per request)"
	}
	progress("policies: open loop on %s", name)
	warm := p.warm
	if warm == nil {
		warm = p.reqs
	}
	if _, err := openLoopRequests(s.gateway, cfg.rate, time.Second, cfg.rateConns, warm); err != nil {
		p.skip = "open-loop warm-up failed: " + firstLine(err.Error())
		return
	}
	before, err := hopCalls(s.admin)
	if err != nil {
		p.notes = append(p.notes, err.Error())
	}
	cpu0 := treeCPU(s.pid())
	o, err := openLoopRequests(s.gateway, cfg.rate, cfg.rateDuration, cfg.rateConns, p.reqs)
	cpu := treeCPU(s.pid()) - cpu0
	if err != nil {
		p.skip = "open loop failed: " + firstLine(err.Error())
		return
	}
	p.open = o
	if cpu > 0 && o.Scheduled > 0 {
		p.cpuPerReq = cpu / time.Duration(o.Scheduled)
	}
	if o.Failed > 0 {
		p.notes = append(p.notes, fmt.Sprintf("%d of %d requests failed (first: %s)", o.Failed, o.Scheduled, o.FirstErr))
	}
	if after, err := hopCalls(s.admin); err != nil {
		p.notes = append(p.notes, err.Error())
	} else if before != nil {
		p.calls = map[string]float64{}
		for k, v := range after {
			if d := v - before[k]; d != 0 {
				p.calls[k] = d
			}
		}
		p.notes = append(p.notes, p.callProblems()...)
	}
	progress("  open loop at %d req/s: p50 %s, p99 %s, max %s (generator lateness p99 %s); service calls: %s",
		cfg.rate, fmtMS(o.P50, 3), fmtMS(o.P99, 3), fmtMS(o.Max, 2), fmtMS(o.LateP99, 3), p.callsText())
}

// callProblems says where the service calls of the measured run differ from
// one allowed call per answered request of a policy path and none for the
// baseline.
func (p *policyPath) callProblems() []string {
	var out []string
	for k, v := range p.calls {
		if p.hop == "" || !strings.HasPrefix(k, p.hop+" ") {
			out = append(out, fmt.Sprintf("the proxy counted %s calls %s during the run, where none were expected", thousands(v), k))
		}
	}
	if p.hop != "" {
		for _, k := range []string{"denied", "error", "failure open"} {
			if v := p.calls[p.hop+" "+k]; v > 0 {
				out = append(out, fmt.Sprintf("the proxy counted %s %s calls (%s) during the run", thousands(v), p.hop, k))
			}
		}
		if ok := p.calls[p.hop+" allowed"]; ok < float64(p.open.OK) {
			out = append(out, fmt.Sprintf("only %s of the %s answered requests went through an allowed %s call", thousands(ok), thousands(float64(p.open.OK)), p.hop))
		}
	}
	slices.Sort(out)
	return out
}

// callsText is the service calls of the measured run, e.g. "authz allowed
// 10 000", or "none".
func (p *policyPath) callsText() string {
	if len(p.calls) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(p.calls))
	for k := range p.calls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + thousands(p.calls[k])
	}
	return strings.Join(parts, ", ")
}

// writePolicyReport writes the policy part of the report.
func writePolicyReport(w io.Writer, cfg config, pr *policyResult) {
	rate := thousands(float64(cfg.rate))
	fmt.Fprintf(w, "\n### Policy hops at %s req/s\n\n", rate)
	if pr.skip != "" {
		fmt.Fprintf(w, "Not measured: %s\n", pr.skip)
		return
	}
	fmt.Fprintf(w, "A second `sekisho run` on the same backend: next to the quickstart's route for /, its Gateway has one HTTPRoute per path below, each with its own policy, enforced through the embedded authorization service (ext_authz) and rate-limit service (counters in memory). Open loop as above: %s req/s for %s over %d keep-alive connections after a 1 s warm-up, latency from each request's due time. The JWT paths' requests carry `Authorization: Bearer <token>` (one token per path unless said otherwise), those of /ratelimit `x-user-id: u0` … `u%d` in turn. Added: the path's figure minus /plain's. CPU: sekisho's (the proxy and both services are one process) during the measured run, per request sent; at this rate much of it is waking up for each request, so it falls as the rate rises.\n\n",
		rate, cfg.rateDuration, cfg.rateConns, rateLimitUsers-1)
	fmt.Fprintln(w, "| path | policy | p50 | p99 | max | added p50 | added p99 | sekisho CPU per request |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	var plain *policyPath
	for _, p := range pr.paths {
		if p.path == "/plain" && p.skip == "" {
			plain = p
		}
	}
	for _, p := range pr.paths {
		if p.skip != "" {
			fmt.Fprintf(w, "| %s | %s | not measured | | | | | |\n", p.path, p.policy)
			continue
		}
		added50, added99 := "", ""
		if plain != nil && p != plain {
			added50, added99 = fmtSignedMS(p.open.P50-plain.open.P50), fmtSignedMS(p.open.P99-plain.open.P99)
		}
		cpu := "n/a"
		if p.cpuPerReq > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(p.cpuPerReq)/float64(time.Microsecond))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p.path, p.policy,
			fmtMS(p.open.P50, 3), fmtMS(p.open.P99, 3), fmtMS(p.open.Max, 2), added50, added99, cpu)
	}
	fmt.Fprintln(w)
	if plain != nil {
		for _, p := range pr.paths {
			if p == plain || p.skip != "" {
				continue
			}
			var what string
			switch {
			case p.hop == "authz" && p.fresh:
				what = "the authorization hop with a signature to verify on every request (" + strings.ToUpper(strings.TrimPrefix(p.path, "/jwt-")) + ")"
			case p.hop == "authz":
				what = "the authorization hop (" + strings.ToUpper(strings.TrimPrefix(p.path, "/jwt-")) + ")"
			case p.hop == "ratelimit":
				what = "the rate-limit hop"
			default:
				continue
			}
			fmt.Fprintf(w, "- %s adds at %s req/s: p50 **%s**, p99 **%s** over /plain\n", what, rate,
				fmtSignedMS(p.open.P50-plain.open.P50), fmtSignedMS(p.open.P99-plain.open.P99))
		}
	}
	if cfg.freshTokens {
		fmt.Fprintln(w, "- the authorization service keeps a verified token in a cache, so with one token per path only the warm-up verifies a signature: those JWT rows are the hop with the verification cached; the rows with a new token on every request verify a signature each time")
	} else {
		fmt.Fprintln(w, "- the authorization service keeps a verified token in a cache, so with one token per path only the warm-up verifies a signature: the JWT rows are the hop with the verification cached, and RS256 and ES256 differ there by noise alone (-fresh-tokens adds runs that send a new token with every request)")
	}
	var calls, late []string
	for _, p := range pr.paths {
		if p.skip == "" {
			name := p.path
			if p.fresh {
				name += " (new tokens)"
			}
			calls = append(calls, name+": "+p.callsText())
			late = append(late, name+" "+fmtMS(p.open.LateP99, 3))
		}
	}
	fmt.Fprintf(w, "- service calls the proxy counted during the measured runs: %s\n", strings.Join(calls, "; "))
	fmt.Fprintf(w, "- the open-loop generator's own lateness in sending (p99, included in its figures): %s\n", strings.Join(late, ", "))
	for _, p := range pr.paths {
		if p.skip != "" {
			fmt.Fprintf(w, "- %s not measured: %s\n", p.path, p.skip)
		}
		for _, n := range p.notes {
			fmt.Fprintf(w, "- %s: %s\n", p.path, n)
		}
	}
}

// hopCalls reads the proxy's counters of calls to the authorization and
// rate-limit services from sekisho's /metrics, summed over gateways and
// filters: "authz allowed", "authz denied", "authz error", "authz failure
// open", and the same for ratelimit.
func hopCalls(admin string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading sekisho's metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading sekisho's metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading sekisho's metrics: %s", resp.Status)
	}
	names := map[string]string{
		"sekisho_ext_authz_checks_total":       "authz",
		"sekisho_ext_authz_failure_open_total": "authz failure open",
		"sekisho_ratelimit_checks_total":       "ratelimit",
		"sekisho_ratelimit_failure_open_total": "ratelimit failure open",
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, _ := strings.Cut(line, "{")
		key, ok := names[name]
		if !ok {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		if _, rest, ok := strings.Cut(labels, `result="`); ok && !strings.HasSuffix(key, "open") {
			result, _, _ := strings.Cut(rest, `"`)
			key += " " + result
		}
		out[key] += v
	}
	return out, nil
}
