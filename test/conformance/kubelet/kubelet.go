//go:build linux

// Package kubelet plays the roles a cluster without kubelet, scheduler or
// controller-manager lacks, for the Gateway API conformance suite run
// against sekisho on a bare kube-apiserver:
//
//   - the Deployment controller and kubelet: for every Deployment in a
//     namespace with the given prefix (gateway-conformance-*), it creates
//     Pods named <deployment>-<10 hex>-<5 chars> (the shape the suite's
//     weight tests parse) with the template's labels, starts one echo-basic
//     per Pod, and marks the Pod Running and Ready with its IP. Each Pod
//     gets a network namespace of its own (echo-basic and the proxy listen
//     on all addresses, on fixed ports) joined to this one by a veth pair
//     whose inner end holds the Pod's IP (10.244.1.x, …); this namespace
//     routes between them;
//   - for the proxy Deployments sekisho's controller provisions (label
//     app.kubernetes.io/name=sekisho-proxy, any namespace) it runs
//     `sekisho proxy` instead, with the Gateway Service's ClusterIP (the
//     address written into Gateway status) as the Pod's address;
//   - the EndpointSlice controller: one EndpointSlice per ready Pod and
//     Service with a selector, ports resolved from the Service's targetPort;
//   - the garbage collector, for what hangs off a Gateway: a proxy
//     Deployment or Service whose owning Gateway is gone is deleted.
//
// The Emulator must run inside a network namespace made for it (it adds
// routes, network namespaces and veth pairs): never on a host.
package kubelet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// LabelEmulated marks the Pods the Emulator created.
	LabelEmulated = "kubelet.sekisho.dev/emulated"
	managedBy     = "kubelet.sekisho.dev"
	proxyLabel    = "app.kubernetes.io/name"
	proxyName     = "sekisho-proxy"
	nodeName      = "sekisho-emulated-node"
)

var gatewayGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}

// Config says what the Emulator runs and where.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// NamespacePrefix selects the namespaces whose Deployments get echo
	// backends ("gateway-conformance-").
	NamespacePrefix string
	EchoBin         string // bin/echo-basic
	SekishoBin      string // bin/sekisho
	// XDSAddress is the controller's xDS address the proxies dial.
	XDSAddress string
	// HostAddress is an address of this network namespace (on lo, where
	// the API server and controller listen): each Pod's namespace routes
	// through it, so this namespace must forward (net.ipv4.ip_forward=1).
	HostAddress string
	// NetnsPrefix names the network namespaces made for proxies
	// (NetnsPrefix + "-gw<n>"); veths are named skv<n>a / skv<n>b.
	NetnsPrefix string
	// LogDir receives one log file per process.
	LogDir string
	Logf   func(format string, args ...any)
	// LogAddress, if set, is where the Emulator serves the kubelet's
	// /containerLogs API for its Node (an address of this namespace).
	LogAddress string
	// Period is how often the Emulator reconciles (default 250ms).
	Period time.Duration
}

// Emulator is the running loop; Stop ends every process and removes every
// network namespace it made.
type Emulator struct {
	cfg Config

	mu       sync.Mutex
	pods     map[string]*pod // ns/name
	nextIP   int
	nextNS   int
	freeIPs  []string
	netns    []string
	stopped  atomic.Bool // read by the processes' reapers, which must not take mu
	cancel   context.CancelFunc
	done     chan struct{}
	errCount int
}

type pod struct {
	ns, name, deploy, ip string
	proxy, udp           bool
	ports                map[int32]int32 // template (container) port → real port
	named                map[string]int32
	proc                 *exec.Cmd
	exited               chan struct{}
	netns                string
	ready                bool
}

