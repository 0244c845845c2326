package e2e

// Helpers of the data-plane end-to-end tests (dataplane_*_test.go): they
// start sekisho's control plane, proxy and echo backends as child processes
// on 127.0.0.1, write Gateway API YAML for them, and send real HTTP requests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// dpLogBuffer collects a child's output; it keeps the last dpLogLimit bytes
// and may be read while the child writes.
type dpLogBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const dpLogLimit = 256 << 10

func (b *dpLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - dpLogLimit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *dpLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// dpProc is one running sekisho child process.
type dpProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *dpLogBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, set before done is closed
}

// dpStart starts `sekisho args...`. On cleanup it is sent SIGINT, and
// SIGKILL if it has not exited 10 s later; its output is logged when the test
// failed.
func dpStart(t *testing.T, name string, args ...string) *dpProc {
	t.Helper()
	p := &dpProc{t: t, name: name, logs: &dpLogBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(sekishoBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s (sekisho %s) output:\n%s", name, strings.Join(args, " "), p.logs.String())
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *dpProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop interrupts the process and kills it if it is still there after 10 s.
func (p *dpProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Logf("%s did not stop within 10s of SIGINT; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *dpProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		p.t.Fatalf("killing %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s still running 10s after SIGKILL", p.name)
	}
}

// dpPort returns a port on 127.0.0.1 that was free a moment ago.
func dpPort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dpEcho is an echo backend child process.
type dpEcho struct {
	*dpProc
	Port int
}

// dpStartEcho starts `sekisho echo` answering as name on a free port and
// waits until it answers.
func dpStartEcho(t *testing.T, name string) *dpEcho {
	t.Helper()
	port := dpPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := dpStart(t, "echo "+name, "echo", "--listen", addr, "--name", name)
	c := &http.Client{Timeout: 2 * time.Second}
	dpWaitFor(t, p, 10*time.Second, "echo "+name+" answering", func() bool {
		got, err := dpGet(c, "http://"+addr+"/")
		return err == nil && got == name
	})
	return &dpEcho{dpProc: p, Port: port}
}

// dpWaitFor polls cond every 50 ms until it holds, failing the test after
// timeout or as soon as p (when not nil) exits.
func dpWaitFor(t *testing.T, p *dpProc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && p.exited() {
			t.Fatalf("waiting for %s: %s exited: %v", what, p.name, p.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not done in %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dpRunning is a running control plane, proxy, or both (`sekisho run`).
type dpRunning struct {
	*dpProc
	XDS   string // ADS address, when it serves one
	Admin string // admin address
}

// dpWaitReady waits for the admin /readyz of r to answer 200.
func dpWaitReady(t *testing.T, r *dpRunning, timeout time.Duration) {
	t.Helper()
	dpWaitFor(t, r.dpProc, timeout, r.name+" /readyz", func() bool {
		return dpAdminStatus(r.Admin, "/readyz") == http.StatusOK
	})
}

// dpStartRun starts `sekisho run -f dir` and waits until it is ready.
func dpStartRun(t *testing.T, dir string) *dpRunning {
	t.Helper()
	xds, adm := freeAddr(t), freeAddr(t)
	p := dpStart(t, "sekisho run", "run", "-f", dir, "--xds-address", xds, "--admin-address", adm)
	r := &dpRunning{dpProc: p, XDS: xds, Admin: adm}
	dpWaitReady(t, r, 20*time.Second)
	return r
}

// dpStartController starts `sekisho controller -f dir` on the given
// addresses and waits until it is ready.
func dpStartController(t *testing.T, dir, xds, adm string) *dpRunning {
	t.Helper()
	p := dpStart(t, "sekisho controller", "controller", "-f", dir, "--xds-address", xds, "--admin-address", adm)
	r := &dpRunning{dpProc: p, XDS: xds, Admin: adm}
	dpWaitReady(t, r, 20*time.Second)
	return r
}

// dpStartProxy starts `sekisho proxy` for node (namespace/gateway) and waits
// until it is ready.
func dpStartProxy(t *testing.T, xds, node string) *dpRunning {
	t.Helper()
	adm := freeAddr(t)
	p := dpStart(t, "sekisho proxy", "proxy", "--xds", xds, "--node", node, "--admin-address", adm, "--access-log=false")
	r := &dpRunning{dpProc: p, Admin: adm}
	dpWaitReady(t, r, 20*time.Second)
	return r
}

// dpAdminStatus returns the status code of GET http://addr+path, 0 on error.
func dpAdminStatus(addr, path string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// dpAdminGet returns the body of GET http://addr+path (which must answer 200).
func dpAdminGet(addr, path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return string(b), nil
}

// dpClient is a keep-alive HTTP client with a bounded request time.
func dpClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     60 * time.Second,
			DisableCompression:  true,
		},
	}
}

// dpGet sends GET url and returns the echo backend that answered. Anything
// but a 200 with an echo's JSON is an error.
func dpGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, dpShort(body))
	}
	var echo struct {
		Backend string `json:"backend"`
	}
	if err := json.Unmarshal(body, &echo); err != nil || echo.Backend == "" {
		return "", fmt.Errorf("not an echo answer (%v): %q", err, dpShort(body))
	}
	return echo.Backend, nil
}

func dpShort(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// dpService is a Service whose endpoints are 127.0.0.1 at the given ports.
type dpService struct {
	Name  string
	Ports []int
}

// dpRef is a weighted backendRef of a route rule.
type dpRef struct {
	Name   string
	Weight int
}

// dpConfig is a whole configuration folder: a GatewayClass, a Gateway
// default/<Gateway> with one HTTP listener, Services with EndpointSlices,
// and an HTTPRoute default/<Route> whose one rule splits between Refs.
type dpConfig struct {
	Dir      string
	Gateway  string
	Route    string
	Port     int // the Gateway listener's port
	Services []dpService
}

// dpNewConfig writes the Gateway and the Services into a new temp folder
// (the route is written by writeRoute).
func dpNewConfig(t *testing.T, services ...dpService) *dpConfig {
	t.Helper()
	c := &dpConfig{Dir: t.TempDir(), Gateway: "edge", Route: "split", Port: dpPort(t), Services: services}
	gw := fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sekisho
spec:
  controllerName: sekisho.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: %s
  namespace: default
spec:
  gatewayClassName: sekisho
  listeners:
  - name: http
    protocol: HTTP
    port: %d
    allowedRoutes:
      namespaces:
        from: Same
`, c.Gateway, c.Port)
	dpWriteFile(t, filepath.Join(c.Dir, "gateway.yaml"), gw)
	var b strings.Builder
	for _, s := range services {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  ports:
  - name: http
    port: 80
`, s.Name)
		for i, port := range s.Ports {
			fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-%d
  namespace: default
  labels:
    kubernetes.io/service-name: %s
addressType: IPv4
ports:
- name: http
  port: %d
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
`, s.Name, i, s.Name, port)
		}
	}
	dpWriteFile(t, filepath.Join(c.Dir, "backends.yaml"), b.String())
	return c
}

// routeYAML is the HTTPRoute sending every path to refs.
func (c *dpConfig) routeYAML(refs ...dpRef) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs:
  - name: %s
    sectionName: http
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
`, c.Route, c.Gateway)
	for _, r := range refs {
		fmt.Fprintf(&b, "    - name: %s\n      port: 80\n      weight: %d\n", r.Name, r.Weight)
	}
	return b.String()
}

// writeRoute replaces the route file atomically (temp file + rename).
func (c *dpConfig) writeRoute(t *testing.T, refs ...dpRef) {
	t.Helper()
	dpWriteFile(t, filepath.Join(c.Dir, "route.yaml"), c.routeYAML(refs...))
}

// url is the Gateway listener's URL for path.
func (c *dpConfig) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.Port, path)
}

