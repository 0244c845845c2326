// Package proxy is sekisho's Go data plane: Runtime takes the xDS view the
// ADS client hands it (an xdsclient.Snapshot), compiles it into one immutable
// configuration (listeners, route tables, clusters), swaps it in atomically,
// and serves requests with it.
//
// A request takes Envoy's path, and each step has its package (see
// README.md): the listener (this package: sockets, TLS, filter chain match)
// → the network filter http_connection_manager (hcm) → the HTTP filters,
// extensions registered in ext (ext_authz, ratelimit, local_ratelimit in
// filter/<name>) → the router (router: route match; hcm: forward, retries,
// mirrors) → the upstream (upstream: clusters, endpoints, connections).
// This package compiles the configuration of all of them (runtime.go,
// listener.go, filters.go) and owns the state that outlives a
// configuration: the listeners' sockets, the clusters' pools, and the pool
// of state the filters share (ext.Pool).
//
// What it honours is exactly the registry of proxy/contract: Apply refuses
// (so the control plane gets a NACK naming the resource and field) any
// resource that sets a field outside it, or a value of a registered field the
// proxy cannot honour, and keeps serving the previous configuration.
//
// Choices made where Envoy leaves room or where sekisho differs:
//
//   - Path handling: see httppath.Normalize. Routes match the normalised
//     path and the normalised path is what goes upstream (with ';' sent as
//     "%3B"), so a backend never sees a path that another route would have
//     taken. A '#' in a request path is refused with 400.
//   - Host matching ignores the port of the Host header.
//   - Request smuggling: plaintext HTTP/1.1 is served by hcm.H1Server, whose
//     request parser (package h1) is strict; HTTP/1.1 over TLS goes through
//     guardConn into net/http. Either way, requests with Content-Length and
//     Transfer-Encoding, several Content-Length lines, obs-fold, or a header
//     block over max_request_headers_kb are answered 400 (431) and never
//     forwarded.
//   - Plaintext HTTP/1.1 listeners and plain-HTTP clusters run on sekisho's
//     own HTTP/1.1 code (hcm.H1Server, upstream.Client): one goroutine per
//     client connection, which reads each request, writes it upstream and
//     reads the response on a pooled connection itself. A client that goes away is
//     noticed when its response is written, not while the upstream works.
//     HTTP/2 (h2c with prior knowledge, handed over by H1Server; h2 over TLS)
//     and HTTP/1.1 over TLS are served by net/http; h2c clusters use
//     http.Transport.
//   - Retries: a request is retried only when its body can be replayed: a
//     request without a body, or one whose Content-Length is at most
//     hcm.MaxReplayBody (buffered before the first attempt). Larger or chunked
//     bodies get one attempt. The same holds for mirrors: a request whose
//     body cannot be buffered is not mirrored.
//   - Mirrors go to the mirror cluster with "-shadow" appended to the Host,
//     as Envoy does; their responses are dropped.
//   - Ejected endpoints come back lazily: an endpoint is ejected until its
//     ejection time has passed (base_ejection_time times its ejection count,
//     at most 300s), checked when endpoints are picked; interval is the unit
//     by which the ejection count decays.
//   - Upstream failures answer as Envoy does: 503 for no healthy endpoint,
//     connect failures and resets, 504 when the route's timeout (or the last
//     per-try timeout) expires before the response starts, 502 for a
//     malformed upstream response.
//   - The HTTP filters a connection manager may run before the router
//     (any registered extension: local_ratelimit, ext_authz, ratelimit)
//     act between routing and the route's action; see filters.go and
//     package ext. A listener whose connection manager has only the router
//     does no filter work at all.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/proxy/contract"
	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/router"
	"github.com/sekisho/sekisho/proxy/upstream"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

// Names of the filters and extensions the proxy runs.
const (
	hcmFilterName          = "envoy.filters.network.http_connection_manager"
	routerFilterName       = "envoy.filters.http.router"
	tlsTransportSocketName = "envoy.transport_sockets.tls"
)

