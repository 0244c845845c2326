// Command authz measures the external authorization service (package auth)
// deciding requests that carry a JWT, for RS256 and ES256 tokens:
//
//   - over real gRPC on 127.0.0.1: the service runs in a child process (this
//     program re-executed with -serve) and this process calls
//     Authorization/Check at a fixed concurrency for a fixed time, both on
//     the machine's CPUs, through the server `sekisho authz` runs
//     (internal/unarygrpc) and, for comparison, grpc-go's with
//     auth.GRPCServerOptions and a plain grpc.NewServer();
//   - on one core: the child with GOMAXPROCS 1 pinned to CPU 0 and the
//     callers pinned to CPU 1, so the service's capacity is one core's and
//     the callers do not take its CPU; saturated, with the verified token
//     cached and with no token cache (every decision verifies a signature),
//     then at fixed rates (-rates) with each latency measured from the
//     call's due time;
//   - in process: Server.Check called directly, without gRPC.
//
// For each it reports decisions per second, the p50 and p99 latency seen by
// the caller, and decisions per CPU-second of the deciding process (its
// user + system time from /proc/PID/stat over the measured interval). Nothing
// leaves 127.0.0.1 and the child is stopped however the run ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sekisho/sekisho/test/bench/internal/pace"
)

type config struct {
	concurrency int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	out         string
	cpuProfile  string
	rates       []int
	// oneCoreCallers are the concurrencies of the RS256 runs on one core.
	oneCoreCallers []int
	ratesOnly      bool
}

