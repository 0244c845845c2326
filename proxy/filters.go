package proxy

// Compiling the HTTP filters a connection manager runs before the router,
// as Envoy does. A filter is an extension (package ext, one package each in
// proxy/filter): the connection manager knows it by the type of its
// typed_config, and its name is the key of its per-route configuration
// (typed_per_filter_config of routes and virtual hosts). Package hcm runs
// them.
//
// A typed_per_filter_config entry may be wrapped in an
// envoy.config.route.v3.FilterConfig (is_optional: ignored when no filter
// takes its type; disabled: the filter does not run on the route) and its
// config may be a TypedStruct; so may an http_filters typed_config.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sekisho/sekisho/proxy/ext"
	_ "github.com/sekisho/sekisho/proxy/ext/all" // the filters the proxy runs
	"github.com/sekisho/sekisho/proxy/hcm"
	"github.com/sekisho/sekisho/proxy/router"
	"github.com/sekisho/sekisho/proxy/upstream"
)

// sharedGrace is how long shared state (a gRPC channel) that the applied
// configuration no longer uses stays open for the requests still using it.
const sharedGrace = time.Minute

// filterChain is the HTTP filters of a connection manager before the
// router; nil when it has only the router.
type filterChain struct {
	filters []*hcm.HTTPFilter
	// lease holds the shared state the filters took.
	lease *ext.Lease
	// watches are the clusters the filters call, and what they want to
	// know of them each time a configuration with the chain is applied.
	watches []clusterWatch
}

type clusterWatch struct {
	cluster string
	f       func(ext.Cluster) // nil: the filter only names the cluster
}

// compileEnv is what compiling filters needs from the configuration being
// compiled, and what it gathers for it.
type compileEnv struct {
	r *Runtime
	// clusters are the configuration's clusters; oldClusters those serving.
	clusters    map[string]*upstream.Cluster
	oldClusters map[string]*upstream.Cluster
	// tableLeases hold the shared state of the route tables' filter
	// configurations (a table kept from the serving configuration keeps its
	// lease); leases are every lease the compilation opened.
	tableLeases map[*router.Table]*ext.Lease
	leases      []*ext.Lease
}

func (r *Runtime) newCompileEnv(old *config) *compileEnv {
	return &compileEnv{r: r, oldClusters: old.clusters, tableLeases: map[*router.Table]*ext.Lease{}}
}

func (e *compileEnv) newLease() *ext.Lease {
	l := e.r.shared.NewLease()
	e.leases = append(e.leases, l)
	return l
}

// compileHTTPFilters compiles a connection manager's http_filters: any
// registered filters, then the router, last.
func compileHTTPFilters(fs []*hcmv3.HttpFilter, env *compileEnv) (*filterChain, error) {
	if len(fs) == 0 || fs[len(fs)-1].GetName() != routerFilterName {
		return nil, fmt.Errorf("http_filters: the last filter must be %q", routerFilterName)
	}
	if tc := fs[len(fs)-1].GetTypedConfig(); tc != nil && !tc.MessageIs(&routerv3.Router{}) {
		return nil, fmt.Errorf("http_filters[%d] %q: typed_config: %s is not a Router", len(fs)-1, routerFilterName, tc.MessageName())
	}
	if len(fs) == 1 {
		return nil, nil
	}
	fc := &filterChain{lease: env.newLease()}
	seen := map[string]bool{}
	for i, f := range fs[:len(fs)-1] {
		name := f.GetName()
		if name == routerFilterName {
			return nil, fmt.Errorf("http_filters[%d] %q: the router must be the last filter", i, name)
		}
		if name == "" {
			return nil, fmt.Errorf("http_filters[%d]: name is empty", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("http_filters[%d] %q: two filters have this name", i, name)
		}
		seen[name] = true
		hf, err := fc.build(name, f.GetTypedConfig(), env)
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, name, err)
		}
		fc.filters = append(fc.filters, hf)
	}
	return fc, nil
}