// Options configure a Runtime.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Gateway is the "gateway" label of every metric.
	Gateway string
	// AccessLog receives one JSON line per request; nil: no access log.
	AccessLog io.Writer
	// Now is the clock of outlier detection; nil: time.Now.
	Now func() time.Time
}

// Runtime serves the configuration it was last given.
type Runtime struct {
	opts      Options
	log       *slog.Logger
	accessLog *slog.Logger
	metrics   *metrics

	cfg atomic.Pointer[config]

	mu       sync.Mutex // Apply and Close
	servers  map[string]*server
	closed   bool
	draining sync.WaitGroup

	hijackedMu sync.Mutex
	hijacked   map[net.Conn]struct{}

	// shared is the state the HTTP filters share across configurations
	// (gRPC channels, token buckets).
	shared *ext.Pool
}

// config is one compiled Snapshot; it never changes once stored.
type config struct {
	snap      *xdsclient.Snapshot
	listeners map[string]*listenerConfig
	clusters  map[string]*upstream.Cluster
	tables    map[string]*router.Table // by route configuration name
	// tableLeases hold the shared state of each route table's filters.
	tableLeases map[*router.Table]*ext.Lease
}

type listenerConfig struct {
	name     string
	addr     string
	tls      bool
	chains   []*chainConfig
	sniExact map[string]*chainConfig
	sniWild  []sniWild // "*.x": longest suffix first
	fallback *chainConfig
	maxHead  int
}

type sniWild struct {
	suffix string // ".x"
	chain  *chainConfig
}

type chainConfig struct {
	name      string
	table     *router.Table
	maxHead   int
	websocket bool
	tls       *tls.Config
	// filters are the HTTP filters before the router; nil: only the router.
	filters *filterChain
}

// New returns a Runtime with no configuration: it serves nothing until Apply.
func New(opts Options) *Runtime {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{
		opts:     opts,
		log:      log,
		metrics:  newMetrics(opts.Registerer, opts.Gateway),
		servers:  map[string]*server{},
		hijacked: map[net.Conn]struct{}{},
		shared:   ext.NewPool(sharedGrace),
	}
	if opts.AccessLog != nil {
		r.accessLog = slog.New(slog.NewJSONHandler(opts.AccessLog, nil))
	}
	r.cfg.Store(&config{
		snap:      &xdsclient.Snapshot{},
		listeners: map[string]*listenerConfig{},
		clusters:  map[string]*upstream.Cluster{},
	})
	return r
}

// now is the runtime's clock.
func (r *Runtime) now() time.Time {
	if r.opts.Now != nil {
		return r.opts.Now()
	}
	return time.Now()
}

// ConfigDump returns the Snapshot the Runtime serves.
func (r *Runtime) ConfigDump() *xdsclient.Snapshot { return r.cfg.Load().snap }

// WriteClusters writes every cluster's endpoints, health and outlier state.
func (r *Runtime) WriteClusters(w io.Writer) {
	cfg := r.cfg.Load()
	names := make([]string, 0, len(cfg.clusters))
	for n := range cfg.clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cfg.clusters[n].WriteStatus(w)
	}
}

// Addr returns the address a listener is bound to (useful when its port is
// 0), or "" when there is no such listener.
func (r *Runtime) Addr(listener string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.servers[listener]; s != nil {
		return s.ln.Addr().String()
	}
	return ""
}

