package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// caller makes one ShouldRateLimit call.
type caller func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)

// outcome is what the callers saw in the measured run.
type outcome struct {
	Calls     uint64        // counted and admitted, as expected
	Uncounted uint64        // answered OK uncounted: the store missed the deadline (fail open)
	Failed    uint64        // errors or answers other than OK
	FirstErr  string        `json:",omitempty"`
	P50, P99  time.Duration // of the counted calls
	Elapsed   time.Duration
}

// runCallers runs cfg.concurrency callers for the warm-up, then for
// cfg.duration, calling start and stop around the measured part.
func runCallers(cfg config, reqs []*rlsv3.RateLimitRequest, newCaller func(worker int) caller, start, stop func() error) (outcome, error) {
	const (
		warming = iota
		measuring
		stopping
	)
	var phase atomic.Int32
	var wg sync.WaitGroup
	hists := make([]histogram, cfg.concurrency)
	var uncounted, failed atomic.Uint64
	var firstErr atomic.Pointer[string]
	for w := range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := newCaller(w)
			ctx := context.Background()
			h := &hists[w]
			for n := w * 7919; ; n++ {
				p := phase.Load()
				if p == stopping {
					return
				}
				begin := time.Now()
				resp, err := call(ctx, reqs[n%len(reqs)])
				d := time.Since(begin)
				if p != measuring || phase.Load() != measuring {
					continue
				}
				switch {
				case err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || len(resp.GetStatuses()) != 1:
					msg := fmt.Sprintf("answered %v, %v", resp, err)
					firstErr.CompareAndSwap(nil, &msg)
					failed.Add(1)
				case resp.GetStatuses()[0].GetCurrentLimit() == nil:
					uncounted.Add(1)
				default:
					h.add(d)
				}
			}
		}()
	}
	time.Sleep(cfg.warmup)
	if err := start(); err != nil {
		phase.Store(stopping)
		wg.Wait()
		return outcome{}, err
	}
	begin := time.Now()
	phase.Store(measuring)
	time.Sleep(cfg.duration)
	phase.Store(stopping)
	elapsed := time.Since(begin)
	stopErr := stop()
	wg.Wait()

	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	o := outcome{Calls: all.n, Uncounted: uncounted.Load(), Failed: failed.Load(), P50: all.quantile(0.5), P99: all.quantile(0.99), Elapsed: elapsed}
	if e := firstErr.Load(); e != nil {
		o.FirstErr = *e
	}
	return o, stopErr
}

// loadReport is what the -load child prints when it is done: its outcome
// and its own CPU time over the measured run.
type loadReport struct {
	outcome
	CPU time.Duration
}

const measuringLine = "measuring"

// runLoad is the -load child: gRPC callers against addr. It prints
// measuringLine when the measured run starts and a loadReport when done.
func runLoad(cfg config, addr string) error {
	clients := make([]rlsv3.RateLimitServiceClient, cfg.conns)
	for i := range clients {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			// As the proxy's client: fixed windows, no BDP pings.
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20))
		if err != nil {
			return err
		}
		defer conn.Close()
		clients[i] = rlsv3.NewRateLimitServiceClient(conn)
	}
	var cpuBegin, cpuEnd time.Duration
	start := func() (err error) {
		cpuBegin, err = processCPU()
		fmt.Println(measuringLine)
		return err
	}
	stop := func() (err error) {
		cpuEnd, err = processCPU()
		return err
	}
	o, err := runCallers(cfg, requests(cfg.keys), func(w int) caller {
		c := clients[w%len(clients)]
		return func(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
			return c.ShouldRateLimit(ctx, req)
		}
	}, start, stop)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(loadReport{outcome: o, CPU: cpuEnd - cpuBegin})
}

// runLoadChild runs this program with -load against addr, calling start
// and stop as the child starts and ends its measured run.
func runLoadChild(cfg config, addr string, start, stop func() error) (loadReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return loadReport{}, err
	}
	cmd := exec.Command(exe, "-load", addr,
		"-duration", cfg.duration.String(), "-warmup", cfg.warmup.String(),
		"-concurrency", strconv.Itoa(cfg.concurrency), "-conns", strconv.Itoa(cfg.conns), "-keys", strconv.Itoa(cfg.keys))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return loadReport{}, err
	}
	if err := cmd.Start(); err != nil {
		return loadReport{}, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != measuringLine {
		return loadReport{}, fmt.Errorf("the load process did not start measuring (%q, %v)", sc.Text(), sc.Err())
	}
	if err := start(); err != nil {
		return loadReport{}, err
	}
	if !sc.Scan() {
		_ = stop()
		return loadReport{}, fmt.Errorf("the load process ended without a report: %v", sc.Err())
	}
	if err := stop(); err != nil {
		return loadReport{}, err
	}
	var rep loadReport
	if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
		return loadReport{}, fmt.Errorf("the load process' report %q: %w", sc.Text(), err)
	}
	return rep, nil
}
