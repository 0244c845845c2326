//go:build linux

package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/crds"
	provider "github.com/sekisho/sekisho/gateway/provider/kube"
)

// sekishoBin is the sekisho binary, built once for the package (or, in the
// network-namespace child, handed down by the parent through $SEKISHO_BIN).
var sekishoBin string

func TestMain(m *testing.M) {
	if bin := os.Getenv(envSekishoBin); bin != "" {
		sekishoBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "sekisho-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sekishoBin = filepath.Join(dir, "sekisho")
	build := exec.Command("go", "build", "-o", sekishoBin, module+"/cmd/sekisho")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sekisho:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	envSekishoBin = "SEKISHO_BIN"
	ns            = "default"
	gwName        = "edge"
	systemNS      = "sekisho-system"
	routeConfig   = ns + "/" + gwName + "/http-8080"
	sekishoCtl    = gwv1.GatewayController("sekisho.dev/gateway-controller")
)

// freeAddr returns host:port with a port that was free a moment ago.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually calls f until it returns nil, failing the test with f's last
// error after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// env is a cluster with the CRDs and the base objects, and a client for it.
type env struct {
	c  *Cluster
	cl client.Client
}

// backends are the two demo backends' addresses and port.
type backends struct {
	v1, v2 string
	port   int
}

var statusOnlyBackends = backends{v1: "10.244.1.10", v2: "10.244.1.11", port: 9001}

// setup starts a cluster, installs the CRDs and creates the quickstart's
// objects (a GatewayClassConfig with a ClusterIP Service, the GatewayClass,
// Gateway, two Services with EndpointSlices and a 90/10 HTTPRoute).
func setup(t *testing.T, b backends) *env {
	t.Helper()
	c := Start(t)
	installCRDSet(t, c, crds.FS)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	scheme, err := provider.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, cl: cl}
	e.apply(t, baseManifest(b))
	return e
}

// installCRDSet installs every CRD of fsys (crds.FS, or
// crds.ExperimentalFS) and waits until they are established.
func installCRDSet(t *testing.T, c *Cluster, fsys fs.FS) {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, strings.ReplaceAll(path, "/", "_")), data, 0o644)
	})
	if err != nil {
		t.Fatalf("writing out the CRDs: %v", err)
	}
	if out, err := c.Kubectl("apply", "--server-side", "-f", dir); err != nil {
		t.Fatalf("installing the CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		t.Fatalf("waiting for the CRDs: %v\n%s", err, out)
	}
}

func (e *env) apply(t *testing.T, manifest string) {
	t.Helper()
	if out, err := e.c.KubectlInput(manifest, "apply", "--server-side", "--field-manager", "sekisho-test", "-f", "-"); err != nil {
		t.Fatalf("applying objects: %v\n%s", err, out)
	}
}

func (e *env) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.c.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func baseManifest(b backends) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: config.sekisho.dev/v1alpha1
kind: GatewayClassConfig
metadata: {name: sekisho-proxies, namespace: %[1]s}
spec:
  proxy:
    replicas: 2
    logLevel: debug
    service:
      type: ClusterIP
      annotations: {example.com/owner: sekisho-test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec:
  controllerName: %[2]s
  parametersRef: {group: config.sekisho.dev, kind: GatewayClassConfig, name: sekisho-proxies, namespace: %[1]s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %[3]s, namespace: %[4]s}
spec:
  gatewayClassName: sekisho
  listeners:
  - name: http
    protocol: HTTP
    port: 8080
    allowedRoutes: {namespaces: {from: Same}}
%[5]s%[6]s%[7]s`, systemNS, sekishoCtl, gwName, ns,
		backendManifest("demo-v1", b.v1, b.port), backendManifest("demo-v2", b.v2, b.port), routeManifest(90, 10))
}

func backendManifest(name, addr string, port int) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  ports: [{name: http, port: 80, targetPort: %[4]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s, namespace: %[2]s, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: http, port: %[4]d}]
endpoints:
- addresses: [%[3]q]
  conditions: {ready: true}
`, name, ns, addr, port)
}

