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
//   - A listener whose address cannot be bound (the port is taken) is
//     reported as Envoy reports it, in the NACK of the listeners, while the
//     other listeners are applied; a warming listener binds its socket at
//     once, as Envoy does. Unlike Envoy, which tries such a listener again
//     only with the next listener update, the runtime retries the bind (1s,
//     doubling up to 30s) and, once every listener is bound, the ADS client
//     ACKs the listeners it NACKed, so that the control plane sees the
//     listener Programmed without a configuration change.
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
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
	// OnListenersServe is called when every listener that could not be
	// bound when applied has been bound by a later retry (see Apply); the
	// ADS client then ACKs the listeners it had NACKed (AckServed).
	OnListenersServe func()
	// BindRetry is the first wait before binding a listener again; it
	// doubles up to 30s. Zero: one second.
	BindRetry time.Duration
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
	// unbound are the listeners of the configuration whose address could
	// not be bound, by name; retryBinds tries them again while any are
	// left. Guarded by mu.
	unbound  map[string]*unboundListener
	retrying bool
	// reserved are the sockets of listeners that warm, by name. Guarded by
	// mu.
	reserved map[string]reservedSocket
	stop     chan struct{} // closed by Close

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
		unbound:  map[string]*unboundListener{},
		reserved: map[string]reservedSocket{},
		stop:     make(chan struct{}),
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
//
// A listener whose address cannot be bound (the port is taken) does not
// hold the others back, as in Envoy: the rest of s is applied, the listener
// keeps its previous address if it had one, and Apply returns an
// *xdsclient.PartialError naming it and the cause. Unlike Envoy, which
// tries again only on the next listener update, the runtime then retries the
// bind with backoff; once every such listener serves it calls
// Options.OnListenersServe. A later Apply that brings the same listener
// unchanged leaves it to that retry, and still reports it.
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
	oldHeld := r.heldLeases(old)

	// Bind what is new before anything changes.
	fresh := map[string]*server{}
	failed := map[string]bool{}
	for name, lc := range cfg.listeners {
		if cur := r.servers[name]; cur != nil && cur.addr == lc.addr && cur.tls == lc.tls {
			delete(r.unbound, name)
			continue
		}
		ln, ok := r.bind(name, lc.addr, s.Listeners[name])
		if !ok {
			r.unbound[name].lc = lc
			failed[name] = true
			r.keepPrevious(cfg, old, name)
			continue
		}
		fresh[name] = r.newServer(lc, ln)
	}
	// A listener that warms (its route configuration or certificate has not
	// arrived) holds its socket already, as Envoy binds a listener when it
	// is added: a port that is taken is answered with the listeners.
	for name, l := range s.Listeners {
		if cfg.listeners[name] != nil || failed[name] {
			continue
		}
		if u := r.unbound[name]; u != nil {
			u.lc = nil // warming again: retryBinds only reserves its socket
		}
		addr := listenerAddr(l)
		if addr == "" || r.reserved[name].addr == addr {
			continue
		}
		if ln, ok := r.bind(name, addr, l); ok {
			r.reserve(name, addr, ln)
		}
	}
	for name := range r.unbound {
		if s.Listeners[name] == nil {
			delete(r.unbound, name)
		}
	}
	for name, res := range r.reserved {
		if cfg.listeners[name] != nil || s.Listeners[name] == nil || listenerAddr(s.Listeners[name]) != res.addr {
			r.reserve(name, "", nil)
		}
	}

	r.cfg.Store(cfg)
	env.commit(cfg, oldHeld, r.heldLeases(cfg))

	for name, cur := range r.servers {
		lc, keep := cfg.listeners[name]
		if keep && fresh[name] == nil && cur.addr == lc.addr {
			continue
		}
		delete(r.servers, name)
		r.retire(cur)
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
	r.log.Debug("applied configuration", "listeners", len(cfg.listeners), "routes", len(s.Routes),
		"clusters", len(cfg.clusters), "secrets", len(s.Secrets), "unbound_listeners", len(r.unbound))
	if len(r.unbound) == 0 {
		return nil
	}
	if !r.retrying {
		r.retrying = true
		go r.retryBinds()
	}
	return r.unboundError()
}

// unboundListener is a listener of the configuration whose address could
// not be bound.
type unboundListener struct {
	addr     string
	lc       *listenerConfig      // nil while the listener warms
	resource *listenerv3.Listener // as applied, to tell a changed listener
	err      error
}

// bind listens on addr for listener name (l as applied): with the socket
// the listener reserved while it warmed, if any. On failure it records the
// listener as unbound, logs the failure (at ERROR once per address and
// cause) and returns false. A listener that failed before, unchanged, is
// left to retryBinds: bind does not try it again. Called with mu held.
func (r *Runtime) bind(name, addr string, l *listenerv3.Listener) (net.Listener, bool) {
	if res := r.reserved[name]; res.ln != nil && res.addr == addr {
		delete(r.reserved, name)
		delete(r.unbound, name)
		return res.ln, true
	}
	prev := r.unbound[name]
	if prev != nil && prev.addr == addr && proto.Equal(prev.resource, l) {
		return nil, false
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		err = bindCause(err)
		r.unbound[name] = &unboundListener{addr: addr, resource: l, err: err}
		lvl := slog.LevelError
		if prev != nil && prev.addr == addr && prev.err.Error() == err.Error() {
			lvl = slog.LevelDebug
		}
		r.log.Log(context.Background(), lvl, "a listener cannot bind its address; the other listeners serve",
			"listener", name, "address", addr, "error", err)
		return nil, false
	}
	delete(r.unbound, name)
	return ln, true
}

