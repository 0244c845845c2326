package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthReadyAndMetrics(t *testing.T) {
	var ready atomic.Bool
	s := New(func() error {
		if !ready.Load() {
			return errors.New("warming up")
		}
		return nil
	})
	extra := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sekisho_test_extra_total", Help: "test"})
	extra.MustRegister(c)
	c.Add(3)
	s.SetExtraGatherers(func() prometheus.Gatherers { return prometheus.Gatherers{extra} })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + lis.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "warming up") {
		t.Errorf("/readyz before ready = %d %q, want 503 with the reason", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "sekisho_test_extra_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, missing the extra gatherer's or the Go collector's metrics:\n%.400s", code, body)
	}
}
