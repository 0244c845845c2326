package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type algStep struct {
	at        time.Duration // since epoch
	cost      uint64
	times     int // repeat this step (default 1); the expectations hold for the last
	allowed   bool
	remaining uint64
	reset     time.Duration
	retry     time.Duration
}

var algorithmCases = []struct {
	name  string
	limit Limit
	steps []algStep
}{
	{
		name:  "FixedWindow 3 per second",
		limit: Limit{Algorithm: FixedWindow, Requests: 3, Window: time.Second},
		steps: []algStep{
			{at: 0, cost: 1, allowed: true, remaining: 2, reset: time.Second},
			{at: 100 * time.Millisecond, cost: 1, allowed: true, remaining: 1, reset: 900 * time.Millisecond},
			{at: 200 * time.Millisecond, cost: 1, allowed: true, remaining: 0, reset: 800 * time.Millisecond},
			{at: 300 * time.Millisecond, cost: 1, allowed: false, remaining: 0, reset: 700 * time.Millisecond, retry: 700 * time.Millisecond},
			{at: 300 * time.Millisecond, cost: 0, allowed: true, remaining: 0, reset: 700 * time.Millisecond},
			{at: 999 * time.Millisecond, cost: 1, allowed: false, remaining: 0, reset: time.Millisecond, retry: time.Millisecond},
			// A new window.
			{at: 1000 * time.Millisecond, cost: 1, allowed: true, remaining: 2, reset: time.Second},
			// Denied requests do not consume.
			{at: 1000 * time.Millisecond, cost: 3, allowed: false, remaining: 2, reset: time.Second, retry: time.Second},
			{at: 1000 * time.Millisecond, cost: 2, allowed: true, remaining: 0, reset: time.Second},
			// More than the limit never fits.
			{at: 2500 * time.Millisecond, cost: 4, allowed: false, remaining: 3, reset: 500 * time.Millisecond, retry: 500 * time.Millisecond},
			// Two windows later: nothing left of the old ones.
			{at: 4000 * time.Millisecond, cost: 3, allowed: true, remaining: 0, reset: time.Second},
		},
	},
	{
		name:  "FixedWindow 100 per minute",
		limit: Limit{Algorithm: FixedWindow, Requests: 100, Window: time.Minute},
		steps: []algStep{
			{at: 30 * time.Second, cost: 1, times: 100, allowed: true, remaining: 0, reset: 30 * time.Second},
			{at: 59 * time.Second, cost: 1, times: 5, allowed: false, remaining: 0, reset: time.Second, retry: time.Second},
			{at: 60 * time.Second, cost: 1, times: 100, allowed: true, remaining: 0, reset: time.Minute},
		},
	},
	{
		name:  "SlidingWindow 10 per minute",
		limit: Limit{Algorithm: SlidingWindow, Requests: 10, Window: time.Minute},
		steps: []algStep{
			// No previous window: exactly N in the first one.
			{at: 0, cost: 1, allowed: true, remaining: 9, reset: time.Minute},
			{at: 0, cost: 1, times: 9, allowed: true, remaining: 0, reset: time.Minute},
			// Next window, when 10*(1-f) + 1 <= 10: f >= 0.1, 6s in: 66s.
			{at: 0, cost: 1, allowed: false, remaining: 0, reset: time.Minute, retry: 66 * time.Second},
			{at: 65999 * time.Millisecond, cost: 1, allowed: false, remaining: 0, reset: 54001 * time.Millisecond, retry: time.Millisecond},
			{at: 66 * time.Second, cost: 1, allowed: true, remaining: 0, reset: 54 * time.Second},
			// Estimate 10*0.9+1 = 10; with one more at 10*(1-f)+2 <= 10: f = 0.2, 6s later.
			{at: 66 * time.Second, cost: 1, allowed: false, remaining: 0, reset: 54 * time.Second, retry: 6 * time.Second},
			// Half way: 10*0.5 + 1 = 6, room for 4.
			{at: 90 * time.Second, cost: 1, allowed: true, remaining: 3, reset: 30 * time.Second},
			{at: 90 * time.Second, cost: 3, allowed: true, remaining: 0, reset: 30 * time.Second},
			{at: 90 * time.Second, cost: 1, allowed: false, remaining: 0, reset: 30 * time.Second, retry: 6 * time.Second},
			// The next window weighs this one's 5: 5*0.75 + 0 at 135s.
			{at: 135 * time.Second, cost: 6, allowed: true, remaining: 0, reset: 45 * time.Second},
			{at: 135 * time.Second, cost: 11, allowed: false, remaining: 0, reset: 45 * time.Second, retry: 45 * time.Second},
			// Two windows on, the previous window is empty: N again.
			{at: 240 * time.Second, cost: 10, allowed: true, remaining: 0, reset: time.Minute},
		},
	},
	{
		name:  "TokenBucket 10 per second burst 5",
		limit: Limit{Algorithm: TokenBucket, Requests: 10, Burst: 5, Window: time.Second},
		steps: []algStep{
			{at: 0, cost: 1, allowed: true, remaining: 4, reset: 100 * time.Millisecond},
			{at: 0, cost: 1, times: 4, allowed: true, remaining: 0, reset: 500 * time.Millisecond},
			{at: 0, cost: 1, allowed: false, remaining: 0, reset: 500 * time.Millisecond, retry: 100 * time.Millisecond},
			{at: 50 * time.Millisecond, cost: 1, allowed: false, remaining: 0, reset: 450 * time.Millisecond, retry: 50 * time.Millisecond},
			{at: 100 * time.Millisecond, cost: 1, allowed: true, remaining: 0, reset: 500 * time.Millisecond},
			// Refills up to the capacity, not beyond.
			{at: 2 * time.Second, cost: 3, allowed: true, remaining: 2, reset: 300 * time.Millisecond},
			{at: 2 * time.Second, cost: 6, allowed: false, remaining: 2, reset: 300 * time.Millisecond, retry: 300 * time.Millisecond},
			{at: 2 * time.Second, cost: 3, allowed: false, remaining: 2, reset: 300 * time.Millisecond, retry: 100 * time.Millisecond},
			{at: 2100 * time.Millisecond, cost: 3, allowed: true, remaining: 0, reset: 500 * time.Millisecond},
		},
	},
	{
		name:  "TokenBucket 60 per minute",
		limit: Limit{Algorithm: TokenBucket, Requests: 60, Window: time.Minute},
		steps: []algStep{
			{at: 0, cost: 60, allowed: true, remaining: 0, reset: time.Minute},
			{at: 500 * time.Millisecond, cost: 1, allowed: false, remaining: 0, reset: 59500 * time.Millisecond, retry: 500 * time.Millisecond},
			{at: 1500 * time.Millisecond, cost: 1, allowed: true, remaining: 0, reset: 59500 * time.Millisecond},
		},
	},
}

