// Package admin serves a long-running component's health and metrics:
// /healthz (the process is alive), /readyz (it is doing its job) and
// Prometheus /metrics, plus any extra handlers the component adds.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Server is an admin HTTP server.
type Server struct {
	Mux      *http.ServeMux
	Registry *prometheus.Registry
	ready    func() error

	mu    sync.Mutex
	extra func() prometheus.Gatherers
}

// New returns an admin server whose /readyz answers 200 while ready returns nil.
func New(ready func() error) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Mux: http.NewServeMux(), Registry: reg, ready: ready}
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.Mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.ready != nil {
			if err := s.ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.GathererFunc(s.gather), promhttp.HandlerOpts{Registry: reg}))
	return s
}

// SetExtraGatherers sets more sources for /metrics, e.g. the registries of
// components that come and go; they are read on every scrape.
func (s *Server) SetExtraGatherers(f func() prometheus.Gatherers) {
	s.mu.Lock()
	s.extra = f
	s.mu.Unlock()
}

func (s *Server) gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	extra := s.extra
	s.mu.Unlock()
	if extra == nil {
		return s.Registry.Gather()
	}
	return append(prometheus.Gatherers{s.Registry}, extra()...).Gather()
}

// SetReady replaces the readiness check. Call it before Serve.
func (s *Server) SetReady(ready func() error) { s.ready = ready }

// Serve serves on lis until ctx is cancelled, then shuts down within 5 s.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{Handler: s.Mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving admin on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Warn("admin server shutdown", "err", err)
	}
	return nil
}