// Start starts the Emulator's loop.
func Start(cfg Config) (*Emulator, error) {
	if cfg.Period == 0 {
		cfg.Period = 250 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	for _, b := range []string{cfg.EchoBin, cfg.SekishoBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("starting the kubelet emulator: %w (run 'make conformance-tools')", err)
		}
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("starting the kubelet emulator: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Emulator{cfg: cfg, pods: map[string]*pod{}, cancel: cancel, done: make(chan struct{})}
	if cfg.LogAddress != "" {
		if err := e.serveLogs(ctx); err != nil {
			cancel()
			return nil, err
		}
	}
	go e.loop(ctx)
	return e, nil
}

// Stop ends the loop, kills every process and removes the proxies'
// network namespaces.
func (e *Emulator) Stop() {
	e.cancel()
	<-e.done
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped.Store(true)
	for _, p := range e.pods {
		e.kill(p)
	}
	for _, n := range e.netns {
		if out, err := exec.Command("ip", "netns", "delete", n).CombinedOutput(); err != nil {
			e.cfg.Logf("kubelet: removing network namespace %s: %v: %s", n, err, out)
		}
	}
	e.netns = nil
}

func (e *Emulator) loop(ctx context.Context) {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Period)
	defer t.Stop()
	for {
		if err := e.reconcile(ctx); err != nil && ctx.Err() == nil {
			e.errCount++
			if e.errCount < 50 || e.errCount%100 == 0 {
				e.cfg.Logf("kubelet: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Emulator) inScope(ns string, d *appsv1.Deployment) bool {
	return strings.HasPrefix(ns, e.cfg.NamespacePrefix) || (d != nil && d.Labels[proxyLabel] == proxyName)
}

func (e *Emulator) reconcile(ctx context.Context) error {
	cs := e.cfg.Client
	deps, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Deployments: %w", err)
	}
	podList, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: LabelEmulated})
	if err != nil {
		return fmt.Errorf("listing Pods: %w", err)
	}
	var errs []error
	e.collectGarbage(ctx, deps.Items, &errs)

	// Pods: what exists in the API, by Deployment.
	live := map[string]*corev1.Pod{}
	byDeploy := map[string][]*corev1.Pod{}
	for i := range podList.Items {
		p := &podList.Items[i]
		key := p.Namespace + "/" + p.Name
		if p.DeletionTimestamp != nil {
			errs = append(errs, e.deletePod(ctx, p.Namespace, p.Name))
			continue
		}
		live[key] = p
		byDeploy[p.Namespace+"/"+p.Labels[LabelEmulated]] = append(byDeploy[p.Namespace+"/"+p.Labels[LabelEmulated]], p)
	}
	// Processes whose Pod is gone.
	e.mu.Lock()
	for key, p := range e.pods {
		if live[key] == nil {
			e.kill(p)
			delete(e.pods, key)
		}
	}
	e.mu.Unlock()

	wanted := map[string]bool{}
	for i := range deps.Items {
		d := &deps.Items[i]
		if !e.inScope(d.Namespace, d) || d.DeletionTimestamp != nil {
			continue
		}
		dk := d.Namespace + "/" + d.Name
		wanted[dk] = true
		hash := templateHash(&d.Spec.Template)
		replicas := int(ptr.Deref(d.Spec.Replicas, 1))
		var current []*corev1.Pod
		for _, p := range byDeploy[dk] {
			if p.Labels["pod-template-hash"] != hash || len(current) >= replicas {
				errs = append(errs, e.deletePod(ctx, p.Namespace, p.Name))
				continue
			}
			current = append(current, p)
		}
		for len(current) < replicas {
			p, err := e.createPod(ctx, d, hash)
			if err != nil {
				errs = append(errs, err)
				break
			}
			current = append(current, p)
		}
		for _, p := range current {
			errs = append(errs, e.run(ctx, d, p))
		}
		errs = append(errs, e.deploymentStatus(ctx, d, len(current)))
	}
	for dk, ps := range byDeploy {
		if !wanted[dk] {
			for _, p := range ps {
				errs = append(errs, e.deletePod(ctx, p.Namespace, p.Name))
			}
		}
	}
	errs = append(errs, e.endpointSlices(ctx))
	return errors.Join(errs...)
}

// collectGarbage deletes proxy Deployments and Services whose owning
// Gateway no longer exists (there is no garbage collector).
func (e *Emulator) collectGarbage(ctx context.Context, deps []appsv1.Deployment, errs *[]error) {
	if e.cfg.Dynamic == nil {
		return
	}
	gone := func(ns string, refs []metav1.OwnerReference) bool {
		for _, r := range refs {
			if r.Kind != "Gateway" {
				continue
			}
			_, err := e.cfg.Dynamic.Resource(gatewayGVR).Namespace(ns).Get(ctx, r.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true
			}
		}
		return false
	}
	for i := range deps {
		d := &deps[i]
		if d.Labels[proxyLabel] != proxyName || d.DeletionTimestamp != nil || !gone(d.Namespace, d.OwnerReferences) {
			continue
		}
		e.cfg.Logf("kubelet: deleting %s/%s: its Gateway is gone", d.Namespace, d.Name)
		if err := e.cfg.Client.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			*errs = append(*errs, err)
		}
		if err := e.cfg.Client.CoreV1().Services(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			*errs = append(*errs, err)
		}
	}
}

func templateHash(t *corev1.PodTemplateSpec) string {
	data, _ := json.Marshal(t)
	h := fnv.New64a()
	h.Write(data)
	return fmt.Sprintf("%010x", h.Sum64())[:10]
}

const suffixChars = "bcdfghjklmnpqrstvwxz2456789"

func randSuffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = suffixChars[int(b[i])%len(suffixChars)]
	}
	return string(b)
}

