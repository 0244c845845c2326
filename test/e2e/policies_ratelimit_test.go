package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// rlConfig is two Gateways (edge-a, edge-b: two proxies) with one HTTPRoute
// attached to both, and RateLimitPolicies on it: a mesh-wide quota is one
// counter whichever proxy and rate-limit replica a request goes through.
func rlConfig(portA, portB, backend int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec: {controllerName: sekisho.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge-a, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge-b, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-0, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: http, port: %d}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: edge-a}, {name: edge-b}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: closed, namespace: default}
spec:
  parentRefs: [{name: edge-a}, {name: edge-b}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /closed}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: api-limits, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  failureMode: Open
  global:
    rules:
    - name: fixed
      match:
        path: {type: PathPrefix, value: /fixed}
        headers: [{name: x-run, type: Distinct}]
      limit: {requests: 100, unit: Minute}
      algorithm: FixedWindow
      shared: true
    - name: sliding
      match:
        path: {type: PathPrefix, value: /sliding}
        headers: [{name: x-run, type: Distinct}]
      limit: {requests: 100, unit: Minute}
      algorithm: SlidingWindow
    - name: per-user
      match:
        path: {type: PathPrefix, value: /distinct}
        headers: [{name: x-user, type: Distinct}]
      limit: {requests: 5, unit: Minute}
    - name: shadow
      match: {path: {type: PathPrefix, value: /shadow}}
      limit: {requests: 10, unit: Minute}
      shadow: true
    - name: open
      match: {path: {type: PathPrefix, value: /open}}
      limit: {requests: 3, unit: Minute}
---
apiVersion: policy.sekisho.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: closed-limits, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: closed}]
  failureMode: Closed
  global:
    rules:
    - name: closed
      limit: {requests: 3, unit: Minute}
