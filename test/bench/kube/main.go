// Command kube measures sekisho's Kubernetes mode against a real
// kube-apiserver (started with test/scripts/kube-up.sh): how long status
// takes to converge when many HTTPRoutes are created at once, and the
// controller's memory at 1 000 and 10 000 routes.
//
//	go run ./test/bench/kube [-sekisho bin/sekisho] [-routes 1000,10000]
//
// Each step creates the routes that bring the total to its count with
// server-side apply (one kubectl call per 1 000 routes) and waits until every
// route shows Accepted=True for its parent at its generation. The baseline,
// measured in the same run, is the time kubectl took to create them: the API
// server's own floor for those writes.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/crds"
	provider "github.com/sekisho/sekisho/gateway/provider/kube"
)

const (
	services   = 100
	perApply   = 1000
	controller = "sekisho.dev/gateway-controller"
)

func main() {
	bin := flag.String("sekisho", "bin/sekisho", "the sekisho binary (make build)")
	counts := flag.String("routes", "1000,10000", "route totals to measure at, ascending")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up on a step after this long")
	flag.Parse()
	if err := run(*bin, *counts, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/kube:", err)
		os.Exit(1)
	}
}

type bench struct {
	dir, kubeconfig, kubectl string
	cl                       client.Client
}

func run(bin, countsFlag string, timeout time.Duration) error {
	var counts []int
	for _, f := range strings.Split(countsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || (len(counts) > 0 && n <= counts[len(counts)-1]) {
			return fmt.Errorf("-routes %q: want ascending positive counts", countsFlag)
		}
		counts = append(counts, n)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w (run make build)", err)
	}
	tmp, err := os.MkdirTemp("", "sekisho-bench-kube-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The cluster: kube-up.sh, stopped by kube-down.sh (or by its watchdog
	// if this process dies).
	dir := filepath.Join(tmp, "cluster")
	up := exec.Command("test/scripts/kube-up.sh", dir)
	up.Env = append(os.Environ(), fmt.Sprintf("WATCH_PID=%d", os.Getpid()))
	if out, err := up.CombinedOutput(); err != nil {
		return fmt.Errorf("kube-up.sh: %w\n%s", err, out)
	}
	defer func() {
		if out, err := exec.Command("test/scripts/kube-down.sh", dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "kube-down.sh: %v\n%s", err, out)
		}
	}()
	b := &bench{dir: tmp, kubeconfig: filepath.Join(dir, "kubeconfig"), kubectl: "bin/kubectl"}
	cfg, err := clientcmd.BuildConfigFromFlags("", b.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS = -1
	scheme, err := provider.Scheme()
	if err != nil {
		return err
	}
	if b.cl, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := b.installCRDs(); err != nil {
		return err
	}
	if err := b.apply(baseObjects()); err != nil {
		return err
	}

	// The controller.
	xds, admin := freeAddr(), freeAddr()
	logFile, err := os.Create(filepath.Join(tmp, "controller.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "controller", "--kubeconfig", b.kubeconfig, "--namespace", "sekisho-system",
		"--xds-address", xds, "--admin-address", admin, "--proxy-xds-address", xds)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	if err := waitReady(ctx, "http://"+admin+"/readyz", time.Minute); err != nil {
		return fmt.Errorf("controller: %w (log: %s)", err, logFile.Name())
	}
	if _, err := b.waitAccepted(ctx, 0, time.Minute); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	rss0, hwm0 := memory(cmd.Process.Pid)

	fmt.Printf("sekisho Kubernetes mode: kube-apiserver v1.36.3 + etcd on 127.0.0.1, one controller (no leader election),\n")
	fmt.Printf("one Gateway, %d Services (3 endpoints each), routes with a path prefix and a 90/10 split each\n\n", services)
	fmt.Printf("%-8s %-7s %12s %14s %8s %12s %10s %10s\n", "routes", "new", "kubectl", "all Accepted", "ratio", "after last", "VmRSS", "VmHWM")
	fmt.Printf("%-8d %-7d %12s %14s %8s %12s %10s %10s\n", 0, 0, "-", "-", "-", "-", mib(rss0), mib(hwm0))
	have := 0
	for _, n := range counts {
		start := time.Now()
		for from := have; from < n; from += perApply {
			if err := b.apply(routes(from, min(from+perApply, n))); err != nil {
				return err
			}
		}
		created := time.Since(start)
		converged, err := b.waitAccepted(ctx, n, timeout)
		if err != nil {
			return fmt.Errorf("%d routes: %w (log: %s)", n, err, logFile.Name())
		}
		time.Sleep(2 * time.Second)
		rss, hwm := memory(cmd.Process.Pid)
		fmt.Printf("%-8d %-7d %12s %14s %7.2fx %12s %10s %10s\n", n, n-have, created.Round(10*time.Millisecond),
			converged.Sub(start).Round(10*time.Millisecond), float64(converged.Sub(start))/float64(created),
			converged.Sub(start.Add(created)).Round(10*time.Millisecond), mib(rss), mib(hwm))
		have = n
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not ready at %s after %s", url, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bench) kubectlRun(stdin []byte, args ...string) error {
	cmd := exec.Command(b.kubectl, append([]string{"--kubeconfig", b.kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) installCRDs() error {
	dir := filepath.Join(b.dir, "crds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := fs.WalkDir(crds.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := crds.FS.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, strings.ReplaceAll(path, "/", "_")), data, 0o644)
	})
	if err != nil {
		return err
	}
	if err := b.kubectlRun(nil, "apply", "--server-side", "-f", dir); err != nil {
		return err
	}
	return b.kubectlRun(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
}

func (b *bench) apply(manifest []byte) error {
	return b.kubectlRun(manifest, "apply", "--server-side", "--field-manager", "sekisho-bench", "-f", "-")
}

func baseObjects() []byte {
	var w bytes.Buffer
	fmt.Fprintf(&w, `apiVersion: v1
kind: Namespace
metadata: {name: sekisho-system}
---
apiVersion: config.sekisho.dev/v1alpha1
kind: GatewayClassConfig
metadata: {name: proxies, namespace: sekisho-system}
spec: {proxy: {service: {type: ClusterIP}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sekisho}
spec:
  controllerName: %s
  parametersRef: {group: config.sekisho.dev, kind: GatewayClassConfig, name: proxies, namespace: sekisho-system}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: sekisho
  listeners: [{name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: Same}}}]
`, controller)
	for s := range services {
		fmt.Fprintf(&w, `---
apiVersion: v1
kind: Service
metadata: {name: svc-%03[1]d, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-%03[1]d, namespace: default, labels: {kubernetes.io/service-name: svc-%03[1]d}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: ["10.244.%[2]d.1"], conditions: {ready: true}}
- {addresses: ["10.244.%[2]d.2"], conditions: {ready: true}}
- {addresses: ["10.244.%[2]d.3"], conditions: {ready: true}}
`, s, s+1)
	}
	return w.Bytes()
}

// routes returns HTTPRoutes route-FROM .. route-(TO-1).
func routes(from, to int) []byte {
	var w bytes.Buffer
	for i := from; i < to; i++ {
		fmt.Fprintf(&w, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-%05[1]d, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /r%05[1]d}, headers: [{name: x-tenant, value: t%[1]d}]}]
    backendRefs:
    - {name: svc-%03[2]d, port: 80, weight: 90}
    - {name: svc-%03[3]d, port: 80, weight: 10}
`, i, i%services, (i+1)%services)
	}
	return w.Bytes()
}

// waitAccepted polls until want HTTPRoutes exist and each shows sekisho's
// Accepted=True at its generation, and returns when it saw that.
func (b *bench) waitAccepted(ctx context.Context, want int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	interval := 200 * time.Millisecond
	if want > 2000 {
		interval = time.Second
	}
	last := ""
	for {
		var list gwv1.HTTPRouteList
		if err := b.cl.List(ctx, &list, client.InNamespace("default")); err == nil {
			done := 0
			for _, r := range list.Items {
				for _, p := range r.Status.Parents {
					c := meta.FindStatusCondition(p.Conditions, "Accepted")
					if p.ControllerName == controller && c != nil && c.Status == "True" && c.ObservedGeneration == r.Generation {
						done++
						break
					}
				}
			}
			if len(list.Items) == want && done == want {
				return time.Now(), nil
			}
			last = fmt.Sprintf("%d of %d routes Accepted", done, len(list.Items))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("not converged after %s: %s", timeout, last)
		}
		if ctx.Err() != nil {
			return time.Time{}, errors.New("interrupted")
		}
		time.Sleep(interval)
	}
}

// memory returns VmRSS and VmHWM of pid, in bytes.
func memory(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = kb * 1024
		} else {
			hwm = kb * 1024
		}
	}
	return rss, hwm
}

func mib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
