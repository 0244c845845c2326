package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// faultDeadline is the servers' store deadline in these tests; hangBound is
// how long any call may take at most: the deadline and a wide margin for a
// loaded machine. It catches hangs, it does not measure speed.
const (
	faultDeadline = 50 * time.Millisecond
	hangBound     = faultDeadline + 2*time.Second
)

var faultConfig = Config{Domain: domain, Rules: []Rule{
	{ID: "open", Requests: 1_000_000, Unit: "Hour"},
	{ID: "closed", Requests: 1_000_000, Unit: "Hour", FailureMode: "Closed"},
	{ID: "bg-open", Requests: 1_000_000, Unit: "Hour"},
	{ID: "bg-closed", Requests: 1_000_000, Unit: "Hour", FailureMode: "Closed"},
}}

func newFaultServer(t *testing.T, r *redistest.Redis) (*Server, *RedisStore) {
	t.Helper()
	store := newRedisStoreOpts(t, RedisOptions{Addrs: []string{r.Addr()}, ProbeInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond})
	s, err := NewServer(Options{Store: store, Deadline: faultDeadline, Logger: quietLog, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.SetConfig(faultConfig); err != nil {
		t.Fatal(err)
	}
	return s, store
}

// timedCall calls the server and fails the test when the call takes longer
// than hangBound.
func timedCall(t *testing.T, s *Server, rule string) (*rlsv3.RateLimitResponse, error) {
	t.Helper()
	start := time.Now()
	resp, err := s.ShouldRateLimit(context.Background(), request(domain, desc(rule, "x-user", "erin")))
	if d := time.Since(start); d > hangBound {
		t.Errorf("a %s call took %v, more than %v", rule, d, hangBound)
	}
	return resp, err
}

// counted reports whether the call reached the store: a counted descriptor
// carries its limit.
func counted(resp *rlsv3.RateLimitResponse) bool {
	return resp != nil && resp.Statuses[0].CurrentLimit != nil
}

// checkFailing makes calls while Redis does not answer: fail-open rules
// answer OK uncounted, fail-closed ones Unavailable, all within the bound.
func checkFailing(t *testing.T, s *Server, calls int) {
	t.Helper()
	before := counterValue(s.m.failOpen.WithLabelValues("open"))
	for i := range calls {
		resp, err := timedCall(t, s, "open")
		if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK || counted(resp) {
			t.Fatalf("fail open, call %d: %v %v", i, resp, err)
		}
		_, err = timedCall(t, s, "closed")
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("fail closed, call %d: %v", i, err)
		}
	}
	if got := counterValue(s.m.failOpen.WithLabelValues("open")) - before; got != float64(calls) {
		t.Errorf("fail_open_total rose by %v, want %d", got, calls)
	}
	if got := counterValue(s.m.storeErrors.WithLabelValues("closed")); got < float64(calls) {
		t.Errorf("store_errors_total{rule=closed} = %v, want >= %d", got, calls)
	}
	if err := s.Ready(); err == nil {
		t.Error("Ready() = nil while Redis does not answer")
	} else {
		t.Logf("Ready(): %v", err)
	}
}

// waitCounted polls until both rules count again, for at most 15s.
func waitCounted(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		open, err1 := timedCall(t, s, "open")
		closed, err2 := timedCall(t, s, "closed")
		if err1 == nil && err2 == nil && counted(open) && counted(closed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls not counted 15s after Redis came back: %v %v / %v %v", open, err1, closed, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready() after recovery: %v", err)
	}
}

// waitFailingFast calls the store until it fails fast (ErrStoreUnavailable
// without trying Redis), for at most 10s.
func waitFailingFast(t *testing.T, store *RedisStore) {
	t.Helper()
	out := make([]Result, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), faultDeadline)
		store.Take(ctx, []Request{{Key: []byte("k"), Limit: Limit{Algorithm: FixedWindow, Requests: 1, Window: time.Second}, Cost: 1, Now: time.Now()}}, out)
		cancel()
		if errors.Is(out[0].Err, ErrStoreUnavailable) {
			t.Logf("failing fast: %v", out[0].Err)
			return
		}
		if out[0].Err == nil {
			t.Fatal("the store answered while Redis is down")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store still tries Redis after 10s of failures: %v", out[0].Err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisStoppedAndRestarted(t *testing.T) {
	r := redistest.Start(t)
	s, store := newFaultServer(t, r)
	for _, rule := range []string{"open", "closed"} {
		if resp, err := timedCall(t, s, rule); err != nil || !counted(resp) {
			t.Fatalf("%s before the fault: %v %v", rule, resp, err)
		}
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready(): %v", err)
	}

	// Callers keep going while Redis stops and comes back: every call
	// answers in time, OK (fail open) or Unavailable (fail closed).
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	var loadCalls atomic.Int64
	for g := range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			rule := []string{"bg-open", "bg-closed"}[g%2]
			for i := 0; i < 100_000; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				resp, err := timedCall(t, s, rule)
				loadCalls.Add(1)
				if rule == "bg-open" && (err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK) {
					t.Errorf("fail-open caller: %v %v", resp, err)
					return
				}
				if rule == "bg-closed" && err != nil && status.Code(err) != codes.Unavailable {
					t.Errorf("fail-closed caller: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)

	r.Stop()
	checkFailing(t, s, 20)
	waitFailingFast(t, store)

	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	waitCounted(t, s)
	close(stopLoad)
	load.Wait()
	t.Logf("%d calls from the background callers", loadCalls.Load())
}

// TestRedisHung: a Redis that accepts connections but answers nothing (the
// process is stopped) costs at most the deadline per call, then fails fast.
func TestRedisHung(t *testing.T) {
	r := redistest.Start(t)
	s, store := newFaultServer(t, r)
	if resp, err := timedCall(t, s, "open"); err != nil || !counted(resp) {
		t.Fatalf("before the fault: %v %v", resp, err)
	}
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	checkFailing(t, s, 10)
	waitFailingFast(t, store)
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	waitCounted(t, s)
}