// build decodes a filter's typed_config and builds the filter.
func (fc *filterChain) build(name string, tc *anypb.Any, env *compileEnv) (*hcm.HTTPFilter, error) {
	if tc == nil {
		return nil, errors.New("typed_config: missing")
	}
	x, msg, err := ext.DecodeConfig(tc)
	var unknown *ext.UnknownTypeError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("typed_config: %s is not a filter the proxy runs", unknown.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	cfg, err := x.Decode(msg)
	if err != nil {
		return nil, err
	}
	run, err := x.Build(cfg, &buildContext{name: name, env: env, chain: fc})
	if err != nil {
		return nil, err
	}
	return &hcm.HTTPFilter{Name: name, Ext: x, Run: run}, nil
}

// clusters lists the clusters the chain's filters call.
func (fc *filterChain) clusters() []string {
	if fc == nil {
		return nil
	}
	out := make([]string, 0, len(fc.watches))
	for _, w := range fc.watches {
		out = append(out, w.cluster)
	}
	return out
}

// buildContext is a filter's ext.BuildContext.
type buildContext struct {
	name  string
	env   *compileEnv
	chain *filterChain
}

func (b *buildContext) Name() string            { return b.name }
func (b *buildContext) Lease() *ext.Lease       { return b.chain.lease }
func (b *buildContext) Log() *slog.Logger       { return b.env.r.log }
func (b *buildContext) Clock() func() time.Time { return b.env.r.now }

func (b *buildContext) Cluster(name string) (ext.Cluster, bool) {
	cl := b.env.clusters[name]
	if cl == nil {
		cl = b.env.oldClusters[name]
	}
	if cl == nil {
		return ext.Cluster{}, false
	}
	b.chain.watches = append(b.chain.watches, clusterWatch{cluster: name})
	return extCluster(cl), true
}

func (b *buildContext) WatchCluster(name string, f func(ext.Cluster)) {
	b.chain.watches = append(b.chain.watches, clusterWatch{cluster: name, f: f})
}

func (b *buildContext) Counter(family string, labels ...string) ext.Counter {
	return b.env.r.metrics.filterCounter(family, b.name, labels...)
}

func extCluster(cl *upstream.Cluster) ext.Cluster {
	c := ext.Cluster{Name: cl.Name, HTTP2: cl.H2C, ConnectTimeout: cl.ConnectTimeout, Endpoints: make([]string, 0, len(cl.Endpoints))}
	for _, e := range cl.Endpoints {
		c.Endpoints = append(c.Endpoints, e.Addr)
	}
	return c
}

// compileRouteFilters compiles the typed_per_filter_config of rc's virtual
// hosts and routes and hangs each route's, with its metric caches, on its
// Ext. The shared state they take (a token bucket) is keyed by the route
// configuration, virtual host and route names.
func (e *compileEnv) compileRouteFilters(rc *routev3.RouteConfiguration, t *router.Table) error {
	vhs := t.VirtualHosts()
	if len(vhs) != len(rc.GetVirtualHosts()) {
		return fmt.Errorf("route configuration %q: compiled %d virtual hosts of %d", rc.GetName(), len(vhs), len(rc.GetVirtualHosts()))
	}
	lease := e.newLease()
	e.tableLeases[t] = lease
	for i, vh := range rc.GetVirtualHosts() {
		where := fmt.Sprintf("route configuration %q: virtual_hosts[%d] %q", rc.GetName(), i, vh.GetName())
		scope := rc.GetName() + "\x00" + vh.GetName() + "\x00"
		vhf, err := compilePerFilterConfig(vh.GetTypedPerFilterConfig(), scope, lease)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		routes := vhs[i].Routes()
		if len(routes) != len(vh.GetRoutes()) {
			return fmt.Errorf("%s: compiled %d routes of %d", where, len(routes), len(vh.GetRoutes()))
		}
		seen := map[string]int{}
		for j, r := range vh.GetRoutes() {
			n := seen[r.GetName()]
			seen[r.GetName()] = n + 1
			rf, err := compilePerFilterConfig(r.GetTypedPerFilterConfig(), scope+r.GetName()+"#"+strconv.Itoa(n), lease)
			if err != nil {
				return fmt.Errorf("%s: routes[%d] %q: %w", where, j, r.GetName(), err)
			}
			re := e.r.routeExt(routes[j])
			re.Filters = mergeRouteFilters(vhf, rf)
			routes[j].Ext = re
		}
	}
	return nil
}

// keepTable carries a route table of the serving configuration over, with
// its lease.
func (e *compileEnv) keepTable(t *router.Table, old *config) {
	e.tableLeases[t] = old.tableLeases[t]
}

// compilePerFilterConfig compiles one typed_per_filter_config map; scope
// names its route (or virtual host).
func compilePerFilterConfig(m map[string]*anypb.Any, scope string, lease *ext.Lease) (map[string]*hcm.RouteFilter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]*hcm.RouteFilter, len(m))
	for _, name := range names {
		rf, err := compileRouteFilter(m[name], ext.RouteBuild{Scope: scope + "\x00" + name, Lease: lease})
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", name, err)
		}
		if rf != nil {
			out[name] = rf
		}
	}
	return out, nil
}