func main() {
	var cfg config
	serveCfg := flag.String("serve", "", "internal: serve Check over gRPC on 127.0.0.1 with this config file")
	var so serverOpts
	flag.StringVar(&so.server, "server", "unarygrpc", "internal: with -serve, the gRPC server: unarygrpc (as sekisho authz), grpc-go (auth.GRPCServerOptions) or plain (grpc.NewServer())")
	flag.IntVar(&so.cpu, "serve-cpu", -1, "internal: with -serve, GOMAXPROCS 1 and pinned to this CPU")
	flag.BoolVar(&so.noCache, "no-token-cache", false, "internal: with -serve, verify every token (no verified-token cache)")
	oneCoreC := flag.String("one-core-c", "4,8,16,32", "concurrencies of the RS256 runs on one core (token cached)")
	rates := flag.String("rates", "5000,10000,15000,20000", "decisions per second of the fixed-rate runs on one core (RS256, token cached); empty to skip them")
	flag.IntVar(&cfg.concurrency, "c", 32, "concurrent callers")
	flag.IntVar(&cfg.conns, "conns", 2, "gRPC connections the callers share")
	flag.DurationVar(&cfg.duration, "d", 5*time.Second, "measured time of each run")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the first gRPC server child (internal/unarygrpc's, as sekisho authz) to this file")
	flag.BoolVar(&cfg.ratesOnly, "rates-only", false, "only the fixed-rate runs on one core (with -cpuprofile: a profile of their server)")
	flag.Parse()

	if *serveCfg != "" {
		so.profile = cfg.cpuProfile
		if err := serve(*serveCfg, so); err != nil {
			fmt.Fprintln(os.Stderr, "bench authz server:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.concurrency < 1 || cfg.conns < 1 || cfg.duration <= 0 {
		fmt.Fprintln(os.Stderr, "bench authz: -c, -conns and -d must be positive")
		os.Exit(2)
	}
	var err error
	if cfg.rates, err = positives("-rates", *rates); err == nil {
		cfg.oneCoreCallers, err = positives("-one-core-c", *oneCoreC)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench authz:", err)
		os.Exit(2)
	}

	tmp, err := os.MkdirTemp("", "sekisho-bench-authz-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a temp folder:", err)
		os.Exit(1)
	}
	var child *serverProc
	cleanup := func() {
		if child != nil {
			child.stop()
		}
		os.RemoveAll(tmp)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\n%v: stopping\n", s)
		cleanup()
		os.Exit(130)
	}()

	report, err := run(cfg, tmp, &child)
	if err == nil {
		fmt.Print(report)
		if cfg.out != "" {
			if werr := os.WriteFile(cfg.out, []byte(report), 0o644); werr != nil {
				err = fmt.Errorf("writing %s: %w", cfg.out, werr)
			}
		}
	}
	signal.Stop(sig)
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench authz:", err)
		os.Exit(1)
	}
}

// positives reads a comma-separated list of positive numbers.
func positives(flagName, list string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench authz: "+format+"\n", args...)
}

// row is one measured run.
type row struct {
	section   string // "shared", "one core" or "in process"
	mode, alg string
	fixedRate int // calls per second; 0 for a run at fixed concurrency
	callers   int // the concurrency of a run at fixed concurrency; 0: -c
	res       loadResult
}

const (
	secShared  = "shared"
	secOneCore = "one core"
	secInProc  = "in process"
)

func run(cfg config, tmp string, child **serverProc) (string, error) {
	loadAvg := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(strings.Fields(string(b))) > 0 {
		loadAvg = strings.Fields(string(b))[0]
	}
	progress("generating keys and tokens")
	fx, err := newFixture()
	if err != nil {
		return "", err
	}
	cfgPath, err := fx.writeConfig(tmp)
	if err != nil {
		return "", err
	}
	profile := ""
	if cfg.cpuProfile != "" {
		if profile, err = filepath.Abs(cfg.cpuProfile); err != nil {
			return "", err
		}
	}

	// measure starts a server child, runs each of runs against it, and
	// stops it.
	var rows []row
	// With lean, the calls go through h2Caller instead of grpc-go's client.
	measure := func(so serverOpts, lean bool, runs []row) error {
		sp, err := startServer(cfgPath, so)
		if err != nil {
			return err
		}
		*child = sp
		defer func() { sp.stop(); *child = nil }()
		var client *grpcCaller
		if !lean {
			if client, err = newGRPCCaller(sp.addr, cfg.conns); err != nil {
				return err
			}
			defer client.close()
		}
		cpu := func() time.Duration { return pace.ProcCPU(sp.pid()) }
		for _, r := range runs {
			var call func() func(context.Context) error
			if lean {
				h2, err := newH2Caller(sp.addr, cfg.conns, fx.request(r.alg))
				if err != nil {
					return err
				}
				defer h2.close()
				call = h2.call()
			} else {
				call = client.call(fx.request(r.alg))
			}
			if r.fixedRate > 0 {
				progress("%s, %s: %d decisions/s for %s", r.mode, r.alg, r.fixedRate, cfg.duration)
				r.res, err = runRate(cfg, r.fixedRate, call, cpu)
			} else {
				if r.callers == 0 {
					r.callers = cfg.concurrency
				}
				progress("%s, %s: %d callers for %s", r.mode, r.alg, r.callers, cfg.duration)
				r.res, err = runLoad(cfg, r.callers, call, cpu)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", r.mode, r.alg, err)
			}
			rows = append(rows, r)
		}
		return nil
	}

	// On the machine's CPUs, shared with the callers.
	if !cfg.ratesOnly {
		if err := measure(serverOpts{cpu: -1, profile: profile}, false, []row{
			{section: secShared, mode: "gRPC, 127.0.0.1, internal/unarygrpc (sekisho authz)", alg: "RS256"},
			{section: secShared, mode: "gRPC, 127.0.0.1, internal/unarygrpc (sekisho authz)", alg: "ES256"},
		}); err != nil {
			return "", err
		}
		if err := measure(serverOpts{cpu: -1, server: "grpc-go"}, false, []row{
			{section: secShared, mode: "gRPC, 127.0.0.1, grpc-go with auth.GRPCServerOptions", alg: "RS256"},
		}); err != nil {
			return "", err
		}
		if err := measure(serverOpts{cpu: -1, server: "plain"}, false, []row{
			{section: secShared, mode: "gRPC, 127.0.0.1, plain grpc.NewServer()", alg: "RS256"},
		}); err != nil {
			return "", err
		}
	}

	// One core for the service, another for the callers.
	if runtime.NumCPU() >= 2 {
		if err := pace.Pin(1); err != nil {
			return "", err
		}
		// One processor for this process's one CPU: two would only take
		// turns on it.
		procs := runtime.GOMAXPROCS(1)
		var oneCore []row
		oneProfile := ""
		if cfg.ratesOnly {
			oneProfile = profile
		} else {
			for _, c := range cfg.oneCoreCallers {
				oneCore = append(oneCore, row{section: secOneCore, mode: fmt.Sprintf("%d callers, token cached", c), alg: "RS256", callers: c})
			}
			oneCore = append(oneCore, row{section: secOneCore, mode: fmt.Sprintf("%d callers, token cached", cfg.concurrency), alg: "ES256"})
		}
		for _, r := range cfg.rates {
			oneCore = append(oneCore, row{section: secOneCore, mode: fmt.Sprintf("fixed rate %s/s, token cached", thousands(float64(r))), alg: "RS256", fixedRate: r})
		}
		err := measure(serverOpts{cpu: 0, profile: oneProfile}, true, oneCore)
		if err == nil && !cfg.ratesOnly {
			err = measure(serverOpts{cpu: 0, noCache: true}, true, []row{
				{section: secOneCore, mode: fmt.Sprintf("%d callers, no token cache", cfg.concurrency), alg: "RS256"},
				{section: secOneCore, mode: fmt.Sprintf("%d callers, no token cache", cfg.concurrency), alg: "ES256"},
			})
		}
		if err == nil && !cfg.ratesOnly {
			// The same calls to grpc-go's server, for comparison.
			var cmp []row
			for _, c := range cfg.oneCoreCallers {
				cmp = append(cmp, row{section: secOneCore, mode: fmt.Sprintf("grpc-go server: %d callers, token cached", c), alg: "RS256", callers: c})
			}
			err = measure(serverOpts{cpu: 0, server: "grpc-go"}, true, cmp)
		}
		runtime.GOMAXPROCS(procs)
		if perr := pace.Pin(); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return "", err
		}
	} else {
		progress("one CPU only: skipping the one-core runs")
	}

	if cfg.ratesOnly {
		return report(cfg, loadAvg, rows), nil
	}
	inproc, err := newInProcessCaller(fx)
	if err != nil {
		return "", err
	}
	for _, alg := range []string{"RS256", "ES256"} {
		progress("in process, %s: %d callers for %s", alg, cfg.concurrency, cfg.duration)
		res, err := runLoad(cfg, cfg.concurrency, inproc.call(fx.request(alg)), pace.SelfCPU)
		if err != nil {
			return "", fmt.Errorf("in process %s: %w", alg, err)
		}
		rows = append(rows, row{section: secInProc, mode: "in process", alg: alg, res: res})
	}
	return report(cfg, loadAvg, rows), nil
}

