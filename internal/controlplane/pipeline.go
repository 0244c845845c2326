// Package controlplane wires the control plane's stages together: a provider's
// resources go through the Gateway API translator and the xDS translator into
// the ADS server. It is wiring only; each stage is its own package.
package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	k8stypes "k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/configsub"
	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/xds/server"
	xdstranslate "github.com/sekisho/sekisho/xds/translate"
)

// Pipeline turns each new view of the resources into xDS snapshots. For every
// Gateway it keeps the last xDS that translated cleanly: a Gateway whose new
// xDS cannot be built keeps serving that, and the others move on.
type Pipeline struct {
	server *server.Server
	opts   gwtranslate.Options
	log    *slog.Logger

	translateSeconds prometheus.Histogram
	problems         prometheus.Gauge
	applies          *prometheus.CounterVec

	// buildXDS turns one Gateway's IR into xDS (xdstranslate.Translate).
	buildXDS func(*ir.Gateway) (*xdstranslate.Resources, error)

	mu       sync.Mutex
	lastGood map[string]map[resourcev3.Type][]types.Resource
	result   *gwtranslate.Result
	ready    bool
	// ports is the port of each Gateway listener, by Gateway key and
	// listener name, of the last view applied.
	ports map[string]map[gwv1.SectionName]gwv1.PortNumber
	// reported are the problems logged so far that still hold: a problem
	// is logged when it appears, not again on each view.
	reported map[string]bool
}

// Options configure a Pipeline.
type Options struct {
	Translate  gwtranslate.Options
	Logger     *slog.Logger
	Registerer prometheus.Registerer // optional
}

// New returns a pipeline that feeds srv.
func New(srv *server.Server, opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Pipeline{
		server:   srv,
		opts:     opts.Translate,
		log:      opts.Logger,
		lastGood: map[string]map[resourcev3.Type][]types.Resource{},
		buildXDS: xdstranslate.Translate,
		translateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sekisho_controlplane_translate_seconds",
			Help:    "Time from a new view of the resources to snapshots set on the xDS server.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sekisho_controlplane_problems",
			Help: "Problems found in the last view of the resources (load, validation and translation).",
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_controlplane_applies_total",
			Help: "Views of the resources applied, by result.",
		}, []string{"result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(p.translateSeconds, p.problems, p.applies)
	}
	return p
}

// Apply translates res and sets the ADS server's snapshots. loadProblems are the
// provider's own problems, reported with the translator's. It returns the
// translation result; the error says which Gateways kept their last good xDS.
func (p *Pipeline) Apply(ctx context.Context, res *resource.Resources, loadProblems []resource.Problem) (*gwtranslate.Result, error) {
	start := time.Now()
	result := gwtranslate.Translate(res, p.opts)
	result.Problems = append(append([]resource.Problem(nil), loadProblems...), result.Problems...)

	p.mu.Lock()
	defer p.mu.Unlock()
	desired := make(map[string]map[resourcev3.Type][]types.Resource, len(result.IR.Gateways))
	var failed []error
	for _, gw := range result.IR.Gateways {
		// Translate validates what it builds (Resources.Validate).
		xr, err := p.buildXDS(gw)
		if err != nil {
			failed = append(failed, fmt.Errorf("gateway %s: %w", gw.Name, err))
			if last, ok := p.lastGood[gw.Name]; ok {
				desired[gw.Name] = last
			}
			continue
		}
		desired[gw.Name] = xr.ByType()
	}
	// The services' configurations, under their own snapshot keys; always
	// set (empty when no policy needs them) so that removals reach them.
	services, err := serviceSnapshots(result.IR)
	if err != nil {
		failed = append(failed, err)
		for _, k := range []string{configsub.AuthzNode, configsub.RateLimitNode} {
			if last, ok := p.lastGood[k]; ok {
				desired[k] = last
			}
		}
	} else {
		for k, v := range services {
			desired[k] = v
		}
	}
	if err := p.server.Set(ctx, desired); err != nil {
		failed = append(failed, err)
	}
	// What the server took is the new last good; Gateways it refused keep theirs.
	for name, byType := range desired {
		p.lastGood[name] = byType
	}
	for name := range p.lastGood {
		if _, ok := desired[name]; !ok {
			delete(p.lastGood, name)
		}
	}
	p.result = result
	p.ready = true
	p.ports = listenerPorts(res)
	p.translateSeconds.Observe(time.Since(start).Seconds())
	p.problems.Set(float64(len(result.Problems)))

	reported := make(map[string]bool, len(result.Problems))
	for _, pr := range result.Problems {
		msg := pr.String()
		reported[msg] = true
		switch {
		case p.reported[msg]:
			p.log.Debug("resource problem (still)", "problem", msg)
		case pr.Warning:
			p.log.Warn("resource problem", "problem", msg)
		default:
			p.log.Error("resource problem", "problem", msg)
		}
	}
	p.reported = reported
	if len(failed) > 0 {
		p.applies.WithLabelValues("partial").Inc()
		err := fmt.Errorf("applying resources: %d gateway(s) keep their last good xDS: %v", len(failed), failed)
		p.log.Error("apply", "err", err)
		return result, err
	}
	p.applies.WithLabelValues("ok").Inc()
	p.log.Info("applied", "gateways", len(desired), "problems", len(result.Problems), "duration", time.Since(start))
	return result, nil
}