`, portA, portB, backend)
}

// rlResult is one answer through a proxy.
type rlResult struct {
	code    int
	headers http.Header
	err     error
	took    time.Duration
}

func rlSend(c *http.Client, url string, hdr map[string]string) rlResult {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return rlResult{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return rlResult{err: err, took: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return rlResult{code: resp.StatusCode, headers: resp.Header, took: time.Since(start)}
}

// rlBurst sends n requests, alternating between urls, from 16 workers.
func rlBurst(c *http.Client, urls []string, n int, hdr map[string]string) []rlResult {
	out := make([]rlResult, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = rlSend(c, urls[i%len(urls)], hdr)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func rlCount(t *testing.T, rs []rlResult) (ok, limited int) {
	t.Helper()
	for _, r := range rs {
		switch {
		case r.err != nil:
			t.Fatalf("request failed: %v", r.err)
		case r.code == http.StatusOK:
			ok++
		case r.code == http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("unexpected status %d (headers %v)", r.code, r.headers)
		}
	}
	return ok, limited
}

// rlMetricSum is the sum of a counter's samples (every label set) on an
// admin /metrics page.
func rlMetricSum(t *testing.T, admin, name string) float64 {
	t.Helper()
	body, err := dpAdminGet(admin, "/metrics")
	if err != nil {
		t.Fatalf("reading %s/metrics: %v", admin, err)
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("%s/metrics: %q: %v", admin, line, err)
		}
		sum += v
	}
	return sum
}

// rlAwayFromMinuteEnd waits, if needed, so that a run of a few seconds does
// not cross the boundary of a calendar minute (a FixedWindow of a minute).
func rlAwayFromMinuteEnd() {
	if s := time.Now().Second(); s >= 45 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
}

// rlInOneMinute runs burst with a fresh counter (its own x-run value) until
// one run starts and ends in the same calendar minute, so a per-minute
// window holds the whole run (a slow machine may need a second try).
func rlInOneMinute(t *testing.T, burst func(hdr map[string]string) []rlResult) []rlResult {
	t.Helper()
	for attempt := range 3 {
		rlAwayFromMinuteEnd()
		start := time.Now()
		rs := burst(map[string]string{"x-run": fmt.Sprintf("%d-%d", start.UnixNano(), attempt)})
		if end := time.Now(); end.Truncate(time.Minute).Equal(start.Truncate(time.Minute)) {
			return rs
		}
		t.Logf("attempt %d crossed a minute boundary (%s to %s); again with a fresh counter", attempt, start.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))
	}
	t.Fatal("no run fitted in one calendar minute")
	return nil
}

// TestRateLimitMeshWide: two proxies and two rate-limit replicas sharing one
// real Redis. A shared 100/Minute FixedWindow rule admits exactly 100 of
// 1 000 requests, SlidingWindow 100 within 1 %, the rest get 429 with the
// RateLimit headers; Distinct keys count separately; shadow admits all and
// still counts; Redis killed mid-run: fail-open admits, fail-closed answers
// 503, each within a bounded time; Redis restarted: limits hold again.
func TestRateLimitMeshWide(t *testing.T) {
	redis := redistest.Start(t)
	api := dpStartEcho(t, "api")
	portA, portB := dpPort(t), dpPort(t)
	dir := t.TempDir()
	dpWriteFile(t, filepath.Join(dir, "config.yaml"), rlConfig(portA, portB, api.Port))

	rl1, rl2 := freeAddr(t), freeAddr(t)
	xds, adm := freeAddr(t), freeAddr(t)
	cpProc := dpStart(t, "sekisho controller", "controller", "-f", dir, "--xds-address", xds, "--admin-address", adm,
		"--ratelimit-address", rl1+","+rl2)
	cp := &dpRunning{dpProc: cpProc, XDS: xds, Admin: adm}
	dpWaitReady(t, cp, 20*time.Second)
	var replicas []*dpRunning
	for i, listen := range []string{rl1, rl2} {
		radm := freeAddr(t)
		p := dpStart(t, fmt.Sprintf("ratelimit %d", i+1), "ratelimit", "--xds", xds, "--listen", listen,
			"--admin-address", radm, "--redis", redis.Addr(), "--id", fmt.Sprintf("rl-%d", i+1))
		r := &dpRunning{dpProc: p, Admin: radm}
		dpWaitReady(t, r, 20*time.Second)
		replicas = append(replicas, r)
	}
	proxyA := dpStartProxy(t, xds, "default/edge-a")
	proxyB := dpStartProxy(t, xds, "default/edge-b")
	// failedOpen counts the requests let through uncounted so far: by a
	// replica whose Redis call missed its deadline, or by a proxy whose call
	// to the service failed (both rules here fail open). A machine busy
	// enough to make a call late does that by design.
	failedOpen := func() int {
		n := 0.0
		for _, r := range replicas {
			n += rlMetricSum(t, r.Admin, "sekisho_ratelimit_fail_open_total")
		}
		for _, p := range []*dpRunning{proxyA, proxyB} {
			n += rlMetricSum(t, p.Admin, "sekisho_ratelimit_failure_open_total")
		}
		return int(n)
	}
	a := fmt.Sprintf("http://127.0.0.1:%d", portA)
	b := fmt.Sprintf("http://127.0.0.1:%d", portB)
	c := dpClient()
	dpWaitFor(t, nil, 20*time.Second, "both proxies serving", func() bool {
		return rlSend(c, a+"/", nil).code == 200 && rlSend(c, b+"/", nil).code == 200
	})

	t.Run("FixedWindow shared 100/Minute", func(t *testing.T) {
		fo0 := failedOpen()
		rs := rlInOneMinute(t, func(hdr map[string]string) []rlResult {
			return rlBurst(c, []string{a + "/fixed", b + "/fixed/x"}, 1000, hdr)
		})
		fo := failedOpen() - fo0
		ok, limited := rlCount(t, rs)
		// Every counted request is decided exactly; a request let through
		// on a failure is admitted on top of the 100, unless the store
		// counted it all the same (a Redis call that finished after its
		// deadline had passed), when it took one of the 100. More than 1 %
		// of them would be a fault, not a busy machine.
		if fo > 10 {
			t.Fatalf("%d of 1 000 requests failed open", fo)
		}
		if ok < 100 || ok > 100+fo || ok+limited != 1000 {
			t.Fatalf("admitted %d, limited %d, failed open %d; want 100 to %d admitted and the rest limited", ok, limited, fo, 100+fo)
		}
		if fo > 0 {
			t.Logf("%d requests failed open (admitted uncounted)", fo)
		}
		// A request let through uncounted was not decided by the service, so
		// it carries no RateLimit headers; every other one does.
		uncounted := 0
		for _, r := range rs {
			h := r.headers
			if r.code == 200 && h.Get("RateLimit-Limit") == "" && uncounted < fo {
				uncounted++
				continue
			}
			if h.Get("RateLimit-Limit") != "100" {
				t.Fatalf("status %d: RateLimit-Limit %q, want 100", r.code, h.Get("RateLimit-Limit"))
			}
			rem, err := strconv.Atoi(h.Get("RateLimit-Remaining"))
			if err != nil || rem < 0 || rem > 99 {
				t.Fatalf("status %d: RateLimit-Remaining %q", r.code, h.Get("RateLimit-Remaining"))
			}
			reset, err := strconv.Atoi(h.Get("RateLimit-Reset"))
			if err != nil || reset < 0 || reset > 60 {
				t.Fatalf("status %d: RateLimit-Reset %q", r.code, h.Get("RateLimit-Reset"))
			}
			if r.code == 429 && (rem != 0 || h.Get("Retry-After") == "" || h.Get("X-Envoy-Ratelimited") != "true") {
				t.Fatalf("429 headers: %v", h)
			}
		}
	})
	t.Run("SlidingWindow 100/Minute", func(t *testing.T) {
		fo0 := failedOpen()
		ok, _ := rlCount(t, rlInOneMinute(t, func(hdr map[string]string) []rlResult {
			return rlBurst(c, []string{a + "/sliding", b + "/sliding"}, 1000, hdr)
		}))
		fo := failedOpen() - fo0
		if fo > 10 {
			t.Fatalf("%d of 1 000 requests failed open", fo)
		}
		if ok < 99 || ok > 101+fo {
			t.Fatalf("admitted %d with %d failed open, want 100 ± 1 %% on top of those", ok, fo)
		}
	})
	t.Run("Distinct keys count separately", func(t *testing.T) {
		rlAwayFromMinuteEnd()
		for _, user := range []string{"alice", "bob"} {
			ok, limited := rlCount(t, rlBurst(c, []string{a + "/distinct", b + "/distinct"}, 20, map[string]string{"x-user": user}))
			if ok != 5 || limited != 15 {
				t.Fatalf("user %s: admitted %d, limited %d; want 5 and 15", user, ok, limited)
			}
		}
		// No x-user header: the rule does not count the request.
		if ok, _ := rlCount(t, rlBurst(c, []string{a + "/distinct"}, 10, nil)); ok != 10 {
			t.Fatalf("requests without x-user: %d of 10 admitted", ok)
		}
	})
	t.Run("shadow admits everything and still counts", func(t *testing.T) {
		rlAwayFromMinuteEnd()
		var last int
		for i := range 30 {
			r := rlSend(c, []string{a, b}[i%2]+"/shadow", nil)
			if r.err != nil || r.code != 200 {
				t.Fatalf("request %d: %d %v", i, r.code, r.err)
			}
			last, _ = strconv.Atoi(r.headers.Get("RateLimit-Remaining"))
			if i == 4 && last != 5 {
				t.Fatalf("after 5 requests RateLimit-Remaining is %d, want 5", last)
			}
		}
		if last != 0 {
			t.Fatalf("after 30 requests RateLimit-Remaining is %d, want 0", last)
		}
	})
	for _, r := range replicas {
		m, err := dpAdminGet(r.Admin, "/metrics")
		if err != nil || !strings.Contains(m, "sekisho_ratelimit_decisions_total") {
			t.Fatalf("%s took no decision (both replicas are endpoints of the proxies' cluster): %v", r.name, err)
		}
	}

	t.Run("Redis down, then back", func(t *testing.T) {
		redis.Stop()
		// Fail open: admitted, though the rule allows 3.
		for i := range 10 {
			r := rlSend(c, []string{a, b}[i%2]+"/open", nil)
			if r.err != nil || r.code != 200 {
				t.Fatalf("fail-open request %d with Redis down: %d %v", i, r.code, r.err)
			}
			if r.took > time.Second {
				t.Fatalf("fail-open request %d took %s", i, r.took)
			}
		}
		// Fail closed: refused.
		for i := range 5 {
			r := rlSend(c, []string{a, b}[i%2]+"/closed", nil)
			if r.err != nil || r.code != http.StatusServiceUnavailable {
				t.Fatalf("fail-closed request %d with Redis down: %d %v", i, r.code, r.err)
			}
			if r.took > time.Second {
				t.Fatalf("fail-closed request %d took %s", i, r.took)
			}
		}
		for _, rep := range replicas {
			if dpAdminStatus(rep.Admin, "/readyz") == http.StatusOK {
				t.Fatalf("%s /readyz is 200 with Redis down", rep.name)
			}
		}
		m, _ := dpAdminGet(replicas[0].Admin, "/metrics")
		m2, _ := dpAdminGet(replicas[1].Admin, "/metrics")
		if !strings.Contains(m+m2, "sekisho_ratelimit_fail_open_total") {
			t.Fatal("no fail-open counter exported")
		}

		if err := redis.Restart(); err != nil {
			t.Fatal(err)
		}
		// Recovered by itself: the closed route admits 3, then refuses with 429.
		dpWaitFor(t, nil, 15*time.Second, "the fail-closed route admitting again", func() bool {
			return rlSend(c, a+"/closed", nil).code == 200
		})
		limited := false
		for i := range 10 {
			if r := rlSend(c, []string{a, b}[i%2]+"/closed", nil); r.code == http.StatusTooManyRequests {
				limited = true
				break
			}
		}
		if !limited {
			t.Fatal("after Redis came back, the 3/Minute rule never refused a request")
		}
		for _, rep := range replicas {
			dpWaitReady(t, rep, 15*time.Second)
		}
	})
}

// TestRateLimitEmbedded: `sekisho run` counts in memory with no Redis.
func TestRateLimitEmbedded(t *testing.T) {
	api := dpStartEcho(t, "api")
	port := dpPort(t)
	dir := t.TempDir()
	cfg := rlConfig(port, dpPort(t), api.Port)
	dpWriteFile(t, filepath.Join(dir, "config.yaml"), cfg)
	xds, adm := freeAddr(t), freeAddr(t)
	p := dpStart(t, "sekisho run", "run", "-f", dir, "--xds-address", xds, "--admin-address", adm,
		"--authz-listen", freeAddr(t), "--ratelimit-listen", freeAddr(t))
	r := &dpRunning{dpProc: p, XDS: xds, Admin: adm}
	dpWaitReady(t, r, 20*time.Second)
	c := dpClient()
	dpWaitFor(t, p, 20*time.Second, "the proxy serving", func() bool {
		return rlSend(c, fmt.Sprintf("http://127.0.0.1:%d/", port), nil).code == 200
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/closed", port)
	rlAwayFromMinuteEnd()
	ok, limited := rlCount(t, rlBurst(c, []string{url}, 20, nil))
	if ok != 3 || limited != 17 {
		t.Fatalf("admitted %d, limited %d; want 3 and 17", ok, limited)
	}
}

// TestRateLimitRedisDownAtStart: a rate-limit service whose Redis is not up
// yet still starts and answers (each rule's failure mode applies), and
// counts once Redis comes up.
func TestRateLimitRedisDownAtStart(t *testing.T) {
	redis := redistest.Start(t)
	redis.Stop()
	api := dpStartEcho(t, "api")
	portA, portB := dpPort(t), dpPort(t)
	dir := t.TempDir()
	dpWriteFile(t, filepath.Join(dir, "config.yaml"), rlConfig(portA, portB, api.Port))
	rl, xds, adm := freeAddr(t), freeAddr(t), freeAddr(t)
	cp := &dpRunning{dpProc: dpStart(t, "sekisho controller", "controller", "-f", dir, "--xds-address", xds, "--admin-address", adm,
		"--ratelimit-address", rl), XDS: xds, Admin: adm}
	dpWaitReady(t, cp, 20*time.Second)
	radm := freeAddr(t)
	svc := dpStart(t, "ratelimit", "ratelimit", "--xds", xds, "--listen", rl, "--admin-address", radm, "--redis", redis.Addr())
	dpWaitFor(t, svc, 20*time.Second, "the rate-limit service's /healthz", func() bool { return dpAdminStatus(radm, "/healthz") == http.StatusOK })
	if dpAdminStatus(radm, "/readyz") == http.StatusOK {
		t.Fatal("/readyz is 200 with Redis down")
	}
	dpStartProxy(t, xds, "default/edge-a")
	c := dpClient()
	a := fmt.Sprintf("http://127.0.0.1:%d", portA)
	dpWaitFor(t, nil, 20*time.Second, "the proxy serving", func() bool { return rlSend(c, a+"/", nil).code == 200 })
	for i := range 5 {
		if r := rlSend(c, a+"/open", nil); r.code != 200 {
			t.Fatalf("fail-open request %d with Redis never up: %d %v", i, r.code, r.err)
		}
		if r := rlSend(c, a+"/closed", nil); r.code != http.StatusServiceUnavailable {
			t.Fatalf("fail-closed request %d with Redis never up: %d %v", i, r.code, r.err)
		}
	}
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	rlAwayFromMinuteEnd()
	dpWaitFor(t, svc, 20*time.Second, "the fail-closed route admitting once Redis is up", func() bool {
		return rlSend(c, a+"/closed", nil).code == 200
	})
	limited := false
	for range 10 {
		if rlSend(c, a+"/closed", nil).code == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("once Redis was up, the 3/Minute rule never refused a request")
	}
	dpWaitFor(t, svc, 10*time.Second, "the rate-limit service's /readyz", func() bool { return dpAdminStatus(radm, "/readyz") == http.StatusOK })
}
