package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/infra"
	"github.com/sekisho/sekisho/gateway/provider/kube"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/controlplane"
	"github.com/sekisho/sekisho/xds/server"
)

// kubeFlags are the Kubernetes mode's own flags.
type kubeFlags struct {
	kubeconfig, namespace, leaseName, proxyImage, proxyXDS *string
	leaderElect, provision                                 *bool
	// The authorization and rate-limit services the controller runs.
	services                            *bool
	authzListen, rateLimitListen, redis *string
	rateLimitDeadline                   *time.Duration
}

// addKubeFlags adds them to fs; they apply when -f is not given.
func addKubeFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		kubeconfig:        fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster, or $KUBECONFIG)"),
		namespace:         fs.String("namespace", "sekisho-system", "the controller's own namespace (leader-election Lease)"),
		leaseName:         fs.String("leader-election-id", "sekisho-controller", "name of the leader-election Lease"),
		proxyImage:        fs.String("proxy-image", "ghcr.io/sekisho/sekisho:latest", "image of the per-Gateway proxies"),
		proxyXDS:          fs.String("proxy-xds-address", "", "xDS address the per-Gateway proxies dial (default: sekisho-controller.NAMESPACE.svc:18000)"),
		leaderElect:       fs.Bool("leader-elect", false, "elect one replica to write status and provision proxies (every replica serves xDS)"),
		provision:         fs.Bool("provision", true, "provision a proxy Deployment, Service and ServiceAccount per Gateway"),
		services:          fs.Bool("services", true, "run the authorization and rate-limit services in the controller (proxies reach them through the controller's Service unless --authz-address / --ratelimit-address say otherwise)"),
		authzListen:       fs.String("authz-listen", "0.0.0.0:18081", "address of the authorization service, with --services"),
		rateLimitListen:   fs.String("ratelimit-listen", "0.0.0.0:18082", "address of the rate-limit service, with --services"),
		redis:             fs.String("redis", "", "Redis address(es) for the rate-limit counters, comma-separated (several: a Redis Cluster); without it each controller replica counts in memory"),
		rateLimitDeadline: fs.Duration("ratelimit-deadline", 20*time.Millisecond, "how long a rate-limit decision may wait for the store before the rule's failure mode applies"),
	}
}