// Apply compiles s and, when all of it can be honoured, binds the new
// listeners and swaps it in; requests already running finish with the
// configuration they started with. On error the previous configuration
// stays and the error says which resource and field could not be honoured.
func (r *Runtime) Apply(s *xdsclient.Snapshot) error {
	if s == nil {
		return errors.New("applying configuration: snapshot is nil")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("applying configuration: the proxy is closed")
	}
	old := r.cfg.Load()
	cfg, env, err := r.compile(s, old)
	if err != nil {
		return err
	}

	// Bind what is new before anything changes, so a bind failure leaves
	// everything as it was.
	fresh := map[string]*server{}
	for name, lc := range cfg.listeners {
		if cur := r.servers[name]; cur != nil && cur.addr == lc.addr && cur.tls == lc.tls {
			continue
		}
		ln, err := net.Listen("tcp", lc.addr)
		if err != nil {
			for _, s := range fresh {
				_ = s.ln.Close()
			}
			env.discard()
			return fmt.Errorf("listener %q: binding %s: %w", name, lc.addr, err)
		}
		fresh[name] = r.newServer(lc, ln)
	}

	r.cfg.Store(cfg)
	env.commit(old, cfg)

	for name, cur := range r.servers {
		lc, keep := cfg.listeners[name]
		if keep && fresh[name] == nil && cur.addr == lc.addr {
			continue
		}
		delete(r.servers, name)
		r.draining.Add(1)
		go func(s *server) {
			defer r.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := s.shutdown(ctx); err != nil {
				r.log.Warn("draining listener", "listener", s.name, "error", err)
			}
		}(cur)
	}
	for name, s := range fresh {
		r.servers[name] = s
		s.start()
	}
	for name, c := range old.clusters {
		if n := cfg.clusters[name]; !c.SharesPool(n) {
			// Idle connections of a pool no longer used; in-flight
			// requests keep theirs.
			c.Close()
		}
	}
	r.log.Info("applied configuration", "listeners", len(cfg.listeners), "routes", len(s.Routes),
		"clusters", len(cfg.clusters), "secrets", len(s.Secrets))
	return nil
}

// Close stops accepting, lets in-flight requests finish (until ctx is done),
// then closes upgraded connections and idle upstream connections.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	servers := r.servers
	r.servers = map[string]*server{}
	r.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, s := range servers {
		wg.Add(1)
		go func(s *server) {
			defer wg.Done()
			if err := s.shutdown(ctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("closing listener %q: %w", s.name, err))
				emu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	r.hijackedMu.Lock()
	for c := range r.hijacked {
		_ = c.Close()
	}
	r.hijackedMu.Unlock()
	done := make(chan struct{})
	go func() { r.draining.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("closing: draining old listeners: %w", ctx.Err()))
	}
	for _, c := range r.cfg.Load().clusters {
		c.Close()
	}
	r.shared.Close()
	return errors.Join(errs...)
}

// compile checks every resource against the contract and compiles it. The
// shared state it took is released when it fails; the caller releases it
// (env.discard) when it does not apply the configuration either.
func (r *Runtime) compile(s *xdsclient.Snapshot, old *config) (*config, *compileEnv, error) {
	env := r.newCompileEnv(old)
	cfg, err := r.compileWith(s, old, env)
	if err != nil {
		env.discard()
		return nil, nil, err
	}
	return cfg, env, nil
}