func routeManifest(w1, w2 int) string {
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: demo, namespace: %s}
spec:
  parentRefs: [{name: %s, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {name: demo-v1, port: 80, weight: %d}
    - {name: demo-v2, port: 80, weight: %d}
`, ns, gwName, w1, w2)
}

// --- processes ---------------------------------------------------------------

// proc is a process this test started; it is stopped when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(sekishoBin, args...), logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// Killed with this test binary if it dies without its cleanups.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output (last 60 lines):\n%s", name, tail(p.logs.String(), 60))
		}
	})
	return p
}

// stop interrupts the process and waits for it (killing it after 15s).
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // in case a test paused it
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15s of SIGINT; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// controller is a `sekisho controller` in Kubernetes mode.
type controller struct {
	*proc
	xds, admin       string
	authz, rateLimit string // the services it runs
}

// startController starts a controller on host and waits for /readyz.
func startController(t *testing.T, e *env, host, name string, extra ...string) *controller {
	t.Helper()
	return startControllerOn(t, e, freeAddr(t, host), freeAddr(t, host), name, extra...)
}

// startControllerOn starts a controller with the given xDS and admin addresses.
func startControllerOn(t *testing.T, e *env, xds, admin, name string, extra ...string) *controller {
	t.Helper()
	host, _, _ := net.SplitHostPort(xds)
	authz, rl := freeAddr(t, host), freeAddr(t, host)
	args := append([]string{"controller", "--kubeconfig", e.c.Kubeconfig, "--namespace", systemNS,
		"--xds-address", xds, "--admin-address", admin, "--proxy-xds-address", xds, "--log-level", "debug",
		"--authz-listen", authz, "--ratelimit-listen", rl, "--authz-address", authz, "--ratelimit-address", rl}, extra...)
	c := &controller{proc: startProc(t, name, args...), xds: xds, admin: admin, authz: authz, rateLimit: rl}
	c.waitReady(t)
	return c
}

func (c *controller) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, 60*time.Second, c.name+" /readyz", func() error {
		if c.exited() {
			t.Fatalf("%s exited:\n%s", c.name, tail(c.logs.String(), 40))
		}
		return httpOK("http://" + c.admin + "/readyz")
	})
}

func httpOK(url string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// metric returns the sum of a metric's samples on the admin /metrics page.
func metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			var v float64
			fields := strings.Fields(rest)
			if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// --- status checks -----------------------------------------------------------------

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func condIs(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string, gen int64) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %+v", typ, conds)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != gen {
		return fmt.Errorf("%s = %s/%s (observedGeneration %d, %q), want %s/%s at generation %d",
			typ, c.Status, c.Reason, c.ObservedGeneration, c.Message, status, reason, gen)
	}
	return nil
}

func (e *env) route(t *testing.T, name string) *gwv1.HTTPRoute {
	t.Helper()
	r := &gwv1.HTTPRoute{}
	if err := e.cl.Get(ctx(t), types.NamespacedName{Namespace: ns, Name: name}, r); err != nil {
		t.Fatalf("reading HTTPRoute %s: %v", name, err)
	}
	return r
}

// sekishoParent returns sekisho's parent entry for the Gateway on r.
func sekishoParent(r *gwv1.HTTPRoute) *gwv1.RouteParentStatus {
	for i, p := range r.Status.Parents {
		if p.ControllerName == sekishoCtl && string(p.ParentRef.Name) == gwName {
			return &r.Status.Parents[i]
		}
	}
	return nil
}

// routeConds checks sekisho's parent entry on route name.
func (e *env) routeConds(t *testing.T, name string, accepted, resolved metav1.ConditionStatus, acceptedReason, resolvedReason string) func() error {
	return func() error {
		r := e.route(t, name)
		p := sekishoParent(r)
		if p == nil {
			return fmt.Errorf("HTTPRoute %s: no parent entry of %s: %+v", name, sekishoCtl, r.Status.Parents)
		}
		if err := condIs(p.Conditions, "Accepted", accepted, acceptedReason, r.Generation); err != nil {
			return fmt.Errorf("HTTPRoute %s: %w", name, err)
		}
		if err := condIs(p.Conditions, "ResolvedRefs", resolved, resolvedReason, r.Generation); err != nil {
			return fmt.Errorf("HTTPRoute %s: %w", name, err)
		}
		return nil
	}
}

// --- ADS ---------------------------------------------------------------------

// adsClient is a state-of-the-world ADS stream of one Gateway's proxy.
type adsClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	recvs  chan adsResult
}

type adsResult struct {
	r   *discoveryv3.DiscoveryResponse
	err error
}

func dialADS(t *testing.T, addr, gateway, node string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(c)
	if err != nil {
		t.Fatal(err)
	}
	a := &adsClient{t: t, stream: stream, node: &corev3.Node{Id: node, Cluster: gateway}, recvs: make(chan adsResult, 16)}
	go func() {
		for {
			r, err := stream.Recv()
			a.recvs <- adsResult{r, err}
			if err != nil {
				return
			}
		}
	}()
	return a
}

func (a *adsClient) send(typeURL, version, nonce string, names ...string) {
	a.t.Helper()
	if err := a.stream.Send(&discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}); err != nil {
		a.t.Fatalf("ADS send: %v", err)
	}
}

// recvType waits for a response of typeURL, ACKing other types first.
func (a *adsClient) recvType(typeURL string, timeout time.Duration) *discoveryv3.DiscoveryResponse {
	a.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case res := <-a.recvs:
			if res.err != nil {
				a.t.Fatalf("ADS stream: %v", res.err)
			}
			if res.r.TypeUrl == typeURL {
				return res.r
			}
			var names []string
			if res.r.TypeUrl == resourcev3.EndpointType {
				for _, x := range res.r.Resources {
					cla := &endpointv3.ClusterLoadAssignment{}
					if err := x.UnmarshalTo(cla); err == nil {
						names = append(names, cla.ClusterName)
					}
				}
			}
			a.send(res.r.TypeUrl, res.r.VersionInfo, res.r.Nonce, names...)
		case <-deadline:
			a.t.Fatalf("no ADS response of type %s in %s", typeURL, timeout)
			return nil
		}
	}
}

// routeTable subscribes to the Gateway's route configuration and returns
// the first response.
func (a *adsClient) routeTable(timeout time.Duration) *discoveryv3.DiscoveryResponse {
	a.t.Helper()
	a.send(resourcev3.RouteType, "", "", routeConfig)
	return a.recvType(resourcev3.RouteType, timeout)
}

// nack rejects r with Envoy's error detail message.
func (a *adsClient) nack(r *discoveryv3.DiscoveryResponse, kept, msg string) {
	a.t.Helper()
	err := a.stream.Send(&discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: r.TypeUrl, VersionInfo: kept, ResponseNonce: r.Nonce,
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
	if err != nil {
		a.t.Fatalf("ADS send: %v", err)
	}
}

// listeners subscribes to the Gateway's listeners and returns the first
// response, unanswered.
func (a *adsClient) listeners(timeout time.Duration) *discoveryv3.DiscoveryResponse {
	a.t.Helper()
	a.send(resourcev3.ListenerType, "", "")
	return a.recvType(resourcev3.ListenerType, timeout)
}

// proxyServes connects a proxy of the Gateway to the controller at xds that
// accepts its listeners, as a proxy that binds them does: the controller
// then says the Gateway is Programmed. It stays connected until the test
// ends.
func proxyServes(t *testing.T, xds, node string) {
	t.Helper()
	a := dialADS(t, xds, ns+"/"+gwName, node)
	r := a.listeners(20 * time.Second)
	a.send(r.TypeUrl, r.VersionInfo, r.Nonce)
}

func (a *adsClient) ack(r *discoveryv3.DiscoveryResponse) {
	a.t.Helper()
	a.send(r.TypeUrl, r.VersionInfo, r.Nonce, routeConfig)
}

// routes maps each route's path prefix (or regex) to its clusters' weights.
func routes(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]map[string]uint32 {
	t.Helper()
	out := map[string]map[string]uint32{}
	for _, x := range resp.Resources {
		rc := &routev3.RouteConfiguration{}
		if err := x.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				key := r.GetMatch().GetPrefix() + r.GetMatch().GetPath() + r.GetMatch().GetPathSeparatedPrefix() + r.GetMatch().GetSafeRegex().GetRegex()
				w := map[string]uint32{}
				if c := r.GetRoute().GetCluster(); c != "" {
					w[c] = 100
				}
				for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
					w[wc.Name] = wc.GetWeight().GetValue()
				}
				if r.GetDirectResponse() != nil {
					w["direct-response"] = r.GetDirectResponse().GetStatus()
				}
				out[key] = w
			}
		}
	}
	return out
}

func weightsOf(t *testing.T, resp *discoveryv3.DiscoveryResponse) string {
	t.Helper()
	return fmt.Sprint(routes(t, resp))
}
