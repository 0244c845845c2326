package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus metrics of the ADS server.
type metrics struct {
	pushes    *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	streams   prometheus.Gauge
	rejected  prometheus.Counter
	snapshots prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "xds", Name: "pushes_total",
			Help: "xDS responses sent to proxies, by resource type URL.",
		}, []string{"type_url"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "xds", Name: "nacks_total",
			Help: "xDS responses rejected (NACKed) by proxies, by resource type URL.",
		}, []string{"type_url"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sekisho", Subsystem: "xds", Name: "connected_streams",
			Help: "Open xDS streams (state-of-the-world and delta).",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "xds", Name: "snapshot_rejections_total",
			Help: "Gateway snapshots refused because they were invalid or inconsistent.",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sekisho", Subsystem: "xds", Name: "snapshot_updates_total",
			Help: "Gateway snapshots installed in the cache.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.pushes, m.nacks, m.streams, m.rejected, m.snapshots} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("registering xDS server metrics: %w", err)
		}
	}
	return nil
}