func (e *Emulator) createPod(ctx context.Context, d *appsv1.Deployment, hash string) (*corev1.Pod, error) {
	lbls := map[string]string{}
	for k, v := range d.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls["pod-template-hash"] = hash
	lbls[LabelEmulated] = d.Name
	spec := *d.Spec.Template.Spec.DeepCopy()
	spec.NodeName = nodeName
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-%s-%s", d.Name, hash, randSuffix()),
			Namespace:   d.Namespace,
			Labels:      lbls,
			Annotations: d.Spec.Template.Annotations,
		},
		Spec: spec,
	}
	created, err := e.cfg.Client.CoreV1().Pods(d.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating a Pod for Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	e.cfg.Logf("kubelet: created Pod %s/%s", created.Namespace, created.Name)
	return created, nil
}

func (e *Emulator) deletePod(ctx context.Context, ns, name string) error {
	e.mu.Lock()
	if p := e.pods[ns+"/"+name]; p != nil {
		e.kill(p)
		delete(e.pods, ns+"/"+name)
	}
	e.mu.Unlock()
	err := e.cfg.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Pod %s/%s: %w", ns, name, err)
	}
	return nil
}

// run starts the Pod's process if it is not running and keeps its status.
func (e *Emulator) run(ctx context.Context, d *appsv1.Deployment, kp *corev1.Pod) error {
	key := kp.Namespace + "/" + kp.Name
	e.mu.Lock()
	p := e.pods[key]
	if p == nil {
		var err error
		if d.Labels[proxyLabel] == proxyName {
			p, err = e.startProxy(ctx, d, kp)
		} else {
			p, err = e.startEcho(kp)
		}
		if err != nil {
			e.mu.Unlock()
			return err
		}
		e.pods[key] = p
	}
	e.mu.Unlock()

	alive := true
	select {
	case <-p.exited:
		alive = false
	default:
	}
	if alive == p.ready && kp.Status.PodIP == p.ip {
		return nil
	}
	if alive && !listening(p) {
		return nil // not yet
	}
	now := metav1.Now()
	st := metav1.ConditionStatus(corev1.ConditionFalse)
	if alive {
		st = metav1.ConditionStatus(corev1.ConditionTrue)
	}
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionStatus(st), LastTransitionTime: now}
	}
	kp.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    p.ip,
		HostIPs:   []corev1.HostIP{{IP: p.ip}},
		PodIP:     p.ip,
		PodIPs:    []corev1.PodIP{{IP: p.ip}},
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			cond(corev1.ContainersReady), cond(corev1.PodReady),
		},
	}
	for _, c := range kp.Spec.Containers {
		kp.Status.ContainerStatuses = append(kp.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: alive, Started: ptr.To(alive),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	if !alive {
		kp.Status.Phase = corev1.PodFailed
	}
	if _, err := e.cfg.Client.CoreV1().Pods(kp.Namespace).UpdateStatus(ctx, kp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating the status of Pod %s: %w", key, err)
	}
	e.mu.Lock()
	p.ready = alive
	e.mu.Unlock()
	return nil
}

// listening reports whether the Pod's first port accepts connections.
func listening(p *pod) bool {
	var port int32
	for _, v := range p.ports {
		if port == 0 || v < port {
			port = v
		}
	}
	if port == 0 || p.udp {
		return true
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(p.ip, strconv.Itoa(int(port))), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (e *Emulator) allocIP() (string, error) {
	var ip string
	if n := len(e.freeIPs); n > 0 {
		ip, e.freeIPs = e.freeIPs[n-1], e.freeIPs[:n-1]
		return ip, nil
	}
	n := e.nextIP
	e.nextIP++
	return fmt.Sprintf("10.244.%d.%d", 1+n/250, 1+n%250), nil
}

// podNetns makes a network namespace for one Pod: a veth pair whose inner
// end holds ip, routed from here (ip/32 via the outer end), with a
// default route back through this namespace's HostAddress; e.mu is held.
func (e *Emulator) podNetns(ip string) (string, error) {
	n := e.nextNS
	e.nextNS++
	netns := fmt.Sprintf("%s-p%d", e.cfg.NetnsPrefix, n)
	va, vb := fmt.Sprintf("skv%da", n), fmt.Sprintf("skv%db", n)
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", va, "type", "veth", "peer", "name", vb},
		{"link", "set", vb, "netns", netns},
		{"link", "set", va, "up"},
		{"route", "add", ip + "/32", "dev", va},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "addr", "add", ip + "/32", "dev", vb},
		{"-n", netns, "link", "set", vb, "up"},
		{"-n", netns, "route", "add", "default", "via", e.cfg.HostAddress, "dev", vb, "onlink"},
	}
	e.netns = append(e.netns, netns)
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return netns, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return netns, nil
}

// dropNetns removes a Pod's network namespace; e.mu is held.
func (e *Emulator) dropNetns(netns string) {
	if netns == "" {
		return
	}
	if out, err := exec.Command("ip", "netns", "delete", netns).CombinedOutput(); err != nil {
		e.cfg.Logf("kubelet: removing network namespace %s: %v: %s", netns, err, out)
	}
	e.netns = slices.DeleteFunc(e.netns, func(n string) bool { return n == netns })
}

// startEcho starts echo-basic for kp; e.mu is held.
func (e *Emulator) startEcho(kp *corev1.Pod) (*pod, error) {
	ip, err := e.allocIP()
	if err != nil {
		return nil, err
	}
	p := &pod{ns: kp.Namespace, name: kp.Name, deploy: kp.Labels[LabelEmulated], ip: ip,
		ports: map[int32]int32{}, named: map[string]int32{}, exited: make(chan struct{})}
	var c corev1.Container
	if len(kp.Spec.Containers) > 0 {
		c = kp.Spec.Containers[0]
	}
	env := map[string]string{}
	for _, v := range c.Env {
		switch {
		case v.ValueFrom == nil:
			env[v.Name] = v.Value
		case v.ValueFrom.FieldRef != nil:
			switch v.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				env[v.Name] = kp.Name
			case "metadata.namespace":
				env[v.Name] = kp.Namespace
			case "status.podIP":
				env[v.Name] = ip
			}
		}
	}
	// echo-basic's modes and the ports each listens on (env, default).
	portVars := [][2]string{{"HTTP_PORT", "3000"}, {"H2C_PORT", "3001"}, {"HTTPS_PORT", "8443"}}
	switch {
	case env["TCP_ECHO_SERVER"] != "":
		portVars = [][2]string{{"TCP_PORT", "3000"}, {"TLS_PORT", "8443"}}
	case env["UDP_ECHO_SERVER"] != "":
		portVars = [][2]string{{"UDP_PORT", "8080"}}
		p.udp = true
	case env["GRPC_ECHO_SERVER"] != "":
		portVars = [][2]string{{"HTTP_PORT", "3000"}, {"HTTPS_PORT", "8443"}}
	}
	for _, pv := range portVars {
		v := env[pv[0]]
		if v == "" {
			v = pv[1]
		}
		from, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		p.ports[int32(from)] = int32(from)
		env[pv[0]] = strconv.Itoa(from)
	}
	// Secret volumes: written out under the log directory, and paths in
	// the env that point into their mounts rewritten.
	for _, vm := range c.VolumeMounts {
		dir, err := e.secretVolume(kp, vm.Name)
		if err != nil {
			e.freeIPs = append(e.freeIPs, ip)
			return nil, err
		}
		if dir == "" {
			continue
		}
		for k, v := range env {
			if rest, ok := strings.CutPrefix(v, strings.TrimSuffix(vm.MountPath, "/")+"/"); ok {
				env[k] = filepath.Join(dir, rest)
			}
		}
	}
	for _, cp := range c.Ports {
		if cp.Name != "" {
			p.named[cp.Name] = cp.ContainerPort
		}
	}
	netns, err := e.podNetns(ip)
	p.netns = netns
	if err != nil {
		e.dropNetns(netns)
		e.freeIPs = append(e.freeIPs, ip)
		return nil, fmt.Errorf("pod %s/%s: %w", kp.Namespace, kp.Name, err)
	}
	cmd := exec.Command("ip", "netns", "exec", netns, e.cfg.EchoBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := e.spawn(p, cmd); err != nil {
		e.dropNetns(netns)
		e.freeIPs = append(e.freeIPs, ip)
		return nil, err
	}
	e.cfg.Logf("kubelet: Pod %s/%s: echo-basic on %s ports %v", kp.Namespace, kp.Name, ip, p.ports)
	return p, nil
}

// startProxy runs `sekisho proxy` for a proxy Deployment's Pod in a network
// namespace of its own holding the Gateway Service's ClusterIP; e.mu is held.
func (e *Emulator) startProxy(ctx context.Context, d *appsv1.Deployment, kp *corev1.Pod) (*pod, error) {
	svc, err := e.cfg.Client.CoreV1().Services(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("proxy Pod %s/%s: reading its Service: %w", kp.Namespace, kp.Name, err)
	}
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return nil, fmt.Errorf("proxy Pod %s/%s: Service %s has no ClusterIP", kp.Namespace, kp.Name, svc.Name)
	}
	gw := gatewayArg(kp)
	if gw == "" {
		gw = d.Labels["sekisho.dev/gateway-namespace"] + "/" + d.Labels["sekisho.dev/gateway"]
	}
	netns, err := e.podNetns(ip)
	if err != nil {
		e.dropNetns(netns)
		return nil, fmt.Errorf("proxy Pod %s/%s: %w", kp.Namespace, kp.Name, err)
	}
	p := &pod{ns: kp.Namespace, name: kp.Name, deploy: d.Name, ip: ip, proxy: true, netns: netns,
		ports: map[int32]int32{}, named: map[string]int32{}, exited: make(chan struct{})}
	cmd := exec.Command("ip", "netns", "exec", netns, e.cfg.SekishoBin, "proxy", "--xds", e.cfg.XDSAddress,
		"--gateway", gw, "--node", kp.Name, "--admin-address", net.JoinHostPort(ip, "19000"), "--access-log=false")
	cmd.Env = os.Environ()
	if err := e.spawn(p, cmd); err != nil {
		return nil, err
	}
	e.cfg.Logf("kubelet: Pod %s/%s: sekisho proxy for %s on %s (netns %s)", kp.Namespace, kp.Name, gw, ip, netns)
	return p, nil
}

