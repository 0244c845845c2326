package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const metricPrefix = "sekisho_ratelimit_"

// Reasons of sekisho_ratelimit_unknown_descriptors_total.
const (
	reasonDomain      = "domain"       // the request is for another domain
	reasonNotARule    = "not_a_rule"   // the first entry is not sekisho.rule
	reasonUnknownRule = "unknown_rule" // sekisho.rule names no rule of the config
)

type metrics struct {
	decisions   *prometheus.CounterVec // rule, code
	failOpen    *prometheus.CounterVec // rule
	storeErrors *prometheus.CounterVec // rule
	shadowOver  *prometheus.CounterVec // rule
	unknown     *prometheus.CounterVec // reason
	rules       prometheus.Gauge
	duration    prometheus.Histogram

	unknownDomain, notARule, unknownRule prometheus.Counter
}

// ruleMetrics are one rule's counters, looked up once per config.
type ruleMetrics struct {
	ok, over, failOpen, storeErrors, shadowOver prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "decisions_total",
			Help: "Descriptors decided by a rule, by rule and code (ok, over_limit). Shadow rules always count as ok.",
		}, []string{"rule", "code"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "fail_open_total",
			Help: "Descriptors answered OK because the store failed or did not answer in time and the rule fails open.",
		}, []string{"rule"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "store_errors_total",
			Help: "Descriptors the store failed to decide (error or deadline), whatever the rule's failure mode.",
		}, []string{"rule"}),
		shadowOver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "shadow_over_limit_total",
			Help: "Descriptors of shadow rules that would have been denied.",
		}, []string{"rule"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "unknown_descriptors_total",
			Help: "Descriptors answered OK without counting: reason domain (the request is for another domain), not_a_rule (first entry is not sekisho.rule) or unknown_rule.",
		}, []string{"reason"}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPrefix + "rules",
			Help: "Rules of the config in force.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    metricPrefix + "decision_duration_seconds",
			Help:    "Time to answer one ShouldRateLimit call.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
	}
	m.unknownDomain = m.unknown.WithLabelValues(reasonDomain)
	m.notARule = m.unknown.WithLabelValues(reasonNotARule)
	m.unknownRule = m.unknown.WithLabelValues(reasonUnknownRule)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.decisions, m.failOpen, m.storeErrors, m.shadowOver, m.unknown, m.rules, m.duration} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, errors.New("rate-limit metrics are already registered in this registry: use one registry per Server")
				}
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) forRule(id string) *ruleMetrics {
	return &ruleMetrics{
		ok:          m.decisions.WithLabelValues(id, "ok"),
		over:        m.decisions.WithLabelValues(id, "over_limit"),
		failOpen:    m.failOpen.WithLabelValues(id),
		storeErrors: m.storeErrors.WithLabelValues(id),
		shadowOver:  m.shadowOver.WithLabelValues(id),
	}
}

// forget drops the series of a rule that is no longer configured.
func (m *metrics) forget(id string) {
	m.decisions.DeleteLabelValues(id, "ok")
	m.decisions.DeleteLabelValues(id, "over_limit")
	m.failOpen.DeleteLabelValues(id)
	m.storeErrors.DeleteLabelValues(id)
	m.shadowOver.DeleteLabelValues(id)
}
