package hcm

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the connection manager's Prometheus series, shaped like
// Istio's standard metrics.
type Metrics struct {
	gateway  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu    sync.Mutex
	stats map[statKey]*RouteStats
}

type statKey struct{ route, backend string }

// RouteStats caches the series of one route and backend by response code,
// so the hot path does no label lookups.
type RouteStats struct {
	m       *Metrics
	key     statKey
	byCode  [600]atomic.Pointer[codeStats]
	unknown codeStats
}

type codeStats struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics returns the series of a gateway, registered with reg (or
// taken from it when another runtime registered them; nil: unregistered).
func NewMetrics(reg prometheus.Registerer, gateway string) *Metrics {
	m := &Metrics{
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
		stats: map[statKey]*RouteStats{},
	}
	if reg != nil {
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

// ForRoute returns the cache for a route and backend (kept across configs).
func (m *Metrics) ForRoute(route, backend string) *RouteStats {
	k := statKey{route, backend}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats[k]
	if s == nil {
		s = &RouteStats{m: m, key: k}
		m.stats[k] = s
	}
	return s
}

func (s *RouteStats) observe(code int, d time.Duration) {
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
