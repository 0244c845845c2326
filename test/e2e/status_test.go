package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stRow is one condition of the admin /status?format=json.
type stRow struct {
	Kind, Name, Parent, Type, Status, Reason, Message string
}

// stStatus reads the Programmed conditions of the admin /status (JSON), by
// parent ("-" for the Gateway itself, else the listener name).
func stStatus(adminAddr, gateway string) (map[string]stRow, error) {
	resp, err := http.Get("http://" + adminAddr + "/status?format=json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var rows []stRow
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("decoding /status: %v: %s", err, b)
	}
	out := map[string]stRow{}
	for _, r := range rows {
		if r.Kind == "Gateway" && r.Name == gateway && r.Type == "Programmed" {
			out[r.Parent] = r
		}
	}
	return out, nil
}

// stGatewayDir writes a Gateway with one HTTP listener per port (named
// l<port>) and a route from all of them to the echo backend at backend.
func stGatewayDir(t *testing.T, backend string, ports ...int) string {
	t.Helper()
	var ls strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&ls, "  - {name: l%d, protocol: HTTP, port: %d}\n", p, p)
	}
	cfg := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec: {controllerName: sekisho.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners:
` + ls.String() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
---
` + ftServiceYAML(t, "echo", backend, "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stServes reports whether port answers through the proxy from the echo
// backend named backend.
func stServes(c *http.Client, port int, backend string) error {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if got := resp.Header.Get("X-Echo-Backend"); resp.StatusCode != http.StatusOK || got != backend {
		return fmt.Errorf("port %d answered %d from backend %q, want 200 from %q", port, resp.StatusCode, got, backend)
	}
	return nil
}

// stWait polls cond until it returns nil, failing with its last error.
func stWait(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProgrammedFollowsBind: a Gateway listener on a port another process
// holds is Programmed=False (Invalid, the port in the message), the Gateway
// is not Programmed, and the other listeners serve; once the port is free
// the proxy binds it on its own, and the listener and the Gateway become
// Programmed and serve.
func TestProgrammedFollowsBind(t *testing.T) {
	backend := ftEcho(t, "v1")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := ftPortOf(t, held.Addr().String())
	good, other := ftPort(t), ftPort(t)
	admin := ftRun(t, stGatewayDir(t, backend, good, taken, other))
	c := ftClient(t)
	takenName := "l" + strconv.Itoa(taken)

	stWait(t, 20*time.Second, "the taken listener reported", func() error {
		st, err := stStatus(admin, "default/gw")
		if err != nil {
			return err
		}
		l := st[takenName]
		if l.Status != "False" {
			return fmt.Errorf("listener %s Programmed=%s (%s: %s), want False", takenName, l.Status, l.Reason, l.Message)
		}
		if l.Reason != "Invalid" || !strings.Contains(l.Message, strconv.Itoa(taken)) || !strings.Contains(l.Message, "address already in use") {
			t.Errorf("listener %s: reason %q message %q, want Invalid naming port %d and the cause", takenName, l.Reason, l.Message, taken)
		}
		if g := st["-"]; g.Status == "True" {
			t.Errorf("Gateway Programmed=True while listener %s does not serve: %+v", takenName, g)
		}
		for _, p := range []int{good, other} {
			if l := st["l"+strconv.Itoa(p)]; l.Status != "True" {
				t.Errorf("listener l%d Programmed=%s (%s: %s), want True", p, l.Status, l.Reason, l.Message)
			}
		}
		return nil
	})
	for _, p := range []int{good, other} {
		stWait(t, 10*time.Second, fmt.Sprintf("port %d serves", p), func() error { return stServes(c, p, "v1") })
	}

	held.Close()
	stWait(t, 20*time.Second, "the freed port bound and Programmed", func() error {
		st, err := stStatus(admin, "default/gw")
		if err != nil {
			return err
		}
		if l, g := st[takenName], st["-"]; l.Status != "True" || g.Status != "True" {
			return fmt.Errorf("listener %s Programmed=%s (%s), Gateway Programmed=%s (%s)", takenName, l.Status, l.Message, g.Status, g.Message)
		}
		return nil
	})
	stWait(t, 10*time.Second, fmt.Sprintf("port %d serves", taken), func() error { return stServes(c, taken, "v1") })
}

// TestRunServesTheFormerServicePorts: sekisho run's own hops take loopback
// ports picked at start, so a Gateway may listen on 18000, 18081 and 18082
// (the ports its xDS, authorization and rate-limit services once had).
func TestRunServesTheFormerServicePorts(t *testing.T) {
	ports := []int{18000, 18081, 18082}
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			t.Skipf("SKIPPED: port %d is held by another process on this machine (%v); this test needs 18000, 18081 and 18082 free", p, err)
		}
		l.Close()
	}
	backend := ftEcho(t, "v1")
	adminAddr := freeAddr(t)
	// No --xds-address: the defaults are what is tested.
	ftStartProcess(t, "sekisho run", "run", "-f", stGatewayDir(t, backend, ports...), "--admin-address", adminAddr)
	c := ftClient(t)
	stWait(t, 20*time.Second, "every listener Programmed", func() error {
		st, err := stStatus(adminAddr, "default/gw")
		if err != nil {
			return err
		}
		for _, p := range ports {
			if l := st["l"+strconv.Itoa(p)]; l.Status != "True" {
				return fmt.Errorf("listener l%d Programmed=%s (%s: %s)", p, l.Status, l.Reason, l.Message)
			}
		}
		if g := st["-"]; g.Status != "True" {
			return fmt.Errorf("Gateway Programmed=%s (%s: %s)", g.Status, g.Reason, g.Message)
		}
		return nil
	})
	for _, p := range ports {
		stWait(t, 10*time.Second, fmt.Sprintf("port %d serves", p), func() error { return stServes(c, p, "v1") })
	}
}

// TestStatusOfflineDoesNotClaimProgrammed: `sekisho status -f` never saw a
// data plane: Programmed is Unknown (Pending), not True.
func TestStatusOfflineDoesNotClaimProgrammed(t *testing.T) {
	out, errOut, code := runCLI(t, "status", "-f", "../../examples/quickstart")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "Gateway" || f[3] != "Programmed" {
			continue
		}
		n++
		if f[4] != "Unknown" || f[5] != "Pending" {
			t.Errorf("offline Programmed row %q, want Unknown Pending", line)
		}
	}
	if n != 2 {
		t.Errorf("%d Gateway Programmed rows (Gateway and listener), want 2:\n%s", n, out)
	}
}