// TestAlgorithms runs each algorithm's steps against every store with a fake
// clock: both stores must give exactly these answers.
func TestAlgorithms(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			store := kind.new(t)
			for _, tc := range algorithmCases {
				t.Run(tc.name, func(t *testing.T) {
					key := []byte("test|" + t.Name())
					for i, st := range tc.steps {
						n := max(st.times, 1)
						var got Result
						for range n {
							out := make([]Result, 1)
							store.Take(context.Background(), []Request{{Key: key, Limit: tc.limit, Cost: st.cost, Now: epoch.Add(st.at)}}, out)
							got = out[0]
							if got.Err != nil {
								t.Fatalf("step %d: %v", i, got.Err)
							}
							if got.Allowed != st.allowed {
								break
							}
						}
						want := Result{Allowed: st.allowed, Remaining: st.remaining, ResetAfter: st.reset, RetryAfter: st.retry}
						if got != want {
							t.Errorf("step %d (at %v, cost %d, x%d):\n got %+v\nwant %+v", i, st.at, st.cost, n, got, want)
						}
					}
				})
			}
		})
	}
}

// TestConcurrentAdmitsExactlyN: many goroutines against one counter admit
// exactly N per window (per fill, for the bucket), in every store.
func TestConcurrentAdmitsExactlyN(t *testing.T) {
	const n, workers, perWorker = 100, 32, 20
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			store := kind.new(t)
			for _, alg := range []Algorithm{FixedWindow, SlidingWindow, TokenBucket} {
				t.Run(alg.String(), func(t *testing.T) {
					limit := Limit{Algorithm: alg, Requests: n, Window: time.Hour}
					key := []byte("test|" + t.Name())
					// Three waves, each in a later window where the previous
					// one no longer counts (or the bucket is full again).
					for wave := range 3 {
						now := epoch.Add(time.Duration(wave) * 2 * time.Hour)
						var admitted, errs atomic.Int64
						var wg sync.WaitGroup
						for range workers {
							wg.Add(1)
							go func() {
								defer wg.Done()
								out := make([]Result, 1)
								for range perWorker {
									store.Take(context.Background(), []Request{{Key: key, Limit: limit, Cost: 1, Now: now}}, out)
									switch {
									case out[0].Err != nil:
										errs.Add(1)
									case out[0].Allowed:
										admitted.Add(1)
									}
								}
							}()
						}
						wg.Wait()
						if errs.Load() != 0 || admitted.Load() != n {
							t.Errorf("wave %d: %d of %d admitted (want exactly %d), %d errors", wave, admitted.Load(), workers*perWorker, n, errs.Load())
						}
					}
				})
			}
		})
	}
}