// compileRouteFilter compiles one entry; nil: an optional entry no filter
// takes.
func compileRouteFilter(a *anypb.Any, rb ext.RouteBuild) (*hcm.RouteFilter, error) {
	pr, err := ext.DecodePerRoute(a)
	var unknown *ext.UnknownTypeError
	switch {
	case errors.As(err, &unknown) && pr.Optional:
		return nil, nil
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("%s is not the per-route configuration of a filter the proxy runs", unknown.Type)
	case err != nil:
		return nil, err
	case pr.Message == nil:
		return &hcm.RouteFilter{Disabled: true}, nil
	}
	x := pr.Filter
	cfg, err := x.DecodeRoute(pr.Message)
	if err != nil {
		return nil, err
	}
	if x.BuildRoute != nil {
		if cfg, err = x.BuildRoute(cfg, rb); err != nil {
			return nil, err
		}
	}
	return &hcm.RouteFilter{Ext: x, Config: cfg, Disabled: pr.Disabled}, nil
}

// mergeRouteFilters is a route's filter configuration: its own entries,
// else its virtual host's; an entry of both is merged by its filter.
func mergeRouteFilters(vh, rt map[string]*hcm.RouteFilter) map[string]*hcm.RouteFilter {
	if len(vh) == 0 {
		return rt
	}
	if len(rt) == 0 {
		return vh
	}
	out := make(map[string]*hcm.RouteFilter, len(vh)+len(rt))
	for k, v := range vh {
		out[k] = v
	}
	for k, v := range rt {
		if p := vh[k]; p != nil && p.Ext != nil && p.Ext == v.Ext && v.Ext.Merge != nil && !p.Disabled && !v.Disabled {
			v = &hcm.RouteFilter{Ext: v.Ext, Config: v.Ext.Merge(p.Config, v.Config)}
		}
		out[k] = v
	}
	return out
}

// checkRouteFilterKinds refuses a route table whose per-route configuration
// of one of the chain's filters is of another filter's type.
func checkRouteFilterKinds(fc *filterChain, t *router.Table) error {
	if fc == nil {
		return nil
	}
	for _, rt := range t.Routes() {
		re, _ := rt.Ext.(*hcm.RouteExt)
		if re == nil || len(re.Filters) == 0 {
			continue
		}
		for _, f := range fc.filters {
			if rf := re.Filters[f.Name]; rf != nil && rf.Ext != nil && rf.Ext != f.Ext {
				return fmt.Errorf("route %q: typed_per_filter_config[%q] configures %s, but the chain's filter of that name is %s", rt.Name, f.Name, kind(rf.Ext), kind(f.Ext))
			}
		}
	}
	return nil
}

// kind names a filter in messages, as Envoy's own filters are known:
// "ext_authz" for envoy.filters.http.ext_authz.
func kind(x *ext.HTTPFilter) string { return strings.TrimPrefix(x.Name, "envoy.filters.http.") }

// leases returns the leases a configuration holds: its listeners' and its
// route tables'.
func (c *config) leases() map[*ext.Lease]bool {
	out := map[*ext.Lease]bool{}
	for _, lc := range c.listeners {
		lc.addLeases(out)
	}
	for _, l := range c.tableLeases {
		out[l] = true
	}
	return out
}

