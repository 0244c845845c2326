package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series, shaped like Istio's standard
// metrics.
type metrics struct {
	gateway  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// HTTP filter outcomes, by filter name.
	authzChecks    *prometheus.CounterVec // result: allowed, denied, error
	authzFailOpen  *prometheus.CounterVec
	rlChecks       *prometheus.CounterVec // result: allowed, denied, error
	rlFailOpen     *prometheus.CounterVec
	localRateLimit *prometheus.CounterVec // result: allowed, denied, not_enforced

	mu    sync.Mutex
	stats map[statKey]*routeStats
}

type statKey struct{ route, backend string }

// routeStats caches the series of one route and backend by response code,
// so the hot path does no label lookups.
type routeStats struct {
	m       *metrics
	key     statKey
	byCode  [600]atomic.Pointer[codeStats]
	unknown codeStats
}

type codeStats struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, gateway string) *metrics {
	m := &metrics{
		gateway: gateway,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_requests_total",
			Help: "Requests the proxy answered, by route, backend cluster and response code.",
		}, []string{"gateway", "route", "backend", "response_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sekisho_request_duration_milliseconds",
			Help:    "Time from the request's arrival to the end of its response, in milliseconds.",
			Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000},
		}, []string{"gateway", "route", "backend", "response_code"}),
		stats: map[statKey]*routeStats{},
		authzChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_ext_authz_checks_total",
			Help: "Authorization checks of the ext_authz filters, by filter and result (allowed, denied, error).",
		}, []string{"gateway", "filter", "result"}),
		authzFailOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_ext_authz_failure_open_total",
			Help: "Requests an ext_authz filter let through because the authorization service failed (failure_mode_allow).",
		}, []string{"gateway", "filter"}),
		rlChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_ratelimit_checks_total",
			Help: "Rate limit service calls of the ratelimit filters, by filter and result (allowed, denied, error).",
		}, []string{"gateway", "filter", "result"}),
		rlFailOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_ratelimit_failure_open_total",
			Help: "Requests a ratelimit filter let through because the rate limit service failed (failure_mode_deny false).",
		}, []string{"gateway", "filter"}),
		localRateLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sekisho_local_ratelimit_total",
			Help: "Requests a local_ratelimit filter checked, by filter and result (allowed, denied, not_enforced).",
		}, []string{"gateway", "filter", "result"}),
	}
	if reg != nil {
		for _, cv := range []**prometheus.CounterVec{&m.authzChecks, &m.authzFailOpen, &m.rlChecks, &m.rlFailOpen, &m.localRateLimit} {
			registerCounterVec(reg, cv)
		}
		if err := reg.Register(m.requests); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				if cv, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					m.requests = cv
				}
			}
		}
		if err := reg.Register(m.duration); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				if hv, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
					m.duration = hv
				}
			}
		}
	}
	return m
}

// registerCounterVec registers *cv, or takes the one already registered
// under its name (a registry shared by several runtimes).
func registerCounterVec(reg prometheus.Registerer, cv **prometheus.CounterVec) {
	if err := reg.Register(*cv); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				*cv = existing
			}
		}
	}
}

// forRoute returns the cache for a route and backend (kept across configs).
func (m *metrics) forRoute(route, backend string) *routeStats {
	k := statKey{route, backend}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats[k]
	if s == nil {
		s = &routeStats{m: m, key: k}
		m.stats[k] = s
	}
	return s
}

func (s *routeStats) observe(code int, d time.Duration) {
	var cs *codeStats
	if code >= 0 && code < len(s.byCode) {
		cs = s.byCode[code].Load()
		if cs == nil {
			labels := []string{s.m.gateway, s.key.route, s.key.backend, strconv.Itoa(code)}
			cs = &codeStats{
				requests: s.m.requests.WithLabelValues(labels...),
				duration: s.m.duration.WithLabelValues(labels...),
			}
			s.byCode[code].Store(cs)
		}
	} else {
		cs = &s.unknown
		if cs.requests == nil {
			return
		}
	}
	cs.requests.Inc()
	cs.duration.Observe(float64(d) / float64(time.Millisecond))
}
