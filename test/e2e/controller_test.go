package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startController runs `sekisho controller -f dir` and waits for /readyz.
func startController(t *testing.T, dir string) (xdsAddr, adminAddr string) {
	t.Helper()
	xdsAddr, adminAddr = freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, sekishoBin, "controller", "-f", dir, "--xds-address", xdsAddr, "--admin-address", adminAddr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("controller output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return xdsAddr, adminAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not ready in 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func copyQuickstart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "examples", "quickstart")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// adsClient is a state-of-the-world ADS stream that subscribes to one type at a time.
type adsClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
}

func dialADS(t *testing.T, addr, gateway string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &adsClient{t: t, stream: stream, node: &corev3.Node{Id: "e2e-proxy-1", Cluster: gateway}}
}

func (c *adsClient) send(typeURL, version, nonce string, names ...string) {
	c.t.Helper()
	if err := c.stream.Send(&discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits up to timeout for the next response.
func (c *adsClient) recv(timeout time.Duration) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	type result struct {
		r   *discoveryv3.DiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.stream.Recv()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && res.err != io.EOF {
			c.t.Fatalf("ADS stream: %v", res.err)
		}
		return res.r
	case <-time.After(timeout):
		c.t.Fatalf("no ADS response in %s", timeout)
		return nil
	}
}

func TestControllerServesQuickstartOverADSAndFollowsFileChanges(t *testing.T) {
	dir := copyQuickstart(t)
	xdsAddr, adminAddr := startController(t, dir)
	ads := dialADS(t, xdsAddr, "default/quickstart")

	// Clusters first, as Envoy asks.
	ads.send(resourcev3.ClusterType, "", "")
	resp := ads.recv(10 * time.Second)
	clusters := map[string]bool{}
	for _, a := range resp.Resources {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		clusters[c.Name] = true
	}
	for _, want := range []string{"default/demo-v1:80", "default/demo-v2:80"} {
		if !clusters[want] {
			t.Errorf("cluster %s missing; got %v", want, clusters)
		}
	}
	ads.send(resourcev3.ClusterType, resp.VersionInfo, resp.Nonce)

	// Endpoints of v1 carry the quickstart's address. (In ADS mode a proxy
	// asks for every cluster's endpoints at once, as Envoy does.)
	ads.send(resourcev3.EndpointType, "", "", "default/demo-v1:80", "default/demo-v2:80")
	eresp := ads.recv(10 * time.Second)
	if len(eresp.Resources) != 2 {
		t.Fatalf("want 2 ClusterLoadAssignments, got %d", len(eresp.Resources))
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	for _, a := range eresp.Resources {
		if err := a.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		if cla.ClusterName == "default/demo-v1:80" {
			break
		}
	}
	if got := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); got.GetAddress() != "127.0.0.1" || got.GetPortValue() != 9001 {
		t.Errorf("demo-v1 endpoint = %v, want 127.0.0.1:9001", got)
	}
	ads.send(resourcev3.EndpointType, eresp.VersionInfo, eresp.Nonce, "default/demo-v1:80", "default/demo-v2:80")

	// The route table splits 90/10.
	routeName := "default/quickstart/http-8080"
	ads.send(resourcev3.RouteType, "", "", routeName)
	rresp := ads.recv(10 * time.Second)
	weights := routeWeights(t, rresp)
	if weights["default/demo-v1:80"] != 90 || weights["default/demo-v2:80"] != 10 {
		t.Fatalf("weights = %v, want v1 90, v2 10", weights)
	}
	ads.send(resourcev3.RouteType, rresp.VersionInfo, rresp.Nonce, routeName)

	// Shift the canary to 50/50 in the file: the new route table is pushed.
	route := filepath.Join(dir, "route.yaml")
	b, err := os.ReadFile(route)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(strings.Replace(string(b), "weight: 90", "weight: 50", 1), "weight: 10", "weight: 50", 1)
	if changed == string(b) {
		t.Fatal("quickstart route.yaml no longer has the weights this test edits")
	}
	writeAtomically(t, route, changed)
	start := time.Now()
	rresp2 := ads.recv(10 * time.Second)
	t.Logf("update pushed %s after the file was written", time.Since(start))
	if rresp2.TypeUrl != resourcev3.RouteType || rresp2.VersionInfo == rresp.VersionInfo {
		t.Fatalf("expected a new route version, got %s %s", rresp2.TypeUrl, rresp2.VersionInfo)
	}
	weights = routeWeights(t, rresp2)
	if weights["default/demo-v1:80"] != 50 || weights["default/demo-v2:80"] != 50 {
		t.Fatalf("weights after edit = %v, want 50/50", weights)
	}
	ads.send(resourcev3.RouteType, rresp2.VersionInfo, rresp2.Nonce, routeName)

	// A broken edit: the last good route keeps serving, nothing is pushed,
	// and the problem names the file.
	writeAtomically(t, route, changed+"\n  bogus: [\n")
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "sekisho_controlplane_problems "); ok {
				return v != "0"
			}
		}
		return false
	})
	// A good edit after it is still applied.
	writeAtomically(t, route, strings.Replace(changed, "weight: 50", "weight: 0", 1))
	rresp3 := ads.recvType(resourcev3.RouteType, 10*time.Second)
	weights = routeWeights(t, rresp3)
	if _, ok := weights["default/demo-v1:80"]; ok || weights["default/demo-v2:80"] == 0 {
		t.Fatalf("weights after 0/50 edit = %v, want only v2 (a weight-0 backend gets nothing)", weights)
	}
}

// recvType waits for a response of typeURL, ACKing the other types that come
// first (a removed cluster, say, is pushed before the routes that dropped it).
func (c *adsClient) recvType(typeURL string, timeout time.Duration) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.recv(time.Until(deadline))
		if r.TypeUrl == typeURL {
			return r
		}
		var names []string
		if r.TypeUrl == resourcev3.EndpointType {
			for _, a := range r.Resources {
				cla := &endpointv3.ClusterLoadAssignment{}
				if err := a.UnmarshalTo(cla); err == nil {
					names = append(names, cla.ClusterName)
				}
			}
		}
		c.send(r.TypeUrl, r.VersionInfo, r.Nonce, names...)
	}
}

func routeWeights(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, a := range resp.Resources {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				ra := r.GetRoute()
				if ra == nil {
					continue
				}
				if c := ra.GetCluster(); c != "" {
					out[c] = 100
				}
				for _, wc := range ra.GetWeightedClusters().GetClusters() {
					out[wc.Name] = wc.GetWeight().GetValue()
				}
			}
		}
	}
	return out
}

func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
