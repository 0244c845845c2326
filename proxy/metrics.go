package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/hcm"
)

// metrics are the proxy's Prometheus series: the connection manager's
// (requests by route, backend and code), and the counters the registered
// HTTP filters declare.
type metrics struct {
	gateway string
	http    *hcm.Metrics
	// filterCounters are the filters' counter families, by name.
	filterCounters map[string]*prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, gateway string) *metrics {
	m := &metrics{
		gateway:        gateway,
		http:           hcm.NewMetrics(reg, gateway),
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
