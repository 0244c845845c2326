// Package controlplane wires the control plane's stages together: a provider's
// resources go through the Gateway API translator and the xDS translator into
// the ADS server. It is wiring only; each stage is its own package.
package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/gateway/resource"
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
	p.translateSeconds.Observe(time.Since(start).Seconds())
	p.problems.Set(float64(len(result.Problems)))

	for _, pr := range result.Problems {
		if pr.Warning {
			p.log.Warn("resource problem", "problem", pr.String())
		} else {
			p.log.Error("resource problem", "problem", pr.String())
		}
	}
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