// TestStoreKeysSeparateShapes: the same counter key under rules of another
// algorithm or window does not share state.
func TestStoreKeysSeparateShapes(t *testing.T) {
	for _, kind := range storeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			store := kind.new(t)
			key := []byte("test|shapes")
			out := make([]Result, 1)
			for _, l := range []Limit{
				{Algorithm: FixedWindow, Requests: 1, Window: time.Minute},
				{Algorithm: FixedWindow, Requests: 1, Window: time.Hour},
				{Algorithm: SlidingWindow, Requests: 1, Window: time.Minute},
				{Algorithm: TokenBucket, Requests: 1, Window: time.Minute},
			} {
				store.Take(context.Background(), []Request{{Key: key, Limit: l, Cost: 1, Now: epoch}}, out)
				if out[0].Err != nil || !out[0].Allowed {
					t.Errorf("%s per %v: first request: %+v", l.Algorithm, l.Window, out[0])
				}
			}
		})
	}
}

func TestMemoryStoreSweepsExpiredCounters(t *testing.T) {
	store := NewMemoryStore(MemoryOptions{SweepInterval: time.Second}).(*MemoryStore)
	out := make([]Result, 1)
	take := func(key string, l Limit, at time.Duration) {
		store.Take(context.Background(), []Request{{Key: []byte(key), Limit: l, Cost: 1, Now: epoch.Add(at)}}, out)
	}
	perSecond := Limit{Algorithm: FixedWindow, Requests: 5, Window: time.Second}
	perDay := Limit{Algorithm: FixedWindow, Requests: 5, Window: 24 * time.Hour}
	for i := range 200 {
		take("short|"+string(rune('a'+i%26))+string(rune('a'+i/26)), perSecond, 0)
	}
	take("long", perDay, 0)
	if got := store.Len(); got != 201 {
		t.Fatalf("%d counters, want 201", got)
	}
	// Past every per-second counter's expiry, each shard sweeps when next
	// used: touch every shard through new keys.
	for i := range 2000 {
		take("later|"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), perSecond, 10*time.Second)
	}
	store.Take(context.Background(), []Request{{Key: []byte("long"), Limit: perDay, Cost: 1, Now: epoch.Add(10 * time.Second)}}, out)
	if !out[0].Allowed || out[0].Remaining != 3 {
		t.Errorf("the per-day counter was lost: %+v", out[0])
	}
	// Still there: the per-day counter and the 2000 new ones.
	if got := store.Len(); got != 2001 {
		t.Errorf("%d counters after the sweep, want 2001", got)
	}
}