// bindCause is why net.Listen failed, without the address it repeats
// ("address already in use" rather than "listen tcp 0.0.0.0:80: bind:
// address already in use").
func bindCause(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// reservedSocket is the socket of a listener that warms, bound to addr
// (as the listener names it).
type reservedSocket struct {
	addr string
	ln   net.Listener
}

// reserve holds ln, bound to addr, as the socket of warming listener name,
// closing the one it held; a nil ln only closes. Called with mu held.
func (r *Runtime) reserve(name, addr string, ln net.Listener) {
	if old := r.reserved[name]; old.ln != nil {
		_ = old.ln.Close()
		delete(r.reserved, name)
	}
	if ln != nil {
		r.reserved[name] = reservedSocket{addr: addr, ln: ln}
	}
}

// listenerAddr is the host:port a listener binds, or "" if it has none.
func listenerAddr(l *listenerv3.Listener) string {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return ""
	}
	return joinHostPort(sa.GetAddress(), sa.GetPortValue())
}

// keepPrevious serves, in place of listener name that could not be bound,
// its previous configuration, if it had one (it keeps its old address), or
// nothing.
func (r *Runtime) keepPrevious(cfg, old *config, name string) {
	if prev := old.listeners[name]; prev != nil && r.servers[name] != nil {
		cfg.listeners[name] = prev
		return
	}
	delete(cfg.listeners, name)
}

// unboundError names every listener that could not be bound. Called with
// mu held.
func (r *Runtime) unboundError() error {
	names := make([]string, 0, len(r.unbound))
	for n := range r.unbound {
		names = append(names, n)
	}
	sort.Strings(names)
	pe := &xdsclient.PartialError{}
	for _, n := range names {
		u := r.unbound[n]
		pe.Resources = append(pe.Resources, xdsclient.ResourceError{
			TypeURL: xdsclient.ListenerType, Name: n,
			Err: fmt.Errorf("binding %s: %w", u.addr, u.err),
		})
	}
	return pe
}

// ListenersServe reports whether every listener of the configuration is
// bound.
func (r *Runtime) ListenersServe() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.unbound) == 0
}

// retryBinds binds the unbound listeners again, with backoff, until all
// are bound, none are left, or the runtime closes.
func (r *Runtime) retryBinds() {
	wait := r.opts.BindRetry
	if wait <= 0 {
		wait = time.Second
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, 30*time.Second)
		served := r.bindUnbound()
		if served && r.opts.OnListenersServe != nil {
			r.opts.OnListenersServe()
		}
		r.mu.Lock()
		done := r.closed || len(r.unbound) == 0
		if done {
			r.retrying = false
		}
		r.mu.Unlock()
		if done {
			return
		}
	}
}

// bindUnbound tries to bind each unbound listener once and serves those it
// binds (a warming one holds its socket until it is applied). It reports
// whether that left none unbound.
func (r *Runtime) bindUnbound() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || len(r.unbound) == 0 {
		return false
	}
	oldHeld := r.heldLeases(r.cfg.Load())
	var bound []*listenerConfig
	for name, u := range r.unbound {
		ln, err := net.Listen("tcp", u.addr)
		if err != nil {
			u.err = bindCause(err)
			r.log.Debug("a listener still cannot bind its address", "listener", name, "address", u.addr, "error", err)
			continue
		}
		delete(r.unbound, name)
		r.log.Info("a listener that could not bind its address now has it", "listener", name, "address", u.addr)
		if u.lc == nil {
			r.reserve(name, u.addr, ln)
			continue
		}
		if cur := r.servers[name]; cur != nil {
			r.retire(cur)
		}
		r.servers[name] = r.newServer(u.lc, ln)
		bound = append(bound, u.lc)
	}
	if len(bound) > 0 {
		cur := r.cfg.Load()
		next := *cur
		next.listeners = maps.Clone(cur.listeners)
		for _, lc := range bound {
			next.listeners[lc.name] = lc
		}
		r.cfg.Store(&next)
		for _, lc := range bound {
			lc.feedClusters(next.clusters)
			r.servers[lc.name].start()
		}
		// The listeners bound replace the ones kept serving in their place:
		// what only those held is released.
		releaseUnheld(oldHeld, r.heldLeases(&next))
	}
	return len(r.unbound) == 0
}

// retire stops a server that no configuration uses any more, letting its
// requests finish. Called with mu held.
func (r *Runtime) retire(s *server) {
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := s.shutdown(ctx); err != nil {
			r.log.Warn("draining listener", "listener", s.name, "error", err)
		}
	}()
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
	close(r.stop)
	for name := range r.reserved {
		r.reserve(name, "", nil)
	}
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
		cc, err := upstream.Compile(cl, s.Endpoints[edsName], old.clusters[name], upstream.Options{Now: r.opts.Now, Logger: r.log})
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
				r.log.Debug("route configuration waits for the endpoints of a cluster", "route_configuration", name, "cluster", c)
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
			r.log.Debug("listener warming", "listener", name, "waiting_for", err.Error())
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
