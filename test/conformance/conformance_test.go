//go:build linux

package conformance

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/sekisho/sekisho/crds"
	"github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/test/conformance/kubelet"
	"github.com/sekisho/sekisho/test/kube"
)

// The run happens in a network namespace the test creates (the API server
// refuses loopback addresses in EndpointSlices); the test runs itself again
// inside it, as test/kube's traffic test does. $SEKISHO_CONFORMANCE_NETNS
// tells the child it is the inside half.
const (
	envNetns   = "SEKISHO_CONFORMANCE_NETNS"
	envBin     = "SEKISHO_CONFORMANCE_BIN" // dir holding sekisho and echo-basic
	envLogs    = "SEKISHO_CONFORMANCE_LOGS"
	apiAddr    = "10.244.0.1" // kube-apiserver and controller
	xdsAddr    = apiAddr + ":18000"
	className  = "sekisho"
	systemNS   = "sekisho-system"
	controller = "sekisho.dev/gateway-controller"
)

var (
	coreOnly = flag.Bool("sekisho.core-only", false, "claim only the GATEWAY-HTTP profile's core features (the core tests), not every feature sekisho supports")
	deadline = flag.Duration("sekisho.deadline", 50*time.Minute, "watchdog: stop everything after this long")
)

// TestConformance runs the Gateway API conformance suite (v1.6.3) against
// `sekisho controller` on a real kube-apiserver + etcd. One test:
//
//	go test -v -run '^TestConformance$' . -args -run-test=HTTPRouteSimpleSameNamespace
//
// Every claimed test, with a report:
//
//	go test -v -timeout 60m -run '^TestConformance$' . -args -report-output=$PWD/report.yaml
func TestConformance(t *testing.T) {
	if os.Getenv(envNetns) != "" {
		inside(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("the conformance run creates network namespaces: it needs root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("this test needs iproute2's ip (apt-get install iproute2): %v", err)
	}
	root, err := kube.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	// Both binaries are built fresh: sekisho in the main module, echo-basic
	// from this module's pins.
	binDir := t.TempDir()
	for _, b := range [][]string{
		{"sekisho", "./cmd/sekisho", root},
		{"echo-basic", "sigs.k8s.io/gateway-api/conformance/echo-basic", "."},
	} {
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, b[0]), b[1])
		build.Dir = b[2]
		out, err := build.CombinedOutput()
		if err != nil {
			t.Fatalf("building %s: %v\n%s", b[1], err, out)
		}
	}
	logs := os.Getenv(envLogs)
	if logs == "" {
		logs = filepath.Join(os.TempDir(), fmt.Sprintf("sekisho-conformance-%d", os.Getpid()))
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("process logs in %s", logs)

	name := fmt.Sprintf("sekisho-conf-%d", os.Getpid())
	cleanNetns := func() {
		out, _ := exec.Command(ipPath, "netns", "list").Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
				continue
			}
			if pids, err := exec.Command(ipPath, "netns", "pids", f[0]).Output(); err == nil {
				for _, p := range strings.Fields(string(pids)) {
					if pid, err := strconv.Atoi(p); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			if out, err := exec.Command(ipPath, "netns", "delete", f[0]).CombinedOutput(); err != nil {
				t.Errorf("removing network namespace %s: %v: %s", f[0], err, out)
			}
		}
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(cleanNetns)
	// The watchdog removes the namespaces (and whatever runs in them) if
	// this process dies without its cleanups.
	watchdog := exec.Command("bash", "-c", fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 2; done
for n in $(ip netns list | awk '{print $1}' | grep -E '^%s(-|$)'); do
  for p in $(ip netns pids "$n"); do kill -9 "$p"; done
  ip netns delete "$n"
done`, os.Getpid(), name))
	watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := watchdog.Start(); err != nil {
		t.Fatalf("starting the watchdog: %v", err)
	}
	go func() { _ = watchdog.Wait() }()

	ip("-n", name, "link", "set", "lo", "up")
	ip("-n", name, "addr", "add", apiAddr+"/32", "dev", "lo")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", name, self}
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-test.testlogfile") && !strings.HasPrefix(a, "-test.run") {
			args = append(args, a)
		}
	}
	args = append(args, "-test.run=^TestConformance$")
	c, cancel := context.WithTimeout(context.Background(), *deadline)
	defer cancel()
	child := exec.CommandContext(c, ipPath, args...)
	child.Dir, _ = os.Getwd()
	child.Env = append(os.Environ(), envNetns+"="+name, envBin+"="+binDir, envLogs+"="+logs,
		"BIND_ADDRESS="+apiAddr, "SEKISHO_REPO="+root)
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	if err := child.Run(); err != nil {
		t.Fatalf("the conformance run inside network namespace %s failed: %v (process logs in %s)", name, err, logs)
	}
}

// inside is the half that runs inside the network namespace.
func inside(t *testing.T) {
	binDir, logs, netns := os.Getenv(envBin), os.Getenv(envLogs), os.Getenv(envNetns)
	sekisho := filepath.Join(binDir, "sekisho")

	c := kube.Start(t)
	installCRDs(t, c)
	if out, err := c.KubectlInput(baseManifest, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("applying the GatewayClass: %v\n%s", err, out)
	}

	// The controller.
	ctlLog, err := os.Create(filepath.Join(logs, "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctl := exec.Command(sekisho, "controller", "--kubeconfig", c.Kubeconfig, "--namespace", systemNS,
		"--xds-address", xdsAddr, "--admin-address", apiAddr+":19001", "--proxy-xds-address", xdsAddr, "--log-level", "debug")
	ctl.Stdout, ctl.Stderr = ctlLog, ctlLog
	ctl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := ctl.Start(); err != nil {
		t.Fatalf("starting sekisho controller: %v", err)
	}
	ctlDone := make(chan struct{})
	go func() { _ = ctl.Wait(); ctlLog.Close(); close(ctlDone) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-ctl.Process.Pid, syscall.SIGTERM)
		select {
		case <-ctlDone:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-ctl.Process.Pid, syscall.SIGKILL)
			<-ctlDone
		}
	})
	waitFor(t, 60*time.Second, "the controller's /readyz", func() error {
		select {
		case <-ctlDone:
			t.Fatalf("sekisho controller exited; see %s/controller.log", logs)
		default:
		}
		resp, err := http.Get("http://" + apiAddr + ":19001/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})

	// The kubelet emulator.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Each Pod runs in a network namespace of its own, routed through this
	// one (see kubelet.Config.HostAddress): this namespace forwards.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatalf("enabling forwarding in network namespace %s: %v", netns, err)
	}
	em, err := kubelet.Start(kubelet.Config{
		Client: cs, Dynamic: dyn, NamespacePrefix: "gateway-conformance-",
		EchoBin: filepath.Join(binDir, "echo-basic"), SekishoBin: sekisho, XDSAddress: xdsAddr, HostAddress: apiAddr,
		LogAddress:  apiAddr + ":10250",
		NetnsPrefix: netns, LogDir: filepath.Join(logs, "pods"), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Stop)

	// The suite.
	t.Setenv("KUBECONFIG", c.Kubeconfig)
	opts := conformance.DefaultOptions(t)
	// The suite polls many objects at once: a client with the default rate
	// limit (QPS 20) runs out of its poll timeouts waiting on itself.
	opts.RestConfig.QPS, opts.RestConfig.Burst = 200, 400
	if opts.Client, err = client.New(opts.RestConfig, client.Options{Scheme: opts.Client.Scheme()}); err != nil {
		t.Fatal(err)
	}
	if opts.Clientset, err = kubernetes.NewForConfig(opts.RestConfig); err != nil {
		t.Fatal(err)
	}
	opts.ClientOptions = client.Options{Scheme: opts.Client.Scheme()}
	if !set("gateway-class") {
		opts.GatewayClassName = className
	}
	// No namespace controller runs: namespaces never finish terminating, and
	// the whole cluster is thrown away at the end anyway.
	opts.CleanupBaseResources = false
	if !set("supported-features") && !set("all-features") {
		if *coreOnly {
			opts.SupportedFeatures = suite.GatewayHTTPConformanceProfile.CoreFeatures.UnsortedList()
		} else {
			opts.SupportedFeatures = nil
			for _, f := range translate.SupportedFeatures() {
				opts.SupportedFeatures = append(opts.SupportedFeatures, features.FeatureName(f.Name))
			}
		}
		slices.Sort(opts.SupportedFeatures)
	}
	if len(opts.ConformanceProfiles) == 0 {
		opts.ConformanceProfiles = []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName}
		if slices.Contains(opts.SupportedFeatures, features.SupportGRPCRoute) {
			opts.ConformanceProfiles = append(opts.ConformanceProfiles, suite.GatewayGRPCConformanceProfileName)
		}
	}
	if opts.Implementation.Organization == "" {
		opts.Implementation = confv1.Implementation{
			Organization: "sekisho", Project: "sekisho", URL: "https://github.com/sekisho/sekisho",
			Version: "dev", Contact: []string{"https://github.com/sekisho/sekisho/issues"},
		}
	}
	if opts.ReportOutputPath != "" && !filepath.IsAbs(opts.ReportOutputPath) {
		opts.ReportOutputPath = filepath.Join(os.Getenv("SEKISHO_REPO"), opts.ReportOutputPath)
	}
	conformance.RunConformanceWithOptions(t, opts)
}

// set reports whether the conformance flag name was given.
func set(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

const baseManifest = `apiVersion: v1
kind: Namespace
metadata: {name: ` + systemNS + `}
---
apiVersion: config.sekisho.dev/v1alpha1
kind: GatewayClassConfig
metadata: {name: conformance, namespace: ` + systemNS + `}
spec:
  proxy:
    replicas: 1
    service:
      type: ClusterIP
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ` + className + `}
spec:
  controllerName: ` + controller + `
  parametersRef: {group: config.sekisho.dev, kind: GatewayClassConfig, name: conformance, namespace: ` + systemNS + `}
`

func installCRDs(t *testing.T, c *kube.Cluster) {
	t.Helper()
	dir := t.TempDir()
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
		t.Fatalf("writing out crds.FS: %v", err)
	}
	if !*coreOnly {
		// HTTPRouteRetry is an experimental-channel field, and the suite
		// refuses a mix of channels: the extended run installs the
		// experimental channel's CRDs, from the module go.mod pins, in place
		// of the standard ones.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
		if err != nil {
			t.Fatalf("finding the gateway-api module: %v", err)
		}
		std, _ := filepath.Glob(filepath.Join(dir, "gateway-api_*.yaml"))
		for _, f := range std {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		exp := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "experimental")
		files, _ := filepath.Glob(filepath.Join(exp, "gateway.networking.*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no experimental CRDs in %s", exp)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "experimental_"+filepath.Base(f)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := c.Kubectl("apply", "--server-side", "-f", dir); err != nil {
		t.Fatalf("installing the CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		t.Fatalf("waiting for the CRDs: %v\n%s", err, out)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