func (r *Runtime) compileWith(s *xdsclient.Snapshot, old *config, env *compileEnv) (*config, error) {
	check := func(kind string, m map[string]proto.Message) error {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := contract.Check(kind, n, m[n]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range []struct {
		kind string
		m    map[string]proto.Message
	}{
		{"listener", toMessages(s.Listeners)},
		{"route configuration", toMessages(s.Routes)},
		{"cluster", toMessages(s.Clusters)},
		{"cluster load assignment", toMessages(s.Endpoints)},
		{"secret", toMessages(s.Secrets)},
	} {
		if err := check(c.kind, c.m); err != nil {
			return nil, err
		}
	}

	cfg := &config{
		snap:      s,
		listeners: map[string]*listenerConfig{},
		clusters:  map[string]*upstream.Cluster{},
	}
	for name, cl := range s.Clusters {
		edsName := cl.GetEdsClusterConfig().GetServiceName()
		if edsName == "" {
			edsName = name
		}
		cc, err := upstream.Compile(cl, s.Endpoints[edsName], old.clusters[name], upstream.Options{Now: r.opts.Now})
		if err != nil {
			return nil, err
		}
		cfg.clusters[name] = cc
	}
	env.clusters = cfg.clusters
	tables := map[string]*router.Table{}
	for name, rc := range s.Routes {
		if prev := old.tables[name]; prev != nil {
			if c := awaitingEndpoints(rc, s); c != "" {
				// Make before break: a route table that moves traffic to a
				// cluster whose endpoints have not arrived yet waits for
				// them; until then the previous table keeps serving.
				r.log.Info("route configuration waits for the endpoints of a cluster", "route_configuration", name, "cluster", c)
				tables[name] = prev
				env.keepTable(prev, old)
				continue
			}
		}
		t, err := router.Compile(rc)
		if err != nil {
			return nil, err
		}
		if err := env.compileRouteFilters(rc, t); err != nil {
			return nil, err
		}
		tables[name] = t
	}
	cfg.tables = tables
	cfg.tableLeases = env.tableLeases
	for name, l := range s.Listeners {
		lc, err := compileListener(l, tables, s.Secrets, env)
		if errors.Is(err, errWarming) {
			// A listener whose route configuration or certificate has not
			// arrived yet warms, as in Envoy: it is accepted, and bound once
			// what it needs arrives. A listener already serving keeps its
			// previous configuration meanwhile.
			if prev := old.listeners[name]; prev != nil {
				cfg.listeners[name] = prev
			}
			r.log.Info("listener warming", "listener", name, "waiting_for", err.Error())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", name, err)
		}
		cfg.listeners[name] = lc
	}
	// Make before break: a cluster that a route table or a filter still in
	// use sends traffic to stays, with its endpoints and pool, until none
	// does (the control plane may drop it from CDS before the new routes
	// arrive).
	for _, lc := range cfg.listeners {
		for _, ch := range lc.chains {
			names := append(clustersOf(ch.table), ch.filters.clusters()...)
			for _, name := range names {
				if cfg.clusters[name] == nil && old.clusters[name] != nil {
					cfg.clusters[name] = old.clusters[name]
				}
			}
		}
	}
	return cfg, nil
}

// awaitingEndpoints returns the name of an EDS cluster that rc sends traffic
// to and whose ClusterLoadAssignment is not in s yet, or "".
func awaitingEndpoints(rc *routev3.RouteConfiguration, s *xdsclient.Snapshot) string {
	waiting := func(name string) bool {
		cl := s.Clusters[name]
		if cl == nil || cl.GetType() != clusterv3.Cluster_EDS {
			return false
		}
		eds := cl.GetEdsClusterConfig().GetServiceName()
		if eds == "" {
			eds = name
		}
		return s.Endpoints[eds] == nil
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			ra := rt.GetRoute()
			if ra == nil {
				continue
			}
			if c := ra.GetCluster(); c != "" && waiting(c) {
				return c
			}
			for _, wc := range ra.GetWeightedClusters().GetClusters() {
				if wc.GetWeight().GetValue() > 0 && waiting(wc.GetName()) {
					return wc.GetName()
				}
			}
		}
	}
	return ""
}

// clustersOf lists the clusters a compiled route table sends traffic to.
func clustersOf(t *router.Table) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, rt := range t.Routes() {
		f := rt.Forward
		if f == nil {
			continue
		}
		if f.Cluster != "" {
			out = append(out, f.Cluster)
		}
		for _, w := range f.Weighted {
			out = append(out, w.Name)
		}
		for _, m := range f.Mirrors {
			out = append(out, m.Cluster)
		}
	}
	return out
}

// errWarming marks a listener that names a route configuration or a secret
// the proxy has not received yet.
var errWarming = errors.New("not received yet (the listener warms until it arrives)")

func toMessages[M proto.Message](m map[string]M) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func joinHostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

func lowerSNI(s string) string { return strings.ToLower(s) }
