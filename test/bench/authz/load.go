package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sekisho/sekisho/test/bench/internal/pace"
)

// loadResult is one measured run.
type loadResult struct {
	n        int64
	errors   int64
	elapsed  time.Duration
	cpu      time.Duration // of the deciding process over the run
	p50, p99 time.Duration
	max      time.Duration
	lateP99  time.Duration // fixed rate: p99 of the generator's own lateness
	callers  time.Duration // CPU time of this process (the callers) over the run
}

func (r loadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runLoad runs callers workers, each calling its own function from
// newCall back to back: first for the warm-up (not measured), then for
// cfg.duration. cpu reads the CPU time of the process that decides.
func runLoad(cfg config, callers int, newCall func() func(context.Context) error, cpu func() time.Duration) (loadResult, error) {
	calls := make([]func(context.Context) error, callers)
	for i := range calls {
		calls[i] = newCall()
	}
	// One call first: a setup problem fails the run at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := calls[0](ctx)
	cancel()
	if err != nil {
		return loadResult{}, err
	}
	if cfg.warmup > 0 {
		phase(calls, cfg.warmup, false)
	}
	cpu0, self0 := cpu(), pace.SelfCPU()
	lats, errs, elapsed := phase(calls, cfg.duration, true)
	cpu1, self1 := cpu(), pace.SelfCPU()

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res := loadResult{errors: errs, elapsed: elapsed, cpu: cpu1 - cpu0, callers: self1 - self0}
	res.n = int64(len(all))
	if res.n == 0 {
		return res, fmt.Errorf("no call succeeded (%d errors)", errs)
	}
	if errs > 0 {
		progress("%d calls failed", errs)
	}
	slices.Sort(all)
	res.p50 = all[len(all)/2]
	res.p99 = all[min(len(all)-1, len(all)*99/100)]
	res.max = all[len(all)-1]
	return res, nil
}

// phase runs the workers for d and returns each one's latencies of
// successful calls, the number of failed calls and the time it took.
func phase(calls []func(context.Context) error, d time.Duration, record bool) ([][]time.Duration, int64, time.Duration) {
	lats := make([][]time.Duration, len(calls))
	errs := make([]int64, len(calls))
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l []time.Duration
			if record {
				l = make([]time.Duration, 0, 1<<16)
			}
			ctx := context.Background()
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := call(cctx)
				cancel()
				if err != nil {
					errs[i]++
					continue
				}
				if record {
					l = append(l, time.Since(t0))
				}
			}
			lats[i] = l
		}()
	}
	wg.Wait()
	var e int64
	for _, x := range errs {
		e += x
	}
	return lats, e, time.Since(start)
}

// runRate calls at rate per second for cfg.duration, after a warm-up at the
// same rate: call i is due at start + i/rate whatever happened to earlier
// calls, a pool of workers takes them as they come due, and each latency
// is measured from the call's due time, so time spent waiting for a free
// worker behind a slow call counts (no coordinated omission).
func runRate(cfg config, rate int, newCall func() func(context.Context) error, cpu func() time.Duration) (loadResult, error) {
	const workers = 64
	calls := make([]func(context.Context) error, workers)
	for i := range calls {
		calls[i] = newCall()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := calls[0](ctx)
	cancel()
	if err != nil {
		return loadResult{}, err
	}
	if cfg.warmup > 0 {
		ratePhase(calls, rate, cfg.warmup)
	}
	cpu0, self0 := cpu(), pace.SelfCPU()
	lats, errs, late, elapsed := ratePhase(calls, rate, cfg.duration)
	cpu1, self1 := cpu(), pace.SelfCPU()
	res := loadResult{errors: errs, elapsed: elapsed, cpu: cpu1 - cpu0, callers: self1 - self0, n: int64(len(lats))}
	if res.n == 0 {
		return res, fmt.Errorf("no call succeeded (%d errors)", errs)
	}
	slices.Sort(lats)
	slices.Sort(late)
	res.p50 = pace.Percentile(lats, 0.50)
	res.p99 = pace.Percentile(lats, 0.99)
	res.max = lats[len(lats)-1]
	res.lateP99 = pace.Percentile(late, 0.99)
	return res, nil
}

// ratePhase is one fixed-rate run: the latencies of the calls that
// succeeded, the number that failed, the generator's own lateness in
// handing calls out, and the time from the first due time to the last
// answer.
func ratePhase(calls []func(context.Context) error, rate int, d time.Duration) ([]time.Duration, int64, []time.Duration, time.Duration) {
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	due := make(chan pace.Tick, total) // never blocks the ticker
	lats := make([][]time.Duration, len(calls))
	errs := make([]int64, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, total/len(calls)+16)
			for t := range due {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := call(ctx)
				cancel()
				if err != nil {
					errs[i]++
					continue
				}
				l = append(l, time.Since(t.At))
			}
			lats[i] = l
		}()
	}
	start := time.Now().Add(5 * time.Millisecond)
	late := pace.Schedule(start, interval, total, due)
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	var e int64
	for i := range calls {
		all = append(all, lats[i]...)
		e += errs[i]
	}
	return all, e, late, elapsed
}