// listenerPorts is the port of each listener of each Gateway of res.
func listenerPorts(res *resource.Resources) map[string]map[gwv1.SectionName]gwv1.PortNumber {
	out := make(map[string]map[gwv1.SectionName]gwv1.PortNumber, len(res.Gateways))
	for _, gw := range res.Gateways {
		m := make(map[gwv1.SectionName]gwv1.PortNumber, len(gw.Spec.Listeners))
		for _, l := range gw.Spec.Listeners {
			m[l.Name] = l.Port
		}
		out[gw.Namespace+"/"+gw.Name] = m
	}
	return out
}

// ServedStatus is the status of the last view applied (nil before the
// first), with the Programmed conditions of Gateways and listeners saying
// what the Gateways' proxies connected to this control plane do with them
// (see status.Set.WithServing and servingOf).
func (p *Pipeline) ServedStatus() *status.Set {
	p.mu.Lock()
	result, ports := p.result, p.ports
	p.mu.Unlock()
	if result == nil {
		return nil
	}
	served := make(map[k8stypes.NamespacedName]map[gwv1.SectionName]status.Serving, len(result.IR.Gateways))
	for _, gw := range result.IR.Gateways {
		dp := p.server.DataPlane(gw.Name)
		byPort := make(map[uint32]string, len(gw.Listeners))
		for _, l := range gw.Listeners {
			byPort[l.Port] = l.Name
		}
		m := map[gwv1.SectionName]status.Serving{}
		for section, port := range ports[gw.Name] {
			if name, ok := byPort[uint32(port)]; ok {
				m[section] = servingOf(dp, name, int32(port))
			}
		}
		served[status.Key(gw.Namespace, gw.GatewayName)] = m
	}
	return result.Status.WithServing(served)
}

// ProxiesConnected counts the proxies of gateway (namespace/name)
// connected to this control plane.
func (p *Pipeline) ProxiesConnected(gateway string) int {
	return p.server.DataPlane(gateway).Proxies
}

// servingOf says what the proxies of a Gateway do with its xDS listener
// name (on port).
//
// With several replicas, a listener is served when at least one connected
// proxy serves it and none reports it cannot. That is how Envoy Gateway
// and Istio users read Programmed: the Gateway takes traffic on that port.
// A replica still starting (its readiness keeps it out of the Service until
// it is programmed) must not turn a serving Gateway back to Pending, but a
// replica that cannot serve the listener makes it not Programmed: the
// Service spreads connections over every ready replica, so part of the
// traffic to that port fails. A proxy that disconnects no longer counts;
// with none connected the listener is Pending again.
func servingOf(dp server.DataPlane, name string, port int32) status.Serving {
	ls, ok := dp.Listeners[name]
	switch {
	case ok && ls.Rejected > 0:
		msg := fmt.Sprintf("Proxy %s cannot serve port %d: %s", ls.Node, port, strings.TrimSpace(ls.Cause))
		if n := ls.Rejected + ls.Serving + ls.Pending; n > 1 {
			msg += fmt.Sprintf(" (%d of %d proxies cannot)", ls.Rejected, n)
		}
		return status.Serving{State: status.NotServed, Message: msg}
	case ok && ls.Serving > 0:
		return status.Serving{State: status.Served}
	case dp.Proxies == 0:
		return status.Serving{State: status.ServedPending, Message: fmt.Sprintf("Waiting for a proxy of the Gateway to connect and serve port %d", port)}
	default:
		return status.Serving{State: status.ServedPending, Message: fmt.Sprintf("Waiting for the Gateway's proxies to accept the configuration with port %d", port)}
	}
}

// Result is the last translation result, or nil before the first Apply.
func (p *Pipeline) Result() *gwtranslate.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.result
}

// Ready reports whether a view of the resources has been applied.
func (p *Pipeline) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// serviceSnapshots packs the authorization and rate-limit services'
// configurations.
func serviceSnapshots(cfg *ir.Config) (map[string]map[resourcev3.Type][]types.Resource, error) {
	authz := cfg.Authz
	if authz == nil {
		authz = &ir.AuthzConfig{Policies: []ir.AuthzPolicy{}}
	}
	rl := cfg.RateLimit
	if rl == nil {
		rl = &ir.RateLimitConfig{Domain: gwtranslate.RateLimitDomain, Rules: []ir.RateLimitRule{}}
	}
	a, err := configsub.Resource(configsub.AuthzResource, authz)
	if err != nil {
		return nil, err
	}
	r, err := configsub.Resource(configsub.RateLimitResource, rl)
	if err != nil {
		return nil, err
	}
	return map[string]map[resourcev3.Type][]types.Resource{
		configsub.AuthzNode:     {resourcev3.ExtensionConfigType: {a}},
		configsub.RateLimitNode: {resourcev3.ExtensionConfigType: {r}},
	}, nil
}
