package ratelimit

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (200 while the process runs), /readyz (200 when
// Ready returns nil, else 503 with its error) and /metrics from g. With a nil
// g, /metrics serves Options.Registerer when it is also a Gatherer (a
// *prometheus.Registry is), else the default registry.
func (s *Server) Handler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		if rg, ok := s.reg.(prometheus.Gatherer); ok {
			g = rg
		} else {
			g = prometheus.DefaultGatherer
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}