// secretVolume writes out the Secret behind kp's volume name and returns
// its directory, or "" if the volume is not a Secret.
func (e *Emulator) secretVolume(kp *corev1.Pod, name string) (string, error) {
	for _, v := range kp.Spec.Volumes {
		if v.Name != name || v.Secret == nil {
			continue
		}
		sec, err := e.cfg.Client.CoreV1().Secrets(kp.Namespace).Get(context.Background(), v.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("pod %s/%s: reading the Secret of volume %s: %w", kp.Namespace, kp.Name, name, err)
		}
		dir := filepath.Join(e.cfg.LogDir, "volumes", kp.Namespace+"_"+kp.Name, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		files := map[string][]byte{}
		if len(v.Secret.Items) == 0 {
			files = sec.Data
		}
		for _, it := range v.Secret.Items {
			files[it.Path] = sec.Data[it.Key]
		}
		for f, data := range files {
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
				return "", err
			}
		}
		return dir, nil
	}
	return "", nil
}

func gatewayArg(kp *corev1.Pod) string {
	for _, c := range kp.Spec.Containers {
		args := append(append([]string{}, c.Command...), c.Args...)
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, "--gateway="); ok {
				return v
			}
			if a == "--gateway" && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	return ""
}

func (e *Emulator) spawn(p *pod, cmd *exec.Cmd) error {
	f, err := os.Create(e.logPath(p.ns, p.name))
	if err != nil {
		return err
	}
	logf := &tsWriter{f: f}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s for Pod %s/%s: %w", cmd.Path, p.ns, p.name, err)
	}
	p.proc = cmd
	go func() {
		err := cmd.Wait()
		logf.Close()
		if !e.stopped.Load() {
			e.cfg.Logf("kubelet: Pod %s/%s: process exited: %v", p.ns, p.name, err)
		}
		close(p.exited)
	}()
	return nil
}