func report(cfg config, loadAvg string, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Authorization service: Check decisions\n\n")
	fmt.Fprintf(&b, "Command: `go run ./test/bench/authz` (%d callers for saturated runs, %s measured after %s warm-up; %d gRPC connections). "+
		"%s, %s, %d CPUs, 1-minute load average %s at the start.\n\n",
		cfg.concurrency, cfg.duration, cfg.warmup, cfg.conns, time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runtime.Version(), runtime.NumCPU(), loadAvg)
	b.WriteString("A policy with a JWT provider (RSA 2048 and P-256 keys, claim headers) and six authorization rules; " +
		"every request carries the same valid token, so its key is cached and, unless the row says otherwise, so is its verification " +
		"(the steady state of a client reusing its token, as Envoy's jwt_cache_config). " +
		"Decisions per CPU-second is decisions ÷ CPU time (user + system) of the deciding process: the gRPC server child, or this process in process.\n\n")

	b.WriteString("### The service alone on one core\n\n")
	b.WriteString("The server child runs with GOMAXPROCS 1, every thread pinned to CPU 0; the callers run with GOMAXPROCS 1 pinned to CPU 1. " +
		"Runs at a fixed concurrency keep every caller's call in flight (closed loop, as ghz or h2load measure: latency is the time of each call, so with few callers it is mostly the service's own); " +
		"fixed-rate runs hand calls out on schedule to 64 workers and time each from its due time (open loop: time waiting behind a slow call counts; the generator's own lateness is included, and shown). " +
		"The callers speak HTTP/2 through a lean client of the harness's own (the request's frames encoded once, one write per call, one reader per connection), so that they need less of their core than the service needs of its.\n\n")
	b.WriteString("| run | token | decisions/s | p50 | p99 | max | service CPU | decisions per CPU-second | callers' CPU | generator lateness p99 | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.section != secOneCore {
			continue
		}
		x := r.res
		late := "–"
		if r.fixedRate > 0 {
			late = ms(x.lateP99)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.0f%% of the core | %s | %.0f%% of the core | %s | %d |\n",
			r.mode, r.alg, thousands(x.rate()), ms(x.p50), ms(x.p99), ms(x.max),
			100*x.cpu.Seconds()/x.elapsed.Seconds(), perCPU(x), 100*x.callers.Seconds()/x.elapsed.Seconds(), late, x.errors)
	}

	b.WriteString("\n### Service and callers sharing the machine's CPUs\n\n")
	b.WriteString("| path | token | decisions/s | p50 | p99 | max | deciding process CPU | decisions per CPU-second | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.section == secOneCore {
			continue
		}
		x := r.res
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f s (%.0f%% of %d cores) | %s | %d |\n",
			r.mode, r.alg, thousands(x.rate()), ms(x.p50), ms(x.p99), ms(x.max),
			x.cpu.Seconds(), 100*x.cpu.Seconds()/x.elapsed.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU(),
			perCPU(x), x.errors)
	}
	b.WriteString("\nAt fixed concurrency every caller has a call in flight all the time, so latency there is mostly queueing: callers ÷ decisions/s.\n")

	b.WriteString("\nAim: at least 20 000 RS256 decisions per second per core, with p99 under 1 ms.\n")
	for _, r := range rows {
		if r.section != secOneCore || r.alg != "RS256" || strings.HasPrefix(r.mode, "grpc-go") {
			continue
		}
		x := r.res
		switch {
		case r.fixedRate == 0 && strings.Contains(r.mode, "no token cache"):
			fmt.Fprintf(&b, "- one core, RS256, every token's signature verified, %d callers: %s decisions/s, p99 %s\n", r.callers, thousands(x.rate()), ms(x.p99))
		case r.fixedRate == 0:
			fmt.Fprintf(&b, "- one core, RS256, %d callers: %s decisions/s with p99 %s (%s)\n", r.callers, thousands(x.rate()), ms(x.p99),
				metOrNot(x.rate() >= 20000 && x.p99 < time.Millisecond))
		default:
			fmt.Fprintf(&b, "- one core, RS256 arriving at a fixed %s/s: p99 %s from the due time (%s)\n", thousands(float64(r.fixedRate)), ms(x.p99),
				metOrNot(x.p99 < time.Millisecond))
		}
	}
	return b.String()
}

// perCPU is decisions per CPU-second of the deciding process.
func perCPU(x loadResult) string {
	if x.cpu <= 0 {
		return "n/a"
	}
	return thousands(float64(x.n) / x.cpu.Seconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// thousands writes a rate rounded to a whole number with thin groups
// ("23 456").
func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}
