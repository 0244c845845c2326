//go:build linux

package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The traffic test runs in its own network namespace, where the API server
// accepts the backends' EndpointSlices (10.244.0.x, not loopback). The test
// creates the namespace and runs itself again inside it (ip netns exec);
// $SEKISHO_NETNS tells the child it is the inside half.
const (
	envNetns   = "SEKISHO_NETNS"
	netnsAPI   = "10.244.0.1" // kube-apiserver, controller and proxy
	netnsV1    = "10.244.0.10"
	netnsV2    = "10.244.0.11"
	echoPort   = 9001
	proxyPort  = 8080
	trafficRun = "^TestTrafficThroughGatewayProxy$"
)

// TestTrafficThroughGatewayProxy: kube-apiserver, the controller, a
// `sekisho proxy` for the Gateway and two echo backends run in a network
// namespace; requests through the proxy reach both backends per the
// HTTPRoute's split, and follow a change of it.
func TestTrafficThroughGatewayProxy(t *testing.T) {
	if os.Getenv(envNetns) != "" {
		trafficInside(t)
		return
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("this test needs iproute2's ip to create a network namespace (apt-get install iproute2): %v", err)
	}
	name := fmt.Sprintf("sekisho-kube-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s (creating a network namespace needs root or CAP_SYS_ADMIN)", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() {
		// Anything still running inside (the child's processes, had it died
		// without its cleanups) goes first; then the namespace.
		if out, err := exec.Command(ipPath, "netns", "pids", name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command(ipPath, "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("removing network namespace %s: %v: %s", name, err, out)
		}
	})
	ip("-n", name, "link", "set", "lo", "up")
	for _, a := range []string{netnsAPI, netnsV1, netnsV2} {
		ip("-n", name, "addr", "add", a+"/32", "dev", "lo")
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	child := exec.CommandContext(c, ipPath, "netns", "exec", name, self, "-test.run", trafficRun, "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), envNetns+"="+name, envSekishoBin+"="+sekishoBin, "BIND_ADDRESS="+netnsAPI)
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	err = child.Run()
	t.Logf("inside network namespace %s:\n%s", name, out.String())
	if err != nil {
		t.Fatalf("the test inside the network namespace failed: %v", err)
	}
	if !strings.Contains(out.String(), "--- PASS: TestTrafficThroughGatewayProxy") {
		t.Fatal("the test inside the network namespace did not report a pass")
	}
}

// trafficInside is the half that runs inside the network namespace.
func trafficInside(t *testing.T) {
	e := setup(t, backends{v1: netnsV1, v2: netnsV2, port: echoPort})
	startProc(t, "echo-v1", "echo", "--listen", fmt.Sprintf("%s:%d", netnsV1, echoPort), "--name", "v1")
	startProc(t, "echo-v2", "echo", "--listen", fmt.Sprintf("%s:%d", netnsV2, echoPort), "--name", "v2")
	ctl := startController(t, e, netnsAPI, "controller")

	// The Gateway is Programmed once its proxy has taken the listener.
	proxyAdmin := freeAddr(t, netnsAPI)
	proxy := startProc(t, "proxy", "proxy", "--xds", ctl.xds, "--gateway", ns+"/"+gwName, "--node", "sekisho-edge-test",
		"--admin-address", proxyAdmin, "--access-log=false")
	eventually(t, 30*time.Second, "proxy /readyz", func() error {
		if proxy.exited() {
			t.Fatalf("proxy exited:\n%s", tail(proxy.logs.String(), 40))
		}
		return httpOK("http://" + proxyAdmin + "/readyz")
	})
	eventually(t, 30*time.Second, "status converges", e.converged(t, 1))

	url := fmt.Sprintf("http://%s:%d/", netnsAPI, proxyPort)
	// The listener may come up just after /readyz: wait for one answer.
	eventually(t, 10*time.Second, "first answer through the proxy", func() error { _, err := get(url); return err })

	const n = 400
	count := func() map[string]int {
		got := map[string]int{}
		for range n {
			b, err := get(url)
			if err != nil {
				t.Fatal(err)
			}
			got[b]++
		}
		return got
	}
	got := count()
	t.Logf("90/10 split: %d requests: %v", n, got)
	// Binomial(400, 0.1) has a standard deviation of 6: 12..80 is more than
	// 4.5 of them either side of 40.
	if got["v1"]+got["v2"] != n || got["v2"] < 12 || got["v2"] > 80 {
		t.Fatalf("backends %v for a 90/10 split of %d requests", got, n)
	}

	// Move everything to v2: the proxy follows.
	e.kubectl(t, "patch", "httproute", "demo", "-n", ns, "--type=json",
		"-p", `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":0},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":100}]`)
	eventually(t, 20*time.Second, "route status at its new generation",
		e.routeConds(t, "demo", metav1.ConditionTrue, metav1.ConditionTrue, "Accepted", "ResolvedRefs"))
	eventually(t, 15*time.Second, "all traffic on v2", func() error {
		for range 20 {
			b, err := get(url)
			if err != nil {
				return err
			}
			if b != "v2" {
				return fmt.Errorf("answered by %s", b)
			}
		}
		return nil
	})
}

var plainClient = &http.Client{Timeout: 5 * time.Second}

// get returns the backend that answered.
func get(url string) (string, error) {
	resp, err := plainClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return resp.Header.Get("X-Echo-Backend"), nil
}
