// Command authz measures the external authorization service (package auth)
// deciding requests that carry a JWT whose key and verification are cached,
// for RS256 and ES256 tokens:
//
//   - over real gRPC on 127.0.0.1: the service runs in a child process (this
//     program re-executed with -serve) and this process calls
//     Authorization/Check at a fixed concurrency for a fixed time;
//   - over gRPC at a fixed rate (-rate), for the latency of a service that
//     is not saturated;
//   - with a plain grpc.NewServer() instead of auth.GRPCServerOptions, for
//     comparison;
//   - in process: Server.Check called directly, without gRPC.
//
// For each it reports decisions per second, the p50 and p99 latency seen by
// the caller, and decisions per CPU-second of the deciding process (its
// user + system time from /proc/PID/stat over the measured interval), which
// is the rate one fully busy core sustains. Nothing leaves 127.0.0.1 and the
// child is stopped however the run ends.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type config struct {
	concurrency int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	out         string
	cpuProfile  string
	rate        int
}

func main() {
	var cfg config
	serveCfg := flag.String("serve", "", "internal: serve Check over gRPC on 127.0.0.1 with this config file")
	plain := flag.Bool("plain", false, "internal: with -serve, a gRPC server without auth.GRPCServerOptions")
	flag.IntVar(&cfg.concurrency, "c", 32, "concurrent callers")
	flag.IntVar(&cfg.conns, "conns", 2, "gRPC connections the callers share")
	flag.DurationVar(&cfg.duration, "d", 5*time.Second, "measured time of each run")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.IntVar(&cfg.rate, "rate", 5000, "decisions per second of the fixed-rate gRPC run (RS256; 0 to skip it)")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the gRPC server child made with auth.GRPCServerOptions to this file")
	flag.Parse()

	if *serveCfg != "" {
		if err := serve(*serveCfg, cfg.cpuProfile, *plain); err != nil {
			fmt.Fprintln(os.Stderr, "bench authz server:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.concurrency < 1 || cfg.conns < 1 || cfg.duration <= 0 {
		fmt.Fprintln(os.Stderr, "bench authz: -c, -conns and -d must be positive")
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

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench authz: "+format+"\n", args...)
}

// row is one measured run.
type row struct {
	mode, alg string
	res       loadResult
}

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

	var rows []row
	profile := ""
	if cfg.cpuProfile != "" {
		if profile, err = filepath.Abs(cfg.cpuProfile); err != nil {
			return "", err
		}
	}
	// The service's server (auth.GRPCServerOptions) with both tokens, then
	// a plain grpc.NewServer() with RS256 for comparison.
	for _, run := range []struct {
		mode  string
		plain bool
		algs  []string
	}{
		{"gRPC, 127.0.0.1", false, []string{"RS256", "ES256"}},
		{"gRPC, 127.0.0.1, plain grpc.NewServer()", true, []string{"RS256"}},
	} {
		progress("starting the gRPC server (%s)", run.mode)
		prof := profile
		if run.plain {
			prof = ""
		}
		sp, err := startServer(cfgPath, prof, run.plain)
		if err != nil {
			return "", err
		}
		*child = sp
		client, err := newGRPCCaller(sp.addr, cfg.conns)
		if err != nil {
			return "", err
		}
		cpu := func() time.Duration { return procCPU(sp.pid()) }
		for _, alg := range run.algs {
			progress("%s, %s: %d callers for %s", run.mode, alg, cfg.concurrency, cfg.duration)
			res, err := runLoad(cfg, client.call(fx.request(alg)), cpu)
			if err != nil {
				client.close()
				return "", fmt.Errorf("%s %s: %w", run.mode, alg, err)
			}
			rows = append(rows, row{run.mode, alg, res})
		}
		if !run.plain && cfg.rate > 0 {
			progress("%s, RS256: %d decisions/s for %s", run.mode, cfg.rate, cfg.duration)
			res, err := runRate(cfg, cfg.rate, client.call(fx.request("RS256")), cpu)
			if err != nil {
				client.close()
				return "", fmt.Errorf("%s at %d/s: %w", run.mode, cfg.rate, err)
			}
			rows = append(rows, row{fmt.Sprintf("%s, fixed rate %d/s", run.mode, cfg.rate), "RS256", res})
		}
		client.close()
		sp.stop()
		*child = nil
	}

	inproc, err := newInProcessCaller(fx)
	if err != nil {
		return "", err
	}
	for _, alg := range []string{"RS256", "ES256"} {
		progress("in process, %s: %d callers for %s", alg, cfg.concurrency, cfg.duration)
		res, err := runLoad(cfg, inproc.call(fx.request(alg)), selfCPU)
		if err != nil {
			return "", fmt.Errorf("in process %s: %w", alg, err)
		}
		rows = append(rows, row{"in process", alg, res})
	}
	return report(cfg, loadAvg, rows), nil
}

func report(cfg config, loadAvg string, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Authorization service: Check decisions\n\n")
	fmt.Fprintf(&b, "Command: `go run ./test/bench/authz` (%d callers, %s measured after %s warm-up; %d gRPC connections). "+
		"%s, %s, GOMAXPROCS %d, %d CPUs, 1-minute load average %s at the start.\n\n",
		cfg.concurrency, cfg.duration, cfg.warmup, cfg.conns, time.Now().UTC().Format("2006-01-02"),
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAvg)
	b.WriteString("A policy with a JWT provider (RSA 2048 and P-256 keys, claim headers) and six authorization rules; " +
		"every request carries the same valid token, so its key and its verification are cached (the steady state of a client reusing its token). " +
		"Decisions per CPU-second is decisions ÷ CPU time (user + system) of the deciding process: the gRPC server child, or this process in process.\n\n")
	b.WriteString("| path | token | decisions/s | p50 | p99 | max | deciding process CPU | decisions per CPU-second | decisions/s ÷ GOMAXPROCS | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		x := r.res
		perCPU := "n/a"
		if x.cpu > 0 {
			perCPU = thousands(float64(x.n) / x.cpu.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f s (%.0f%% of %d cores) | %s | %s | %d |\n",
			r.mode, r.alg, thousands(x.rate()), ms(x.p50), ms(x.p99), ms(x.max),
			x.cpu.Seconds(), 100*x.cpu.Seconds()/x.elapsed.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU(),
			perCPU, thousands(x.rate()/float64(runtime.GOMAXPROCS(0))), x.errors)
	}
	b.WriteString("\nThe fixed-rate row hands calls to 64 workers on schedule and times each from its start: the latency of the service under that load, not saturated. " +
		"At fixed concurrency every caller has a call in flight all the time, so latency there is mostly queueing: callers ÷ decisions/s.\n")
	b.WriteString("\nAim: at least 20 000 RS256 decisions per second per core, with p99 under 1 ms.\n")
	var per float64
	var p99 time.Duration
	for _, r := range rows {
		switch {
		case r.mode == "gRPC, 127.0.0.1" && r.alg == "RS256" && r.res.cpu > 0:
			per = float64(r.res.n) / r.res.cpu.Seconds()
		case strings.HasPrefix(r.mode, "gRPC, 127.0.0.1, fixed rate"):
			p99 = r.res.p99
		}
	}
	if per > 0 {
		fmt.Fprintf(&b, "gRPC RS256: %s decisions per CPU-second of the server (%s).\n", thousands(per), metOrNot(per >= 20000))
	}
	if p99 > 0 {
		fmt.Fprintf(&b, "gRPC RS256 at %d decisions/s: p99 %s (%s).\n", cfg.rate, ms(p99), metOrNot(p99 < time.Millisecond))
	}
	return b.String()
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
