package proxy

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/proxy/ext"
)

// metrics are the proxy's Prometheus series, shaped like Istio's standard
// metrics.
type metrics struct {
	gateway  string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// filterCounters are the counter families the registered HTTP
	// filters declare, by name.
	filterCounters map[string]*prometheus.CounterVec

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
		stats:          map[statKey]*routeStats{},
		filterCounters: map[string]*prometheus.CounterVec{},
	}
	for _, f := range ext.HTTPFilters() {
		for _, c := range f.Counters {
			cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: c.Name, Help: c.Help},
				append([]string{"gateway", "filter"}, c.Labels...))
			if reg != nil {
				registerCounterVec(reg, &cv)
			}
			m.filterCounters[c.Name] = cv
		}
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

// filterCounter returns the counter of a family an HTTP filter declared,
// for the filter of that name and the values of the family's labels.
func (m *metrics) filterCounter(family, filter string, labels ...string) prometheus.Counter {
	cv := m.filterCounters[family]
	if cv == nil {
		panic(fmt.Sprintf("proxy: HTTP filter %q reports %s, which no registered filter declares", filter, family))
	}
	return cv.WithLabelValues(append([]string{m.gateway, filter}, labels...)...)
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
