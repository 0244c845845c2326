package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/gatewayproxy"
)

// runEmbedded is `sekisho run`: the control plane and one proxy per
// programmed Gateway in one process. The proxies still get their
// configuration over ADS on loopback, as they would in a cluster.
func runEmbedded(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	// The internal hops (xDS, the services) listen on loopback ports the
	// system picks, so that they never take a port a Gateway listener may
	// want; fixed addresses only when a flag asks for them.
	flags := addControlPlaneFlags(fs, "127.0.0.1:0", "127.0.0.1:19000", "/healthz, /readyz, /metrics, /status, /config_dump and /clusters")
	accessLog := fs.Bool("access-log", false, "write a JSON access log line per request to stdout")
	authzListen := fs.String("authz-listen", "127.0.0.1:0", "address of the embedded authorization service (default: a loopback port picked at start)")
	rlListen := fs.String("ratelimit-listen", "127.0.0.1:0", "address of the embedded rate-limit service (default: a loopback port picked at start)")
	redis := fs.String("redis", "", "Redis address(es) for the rate-limit counters, comma-separated (several: a Redis Cluster); in memory when empty")
	rlDeadline := fs.Duration("ratelimit-deadline", 20*time.Millisecond, "how long a rate-limit decision may wait for the store before the rule's failure mode applies")
	if err := parse(fs, args); err != nil {
		return err
	}
	// The services listen first: the control plane tells proxies where they are.
	authzLis, err := net.Listen("tcp", *authzListen)
	if err != nil {
		return fmt.Errorf("listening for the authorization service on %s: %w", *authzListen, err)
	}
	defer authzLis.Close()
	rlLis, err := net.Listen("tcp", *rlListen)
	if err != nil {
		return fmt.Errorf("listening for the rate-limit service on %s: %w", *rlListen, err)
	}
	defer rlLis.Close()
	authzAddr, rlAddr := authzLis.Addr().String(), rlLis.Addr().String()
	flags.authzAddr, flags.rateLimitAddr = &authzAddr, &rlAddr
	flags.embedded = true

	log, adm, adminLis, cp, err := flags.start(stderr)
	if err != nil {
		return err
	}
	xdsAddr := cp.xdsLis.Addr().String()
	authz, err := newAuthzService(authzLis, xdsAddr, "run", log, adm.Registry)
	if err != nil {
		return err
	}
	rl, err := newRateLimitService(rlLis, xdsAddr, "run", rateLimitStore(ctx, *redis, log), *rlDeadline, log, adm.Registry)
	if err != nil {
		return err
	}
	g := newGroup(ctx)
	authz.start(g)
	rl.start(g)
	sup := &proxies{g: g, log: log, xdsAddr: xdsAddr, running: map[string]*runningProxy{}}
	if *accessLog {
		sup.accessLog = os.Stdout
	}
	cp.applied = sup.reconcile
	adm.SetReady(func() error { return errors.Join(cp.ready(), sup.ready(), authz.Ready(), rl.Ready()) })
	adm.SetExtraGatherers(sup.gatherers)
	adm.Mux.HandleFunc("GET /config_dump", sup.forGateway(func(p *gatewayproxy.Proxy) http.HandlerFunc { return p.ServeConfigDump }))
	adm.Mux.HandleFunc("GET /clusters", sup.forGateway(func(p *gatewayproxy.Proxy) http.HandlerFunc { return p.ServeClusters }))

	log.Info("sekisho running", "dir", *flags.dir, "xds", xdsAddr, "admin", adminLis.Addr().String(),
		"authz", authzAddr, "ratelimit", rlAddr, "redis", *redis)
	cp.start(g)
	g.Go("admin server", func(ctx context.Context) error { return adm.Serve(ctx, adminLis) })
	err = g.Wait()
	sup.wait()
	log.Info("sekisho stopped")
	return err
}

// proxies keeps one gateway proxy running per programmed Gateway.
type proxies struct {
	g         *group
	log       *slog.Logger
	xdsAddr   string
	accessLog io.Writer

	mu      sync.Mutex
	running map[string]*runningProxy
	wg      sync.WaitGroup
}

type runningProxy struct {
	proxy  *gatewayproxy.Proxy
	reg    *prometheus.Registry
	cancel context.CancelFunc
}

// reconcile starts proxies for new Gateways and stops those of removed ones.
func (s *proxies) reconcile(result *gwtranslate.Result) {
	if result == nil || result.IR == nil {
		return
	}
	want := map[string]bool{}
	for _, gw := range result.IR.Gateways {
		want[gw.Name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, rp := range s.running {
		if !want[name] {
			s.log.Info("stopping the proxy of a removed gateway", "gateway", name)
			rp.cancel()
			delete(s.running, name)
		}
	}
	for name := range want {
		if _, ok := s.running[name]; ok {
			continue
		}
		reg := prometheus.NewRegistry()
		p, err := gatewayproxy.New(gatewayproxy.Options{
			XDSAddress: s.xdsAddr, Gateway: name, Logger: s.log,
			Registerer: reg, AccessLog: s.accessLog,
		})
		if err != nil {
			s.log.Error("starting a gateway proxy", "gateway", name, "err", err)
			continue
		}
		ctx, cancel := context.WithCancel(s.g.ctx)
		s.running[name] = &runningProxy{proxy: p, reg: reg, cancel: cancel}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := p.Run(ctx); err != nil {
				s.log.Error("gateway proxy stopped", "gateway", name, "err", err)
			}
		}()
		s.log.Info("started a gateway proxy", "gateway", name)
	}
}

func (s *proxies) wait() { s.wg.Wait() }

func (s *proxies) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.running) == 0 {
		return errors.New("no gateway is programmed yet")
	}
	var errs []error
	for _, rp := range s.running {
		errs = append(errs, rp.proxy.Ready())
	}
	return errors.Join(errs...)
}

func (s *proxies) gatherers() prometheus.Gatherers {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(prometheus.Gatherers, 0, len(s.running))
	for _, rp := range s.running {
		out = append(out, rp.reg)
	}
	return out
}

// forGateway serves a per-proxy page for ?gateway=ns/name, or for the only
// gateway when there is one.
func (s *proxies) forGateway(h func(*gatewayproxy.Proxy) http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		name := r.URL.Query().Get("gateway")
		names := make([]string, 0, len(s.running))
		for n := range s.running {
			names = append(names, n)
		}
		if name == "" && len(names) == 1 {
			name = names[0]
		}
		rp := s.running[name]
		s.mu.Unlock()
		if rp == nil {
			sort.Strings(names)
			http.Error(w, fmt.Sprintf("name a gateway with ?gateway=: one of %s", strings.Join(names, ", ")), http.StatusNotFound)
			return
		}
		h(rp.proxy)(w, r)
	}
}
