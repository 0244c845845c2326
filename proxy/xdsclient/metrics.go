package xdsclient

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus metrics; nil when no Registerer is set.
type metrics struct {
	connected  prometheus.Gauge
	updates    *prometheus.CounterVec
	reconnects prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	if r == nil {
		return nil, nil
	}
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sekisho", Subsystem: "proxy_xds", Name: "connected",
			Help: "1 while the proxy's ADS stream to the control plane is open, else 0.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "proxy_xds", Name: "updates_total",
			Help: "xDS responses answered by the proxy, by type (cds, eds, lds, rds, sds, unknown) and result (ack, nack).",
		}, []string{"type", "result"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "proxy_xds", Name: "reconnects_total",
			Help: "ADS stream attempts made after the stream was lost or could not be opened.",
		}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.updates, m.reconnects} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("registering proxy xDS client metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) setConnected(up bool) {
	if m == nil {
		return
	}
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

func (m *metrics) update(typeURL, result string) {
	if m == nil {
		return
	}
	m.updates.WithLabelValues(shortType(typeURL), result).Inc()
}

func (m *metrics) reconnect() {
	if m == nil {
		return
	}
	m.reconnects.Inc()
}