// addLeases adds the leases of the listener's filter chains to out.
func (lc *listenerConfig) addLeases(out map[*ext.Lease]bool) {
	for _, ch := range lc.chains {
		if ch.filters != nil {
			out[ch.filters.lease] = true
		}
	}
}

// heldLeases returns the leases the runtime holds while cfg serves: cfg's,
// and those of the listeners waiting for their address (r.unbound), which
// serve as they are once it is bound. Called with mu held.
func (r *Runtime) heldLeases(cfg *config) map[*ext.Lease]bool {
	held := cfg.leases()
	for _, u := range r.unbound {
		if u.lc != nil {
			u.lc.addLeases(held)
		}
	}
	return held
}

// discard releases the shared state of a compilation that is not applied.
func (e *compileEnv) discard() {
	for _, l := range e.leases {
		l.Release(false)
	}
}

// commit is called once cfg, compiled by e, is stored (Runtime.mu held):
// the filters learn their clusters' state, the leases of what e compiled
// that the runtime does not hold (a listener that warms) are released at
// once, and those it held before (oldHeld) and holds no more after a grace
// period.
func (e *compileEnv) commit(cfg *config, oldHeld, held map[*ext.Lease]bool) {
	for _, lc := range cfg.listeners {
		lc.feedClusters(cfg.clusters)
	}
	for _, l := range e.leases {
		if !held[l] {
			l.Release(false)
		}
	}
	releaseUnheld(oldHeld, held)
}

// releaseUnheld releases, after a grace period, the leases of oldHeld that
// held no longer has.
func releaseUnheld(oldHeld, held map[*ext.Lease]bool) {
	for l := range oldHeld {
		if !held[l] {
			l.Release(true)
		}
	}
}

// feedClusters gives the listener's filters the state of the clusters they
// watch.
func (lc *listenerConfig) feedClusters(clusters map[string]*upstream.Cluster) {
	for _, ch := range lc.chains {
		if ch.filters == nil {
			continue
		}
		for _, w := range ch.filters.watches {
			if cl := clusters[w.cluster]; cl != nil && w.f != nil {
				w.f(extCluster(cl))
			}
		}
	}
}

// routeExt returns a compiled route's hcm.RouteExt, with its metric caches.
func (r *Runtime) routeExt(rt *router.Route) *hcm.RouteExt {
	m := r.metrics.http
	e := &hcm.RouteExt{Stats: map[string]*hcm.RouteStats{}, NoBackend: m.ForRoute(rt.StatName, "")}
	if f := rt.Forward; f != nil {
		if f.Cluster != "" {
			e.Stats[f.Cluster] = m.ForRoute(rt.StatName, f.Cluster)
		}
		for _, w := range f.Weighted {
			e.Stats[w.Name] = m.ForRoute(rt.StatName, w.Name)
		}
	}
	return e
}

// The runtime seen by the connection manager.

// hcmRuntime is the Runtime as the connection manager sees it.
type hcmRuntime Runtime

func (r *hcmRuntime) Config() hcm.Config      { return r.cfg.Load() }
func (r *hcmRuntime) Log() *slog.Logger       { return r.log }
func (r *hcmRuntime) AccessLog() *slog.Logger { return r.accessLog }
func (r *hcmRuntime) TrackHijacked(c net.Conn, add bool) {
	r.hijackedMu.Lock()
	defer r.hijackedMu.Unlock()
	if add {
		r.hijacked[c] = struct{}{}
	} else {
		delete(r.hijacked, c)
	}
}

func (c *config) Chain(listener, sni string) (hcm.Chain, bool) {
	lc := c.listeners[listener]
	if lc == nil {
		return nil, false
	}
	cc := lc.chainFor(sni)
	if cc == nil {
		return nil, false
	}
	return cc, true
}

func (c *config) Cluster(name string) *upstream.Cluster { return c.clusters[name] }

func (cc *chainConfig) Routes() *router.Table { return cc.table }
func (cc *chainConfig) WebSocket() bool       { return cc.websocket }
func (cc *chainConfig) HTTPFilters() []*hcm.HTTPFilter {
	if cc.filters == nil {
		return nil
	}
	return cc.filters.filters
}