// node is the Gateway's key, namespace/name.
func (c *dpConfig) node() string { return "default/" + c.Gateway }

// dpWriteFile writes content to path atomically: a temp file in the same
// folder (with a name the YAML provider ignores) renamed over path.
func dpWriteFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".dp-tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// dpCount sends n sequential GETs to url and counts answers by backend. It
// fails the test on the first failed request.
func dpCount(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; i < n; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests done in 40s", i, n)
		}
		b, err := dpGet(c, url)
		if err != nil {
			t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
		counts[b]++
	}
	return counts
}

// dpWaitServes waits until the gateway answers url from each of backends.
func dpWaitServes(t *testing.T, p *dpProc, c *http.Client, url string, backends ...string) {
	t.Helper()
	seen := map[string]bool{}
	dpWaitFor(t, p, 20*time.Second, fmt.Sprintf("%s answered by %v", url, backends), func() bool {
		if b, err := dpGet(c, url); err == nil {
			seen[b] = true
		}
		for _, b := range backends {
			if !seen[b] {
				return false
			}
		}
		return true
	})
}

// dpConfigWeights returns the weight of each cluster in the route tables of
// a proxy's /config_dump (served at adm), and whether its ADS stream is up.
func dpConfigWeights(adm, gateway string) (weights map[string]int, connected bool, err error) {
	path := "/config_dump"
	if gateway != "" {
		path += "?gateway=" + gateway
	}
	body, err := dpAdminGet(adm, path)
	if err != nil {
		return nil, false, err
	}
	var dump struct {
		Connected bool `json:"connected"`
		Routes    []struct {
			VirtualHosts []struct {
				Routes []struct {
					Route *struct {
						Cluster          string `json:"cluster"`
						WeightedClusters *struct {
							Clusters []struct {
								Name   string `json:"name"`
								Weight int    `json:"weight"`
							} `json:"clusters"`
						} `json:"weighted_clusters"`
					} `json:"route"`
				} `json:"routes"`
			} `json:"virtual_hosts"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		return nil, false, fmt.Errorf("decoding /config_dump: %w", err)
	}
	weights = map[string]int{}
	for _, rc := range dump.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if r.Route == nil {
					continue
				}
				if r.Route.Cluster != "" {
					weights[r.Route.Cluster] = 100
				}
				if r.Route.WeightedClusters != nil {
					for _, wc := range r.Route.WeightedClusters.Clusters {
						weights[wc.Name] = wc.Weight
					}
				}
			}
		}
	}
	return weights, dump.Connected, nil
}

// dpCheckShare fails the test unless got/total is within tol percentage
// points of want percent.
func dpCheckShare(t *testing.T, name string, got, total int, want, tol float64) {
	t.Helper()
	share := 100 * float64(got) / float64(total)
	if share < want-tol || share > want+tol {
		t.Errorf("%s got %d of %d requests (%.1f%%), want %.0f%% ± %.0f points", name, got, total, share, want, tol)
	} else {
		t.Logf("%s got %d of %d requests (%.1f%%), want %.0f%% ± %.0f points", name, got, total, share, want, tol)
	}
}

// dpResult is one request of a dpLoad: when it was sent (since the load
// started), which backend answered, or why it failed.
type dpResult struct {
	At      time.Duration
	Backend string
	Err     error
}

// dpLoad sends paced GETs in the background.
type dpLoad struct {
	start   time.Time
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	results []dpResult
}

// dpStartLoad sends GET url at rate requests per second from a few workers,
// for at most max (and so at most rate*max requests), until stop.
func dpStartLoad(t *testing.T, c *http.Client, url string, rate int, max time.Duration) *dpLoad {
	t.Helper()
	const workers = 8
	l := &dpLoad{start: time.Now(), stopped: make(chan struct{}), done: make(chan struct{})}
	interval := time.Second / time.Duration(rate)
	total := int(max / interval)
	tickets := make(chan time.Duration)
	go func() {
		defer close(tickets)
		for i := 0; i < total; i++ {
			due := time.Duration(i) * interval
			if wait := time.Until(l.start.Add(due)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-l.stopped:
					return
				}
			}
			select {
			case tickets <- time.Since(l.start):
			case <-l.stopped:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := range tickets {
				b, err := dpGet(c, url)
				l.mu.Lock()
				l.results = append(l.results, dpResult{At: at, Backend: b, Err: err})
				l.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(func() { l.stop() })
	return l
}

// elapsed is the time since the load started.
func (l *dpLoad) elapsed() time.Duration { return time.Since(l.start) }

// sleepUntil sleeps until the load has run for d.
func (l *dpLoad) sleepUntil(d time.Duration) { time.Sleep(time.Until(l.start.Add(d))) }

// stop ends the load, waits for the requests in flight (each is bounded by
// the client's timeout) and returns every result in the order sent.
func (l *dpLoad) stop() []dpResult {
	l.once.Do(func() { close(l.stopped) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]dpResult(nil), l.results...)
	dpSortResults(out)
	return out
}

// wait waits until the load has sent all its requests, then stops it.
func (l *dpLoad) wait(timeout time.Duration) []dpResult {
	select {
	case <-l.done:
	case <-time.After(timeout):
	}
	return l.stop()
}

func dpSortResults(rs []dpResult) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].At < rs[j].At })
}

// dpFailures returns the failed results.
func dpFailures(rs []dpResult) []dpResult {
	var out []dpResult
	for _, r := range rs {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// dpReportFailures fails the test with the first few failures, if any.
func dpReportFailures(t *testing.T, what string, rs []dpResult) {
	t.Helper()
	f := dpFailures(rs)
	if len(f) == 0 {
		return
	}
	var b strings.Builder
	for i, r := range f {
		if i == 10 {
			fmt.Fprintf(&b, "\n  … %d more", len(f)-10)
			break
		}
		fmt.Fprintf(&b, "\n  at %s: %v", r.At.Round(time.Millisecond), r.Err)
	}
	t.Errorf("%s: %d of %d requests failed:%s", what, len(f), len(rs), b.String())
}

// dpWindow returns the results sent in [from, to).
func dpWindow(rs []dpResult, from, to time.Duration) []dpResult {
	var out []dpResult
	for _, r := range rs {
		if r.At >= from && r.At < to {
			out = append(out, r)
		}
	}
	return out
}

// dpByBackend counts the successful results by backend.
func dpByBackend(rs []dpResult) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		if r.Err == nil {
			out[r.Backend]++
		}
	}
	return out
}