// runKubeController is `sekisho controller` in Kubernetes mode.
func runKubeController(ctx context.Context, flags controlPlaneFlags, kf kubeFlags, stderr io.Writer) error {
	log, err := newLogger(stderr, *flags.logLevel, *flags.logJSON)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.With("component", "controller-runtime").Handler()))
	restCfg, err := restConfig(*kf.kubeconfig)
	if err != nil {
		return err
	}
	scheme, err := kube.Scheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                *kf.leaderElect,
		LeaderElectionID:              *kf.leaseName,
		LeaderElectionNamespace:       *kf.namespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the controller manager: %w", err)
	}

	adm := admin.New(nil)
	xdsLis, err := net.Listen("tcp", *flags.xdsAddr)
	if err != nil {
		return fmt.Errorf("listening for xDS on %s: %w", *flags.xdsAddr, err)
	}
	adminLis, err := net.Listen("tcp", *flags.adminAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("listening for admin on %s: %w", *flags.adminAddr, err)
	}
	// What the proxies do with their Gateway's listeners is status: a
	// change (an ACK, a NACK, a proxy that leaves) asks for a reconcile.
	kick := make(chan struct{}, 1)
	srv := server.New(server.Options{Logger: log, Registerer: adm.Registry, OnDataPlaneChange: func(string) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}})
	proxyXDS := *kf.proxyXDS
	if proxyXDS == "" {
		proxyXDS = "sekisho-controller." + *kf.namespace + ".svc:18000"
	}
	k := &kubeControlPlane{
		log:       log,
		status:    &kube.StatusWriter{Client: mgr.GetClient()},
		infra:     &infra.Provisioner{Client: mgr.GetClient()},
		proxy:     infra.Defaults(*kf.proxyImage, proxyXDS),
		provision: *kf.provision,
	}
	// The services: proxies reach them through the controller's Service.
	var services []*service
	var rlStore *storeSwitch
	if *kf.services {
		for _, d := range []struct {
			flag *string
			port string
		}{{flags.authzAddr, portOf(*kf.authzListen)}, {flags.rateLimitAddr, portOf(*kf.rateLimitListen)}} {
			if *d.flag == "" {
				*d.flag = "sekisho-controller." + *kf.namespace + ".svc:" + d.port
			}
		}
		loopXDS := loopback(xdsLis.Addr().String())
		id, _ := os.Hostname()
		authzLis, err := net.Listen("tcp", *kf.authzListen)
		if err != nil {
			return fmt.Errorf("listening for the authorization service on %s: %w", *kf.authzListen, err)
		}
		authz, err := newAuthzService(authzLis, loopXDS, id, log, adm.Registry)
		if err != nil {
			return err
		}
		rlLis, err := net.Listen("tcp", *kf.rateLimitListen)
		if err != nil {
			return fmt.Errorf("listening for the rate-limit service on %s: %w", *kf.rateLimitListen, err)
		}
		rlStore = newStoreSwitch(ctx, *kf.redis, log)
		rl, err := newRateLimitService(rlLis, loopXDS, id, rlStore, *kf.rateLimitDeadline, log, adm.Registry)
		if err != nil {
			return err
		}
		services = append(services, authz, rl)
	}
	if rlStore != nil && *kf.redis == "" {
		// No --redis: the GatewayClassConfigs say where the counters live.
		k.redis = rlStore
	}
	topts, err := flags.translateOptions()
	if err != nil {
		return err
	}
	topts.DefaultAddresses = nil
	topts.Addresses = k.addresses
	k.pipe = controlplane.New(srv, controlplane.Options{
		Translate:  topts,
		Logger:     log.With("component", "controlplane"),
		Registerer: adm.Registry,
	})
	elected := mgr.Elected()
	if !*kf.leaderElect {
		elected = nil
	}
	if _, err := kube.Register(mgr, kube.Options{Logger: log, Handler: k.handle, Elected: elected, Kick: kick}); err != nil {
		return err
	}
	// /readyz is the xDS server's: proxies must keep their control plane
	// while Redis is away. Each service has its own page.
	adm.SetReady(func() error { return pipelineReady(k.pipe) })
	for _, svc := range services {
		adm.Mux.HandleFunc("GET /readyz/"+svc.name, func(w http.ResponseWriter, _ *http.Request) {
			if err := svc.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
	}
	adm.Mux.HandleFunc("GET /status", statusHandler(k.pipe))

	log.Info("controller starting (Kubernetes)", "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String(),
		"leader_election", *kf.leaderElect, "namespace", *kf.namespace)
	g := newGroup(ctx)
	g.Go("xds server", func(ctx context.Context) error { return srv.Serve(ctx, xdsLis) })
	g.Go("admin server", func(ctx context.Context) error { return adm.Serve(ctx, adminLis) })
	g.Go("controller manager", mgr.Start)
	for _, svc := range services {
		svc.start(g)
	}
	err = g.Wait()
	log.Info("controller stopped")
	return err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
		}
		if cfg.QPS == 0 {
			// As ctrlconfig.GetConfig does: no client-side rate limit (client-go's
			// default, 5 requests/s, makes writing 1 000 routes' status take
			// minutes); the API server's priority and fairness applies instead.
			cfg.QPS = -1
		}
		return cfg, nil
	}
	cfg, err := ctrlconfig.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("finding the Kubernetes API (in-cluster, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	return cfg, nil
}

// kubeControlPlane turns each view of the cluster into xDS, and, on the
// leader, into status and provisioned proxies.
type kubeControlPlane struct {
	log       *slog.Logger
	pipe      *controlplane.Pipeline
	status    *kube.StatusWriter
	infra     *infra.Provisioner
	proxy     infra.ProxyConfig
	provision bool

	// redis, when set, follows the Redis address of the GatewayClassConfigs.
	redis *storeSwitch

	mu  sync.Mutex
	res *resource.Resources // the view being translated, for addresses
}

// addresses gives a Gateway the addresses of its proxy Service.
func (k *kubeControlPlane) addresses(namespace, name string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.res == nil {
		return nil
	}
	want := infra.Name(name)
	for _, s := range k.res.Services {
		if s.Namespace == namespace && s.Name == want {
			return infra.Addresses(s)
		}
	}
	return nil
}

