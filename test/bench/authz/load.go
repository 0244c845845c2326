package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loadResult is one measured run.
type loadResult struct {
	n        int64
	errors   int64
	elapsed  time.Duration
	cpu      time.Duration // of the deciding process over the run
	p50, p99 time.Duration
	max      time.Duration
}

func (r loadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runLoad runs cfg.concurrency workers, each calling its own function from
// newCall back to back: first for the warm-up (not measured), then for
// cfg.duration. cpu reads the CPU time of the process that decides.
func runLoad(cfg config, newCall func() func(context.Context) error, cpu func() time.Duration) (loadResult, error) {
	calls := make([]func(context.Context) error, cfg.concurrency)
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
	cpu0 := cpu()
	lats, errs, elapsed := phase(calls, cfg.duration, true)
	cpu1 := cpu()

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res := loadResult{errors: errs, elapsed: elapsed, cpu: cpu1 - cpu0}
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

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU is the user + system CPU time of a process, 0 when it cannot be
// read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * clockTick
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runRate calls at a fixed rate for d (after the warm-up, at the same
// rate): a dispatcher hands out calls on schedule to a pool of workers, so
// the latency is that of a service under this load rather than saturated.
// Each latency is measured from the call's start.
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
	cpu0 := cpu()
	lats, errs, elapsed := ratePhase(calls, rate, cfg.duration)
	cpu1 := cpu()
	res := loadResult{errors: errs, elapsed: elapsed, cpu: cpu1 - cpu0, n: int64(len(lats))}
	if res.n == 0 {
		return res, fmt.Errorf("no call succeeded (%d errors)", errs)
	}
	slices.Sort(lats)
	res.p50 = lats[len(lats)/2]
	res.p99 = lats[min(len(lats)-1, len(lats)*99/100)]
	res.max = lats[len(lats)-1]
	return res, nil
}

func ratePhase(calls []func(context.Context) error, rate int, d time.Duration) ([]time.Duration, int64, time.Duration) {
	jobs := make(chan struct{}, len(calls))
	var mu sync.Mutex
	lats := make([]time.Duration, 0, int(float64(rate)*d.Seconds())+1)
	var errs int64
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				err := call(ctx)
				l := time.Since(t0)
				cancel()
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lats = append(lats, l)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	total := int(float64(rate) * d.Seconds())
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return lats, errs, time.Since(start)
}