// kill stops p's process and frees what it held; e.mu is held.
func (e *Emulator) kill(p *pod) {
	if p.proc != nil && p.proc.Process != nil {
		_ = syscall.Kill(-p.proc.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	e.dropNetns(p.netns)
	if !p.proxy {
		e.freeIPs = append(e.freeIPs, p.ip)
	}
}

func (e *Emulator) deploymentStatus(ctx context.Context, d *appsv1.Deployment, n int) error {
	r := int32(n)
	if d.Status.Replicas == r && d.Status.ReadyReplicas == r && d.Status.ObservedGeneration == d.Generation {
		return nil
	}
	d = d.DeepCopy()
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UpdatedReplicas = r, r, r, r
	if _, err := e.cfg.Client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating the status of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

// endpointSlices writes one EndpointSlice per (Service, ready Pod) for the
// Services with selectors in scope, and deletes the stale ones it wrote.
func (e *Emulator) endpointSlices(ctx context.Context) error {
	cs := e.cfg.Client
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Services: %w", err)
	}
	have, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + managedBy})
	if err != nil {
		return fmt.Errorf("listing EndpointSlices: %w", err)
	}
	e.mu.Lock()
	var pods []*pod
	podLabels := map[*pod]map[string]string{}
	for _, p := range e.pods {
		if p.ready {
			pods = append(pods, p)
		}
	}
	e.mu.Unlock()
	if len(pods) > 0 {
		list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: LabelEmulated})
		if err != nil {
			return fmt.Errorf("listing Pods: %w", err)
		}
		byKey := map[string]map[string]string{}
		for _, kp := range list.Items {
			byKey[kp.Namespace+"/"+kp.Name] = kp.Labels
		}
		for _, p := range pods {
			podLabels[p] = byKey[p.ns+"/"+p.name]
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].name < pods[j].name })

	want := map[string]*discoveryv1.EndpointSlice{}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if len(s.Spec.Selector) == 0 || !(strings.HasPrefix(s.Namespace, e.cfg.NamespacePrefix) || s.Labels[proxyLabel] == proxyName) {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range pods {
			if p.ns != s.Namespace || podLabels[p] == nil || !sel.Matches(labels.Set(podLabels[p])) || p.proxy {
				continue
			}
			es := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Name:      s.Name + "-" + p.name[strings.LastIndex(p.name, "-")+1:],
					Namespace: s.Namespace,
					Labels: map[string]string{
						discoveryv1.LabelServiceName: s.Name,
						discoveryv1.LabelManagedBy:   managedBy,
					},
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{{
					Addresses:  []string{p.ip},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
					NodeName:   ptr.To(nodeName),
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.ns, Name: p.name},
				}},
			}
			for _, sp := range s.Spec.Ports {
				port := resolve(sp, p)
				if port == 0 {
					continue
				}
				es.Ports = append(es.Ports, discoveryv1.EndpointPort{
					Name: ptr.To(sp.Name), Protocol: ptr.To(sp.Protocol), Port: ptr.To(port), AppProtocol: sp.AppProtocol,
				})
			}
			want[es.Namespace+"/"+es.Name] = es
		}
	}
	var errs []error
	for i := range have.Items {
		h := &have.Items[i]
		w := want[h.Namespace+"/"+h.Name]
		if w == nil {
			if err := cs.DiscoveryV1().EndpointSlices(h.Namespace).Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		delete(want, h.Namespace+"/"+h.Name)
		if same(h, w) {
			continue
		}
		w.ResourceVersion = h.ResourceVersion
		if _, err := cs.DiscoveryV1().EndpointSlices(h.Namespace).Update(ctx, w, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("updating EndpointSlice %s/%s: %w", w.Namespace, w.Name, err))
		}
	}
	for _, w := range want {
		if _, err := cs.DiscoveryV1().EndpointSlices(w.Namespace).Create(ctx, w, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("creating EndpointSlice %s/%s: %w", w.Namespace, w.Name, err))
		}
	}
	return errors.Join(errs...)
}

// resolve returns the real port behind a Service port's targetPort for p.
func resolve(sp corev1.ServicePort, p *pod) int32 {
	tp := sp.TargetPort
	var c int32
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		c = p.named[tp.StrVal]
	case tp.Type == intstr.Int && tp.IntVal != 0:
		c = tp.IntVal
	default:
		c = sp.Port
	}
	if real, ok := p.ports[c]; ok {
		return real
	}
	return 0
}

func same(a, b *discoveryv1.EndpointSlice) bool {
	ja, _ := json.Marshal([]any{a.Endpoints, a.Ports, a.Labels})
	jb, _ := json.Marshal([]any{b.Endpoints, b.Ports, b.Labels})
	return string(ja) == string(jb)
}