func (k *kubeControlPlane) handle(ctx context.Context, res *resource.Resources, elected bool) error {
	k.mu.Lock()
	k.res = res
	k.mu.Unlock()
	start := time.Now()
	if k.redis != nil {
		k.redis.Use(redisOf(res))
	}
	result, applyErr := k.pipe.Apply(ctx, res, nil)
	if !elected {
		return applyErr
	}
	var errs []error
	if applyErr != nil {
		errs = append(errs, applyErr)
	}
	if k.provision {
		keep := map[string]bool{}
		byName := map[string]*gwv1.Gateway{}
		for _, gw := range res.Gateways {
			byName[gw.Namespace+"/"+gw.Name] = gw
		}
		classes := map[string]*gwv1.GatewayClass{}
		for _, gc := range res.GatewayClasses {
			classes[gc.Name] = gc
		}
		for _, g := range result.IR.Gateways {
			gw := byName[g.Name]
			if gw == nil {
				continue
			}
			keep[g.Name] = true
			cfg := k.proxy
			if gc := classes[string(gw.Spec.GatewayClassName)]; gc != nil {
				cfg = infra.WithConfig(cfg, gwtranslate.ClassConfig(res, gc))
			}
			if err := k.infra.Apply(ctx, gw, cfg); err != nil {
				errs = append(errs, err)
			}
		}
		if err := k.infra.Prune(ctx, keep); err != nil {
			errs = append(errs, err)
		}
	}
	n, err := k.status.Write(ctx, res, keepWhileDisconnected(k.pipe.ServedStatus(), res, k.pipe))
	if err != nil {
		errs = append(errs, err)
	}
	k.log.Debug("reconciled", "status_updates", n, "duration", time.Since(start))
	return errors.Join(errs...)
}

// keepWhileDisconnected keeps, for a Gateway none of whose proxies is
// connected to this controller, the Programmed conditions its status holds
// for its current generation, rather than write Pending: a controller that
// restarts, or proxies that reconnect, must not turn a serving Gateway to
// Pending and back, and proxies keep serving their configuration while
// away from xDS (as Envoy does). A new generation with no proxy connected
// is Pending. set belongs to the caller (ServedStatus's copy).
//
// With several controller replicas, proxies spread their streams over all
// of them and only the leader writes status: it judges by the proxies
// connected to it.
func keepWhileDisconnected(set *status.Set, res *resource.Resources, pipe *controlplane.Pipeline) *status.Set {
	if set == nil {
		return nil
	}
	for _, gw := range res.Gateways {
		key := status.Key(gw.Namespace, gw.Name)
		desired := set.Gateways[key]
		if desired == nil || pipe.ProxiesConnected(gw.Namespace+"/"+gw.Name) > 0 {
			continue
		}
		keep := func(desired, written []metav1.Condition) {
			d := meta.FindStatusCondition(desired, string(gwv1.GatewayConditionProgrammed))
			w := meta.FindStatusCondition(written, string(gwv1.GatewayConditionProgrammed))
			if d != nil && w != nil && d.Reason == string(gwv1.GatewayReasonPending) &&
				w.Status == metav1.ConditionTrue && w.ObservedGeneration == gw.Generation {
				*d = *w
			}
		}
		keep(desired.Conditions, gw.Status.Conditions)
		for i := range desired.Listeners {
			for _, wl := range gw.Status.Listeners {
				if wl.Name == desired.Listeners[i].Name {
					keep(desired.Listeners[i].Conditions, wl.Conditions)
				}
			}
		}
	}
	return set
}

// portOf is the port of a host:port ("18081" when it has none).
func portOf(hostport string) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil && port != "" && port != "0" {
		return port
	}
	return "18081"
}

// loopback is addr (a listening address) as a client on the same host dials it.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// redisOf is the rate-limit Redis the GatewayClassConfigs of sekisho's
// GatewayClasses name: the first, by class name, that names one.
func redisOf(res *resource.Resources) string {
	classes := slices.Clone(res.GatewayClasses)
	slices.SortFunc(classes, func(a, b *gwv1.GatewayClass) int { return strings.Compare(a.Name, b.Name) })
	for _, gc := range classes {
		if gc == nil || string(gc.Spec.ControllerName) != resource.ControllerName {
			continue
		}
		if c := gwtranslate.ClassConfig(res, gc); c != nil && c.Spec.RateLimit != nil && c.Spec.RateLimit.Redis != nil && c.Spec.RateLimit.Redis.Address != "" {
			return c.Spec.RateLimit.Redis.Address
		}
	}
	return ""
}
