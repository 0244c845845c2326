// Command proxy measures sekisho's data plane against a direct connection to
// the backend and against nginx, all in one run on the same machine:
//
//   - throughput and latency at fixed concurrency with wrk (req/s, p50, p99);
//   - latency at a fixed rate (1 000 req/s) with an open-loop generator that
//     measures from each request's due time, so stalls are not hidden;
//   - the resident memory of `sekisho run` with a quickstart-sized config and
//     with 10 000 HTTPRoutes;
//   - what sekisho's policy services add to a request through the proxy: the
//     open-loop run on routes with a JWT SecurityPolicy (RS256, ES256) or a
//     global RateLimitPolicy, against a route without a policy (policies.go).
//
// The backend is this program re-executed with -backend: a minimal net/http
// server with a fixed JSON body. sekisho (`sekisho run`, built by `make
// build`) and nginx each proxy to it from a config written into a temp
// folder. Every child process is stopped (SIGTERM, then SIGKILL) and the
// temp folder removed however the run ends. Nothing is installed here:
// `make bench` installs wrk and nginx when they are missing.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	sekishoBin, nginxBin, wrkBin string
	threads, conns               int
	duration, warmup             time.Duration
	rate, rounds                 int
	rateDuration                 time.Duration
	rateConns                    int
	routes                       int
	readyTimeout                 time.Duration
	out                          string
	perf                         bool
	policies, freshTokens        bool
	loadAvg                      string // the 1-minute load average when the run began
}

func main() {
	var cfg config
	backend := flag.String("backend", "", "internal: serve the benchmark backend on this address")
	flag.StringVar(&cfg.sekishoBin, "sekisho", "bin/sekisho", "the sekisho binary (make build)")
	flag.StringVar(&cfg.nginxBin, "nginx", "/usr/sbin/nginx", "the nginx binary")
	flag.StringVar(&cfg.wrkBin, "wrk", "wrk", "the wrk binary")
	flag.IntVar(&cfg.threads, "threads", 2, "wrk threads")
	flag.IntVar(&cfg.conns, "conns", 64, "wrk connections")
	flag.DurationVar(&cfg.duration, "duration", 8*time.Second, "wrk run length (whole seconds)")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "wrk warm-up before each measured run (not reported; 0 for none)")
	flag.IntVar(&cfg.rounds, "rounds", 4, "more wrk rounds through sekisho and nginx in turn, for the median ratio (0 for none)")
	flag.IntVar(&cfg.rate, "rate", 1000, "requests per second of the open-loop run")
	flag.DurationVar(&cfg.rateDuration, "rate-duration", 10*time.Second, "length of the open-loop run")
	flag.IntVar(&cfg.rateConns, "rate-conns", 16, "keep-alive connections of the open-loop run")
	flag.IntVar(&cfg.routes, "routes", 10000, "HTTPRoutes for the memory measurement (0 to skip it)")
	flag.DurationVar(&cfg.readyTimeout, "ready-timeout", 90*time.Second, "how long sekisho may take to become ready")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.BoolVar(&cfg.perf, "perf", false, "also profile sekisho with perf during an extra wrk run and report its top functions")
	flag.BoolVar(&cfg.policies, "policies", true, "also measure the latency the policy services (JWT authorization, global rate limit) add through the proxy")
	flag.BoolVar(&cfg.freshTokens, "fresh-tokens", false, "with -policies, also measure the JWT paths with a new token on every request, so that each one's signature is verified")
	flag.Parse()

	if *backend != "" {
		if err := serveBackend(*backend); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	tmp, err := os.MkdirTemp("", "sekisho-bench-proxy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a temp folder:", err)
		os.Exit(1)
	}
	cleanup := func() {
		stopAll()
		os.RemoveAll(tmp)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\n%v: stopping the children\n", s)
		cleanup()
		os.Exit(130)
	}()

	report, err := run(cfg, tmp)
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
		fmt.Fprintln(os.Stderr, "bench proxy:", err)
		os.Exit(1)
	}
}

// pathResult is one path's figures, or why it was not measured.
type pathResult struct {
	short  string // direct, sekisho or nginx
	name   string
	wrk    wrkResult
	open   openLoopResult
	skip   string // not measured, and why
	extras []string
	// cpuPerReq is the CPU time the path's own process(es) used per request
	// during the measured wrk run (the backend's for direct; the proxy's,
	// without the backend, for the others).
	cpuPerReq time.Duration
	// The rest of the machine during the same run, per request: the
	// backend's CPU time (0 for direct, where it is cpuPerReq), wrk's, and
	// the share of the machine's CPU time that was idle.
	backendPerReq, wrkPerReq time.Duration
	idle                     float64
}

// memResult is the memory of one `sekisho run`.
type memResult struct {
	label     string
	routes    int
	rss, hwm  float64 // MiB at ready
	afterLoad float64 // VmHWM after the load runs; 0 when not loaded
	ready     time.Duration
	skip      string
}

func run(cfg config, tmp string) (string, error) {
	wrkBin, err := exec.LookPath(cfg.wrkBin)
	if err != nil {
		return "", fmt.Errorf("wrk is needed (make bench installs the Debian package): %w", err)
	}
	cfg.wrkBin = wrkBin
	cfg.loadAvg = "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(strings.Fields(string(b))) > 0 {
		cfg.loadAvg = strings.Fields(string(b))[0]
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding this program's binary: %w", err)
	}

	// The backend.
	bport, err := freePort()
	if err != nil {
		return "", err
	}
	baddr := "127.0.0.1:" + strconv.Itoa(bport)
	be, err := startChild("backend", filepath.Join(tmp, "backend.log"), self, "-backend", baddr)
	if err != nil {
		return "", err
	}
	if err := waitHTTP(be, "http://"+baddr+"/", 10*time.Second); err != nil {
		return "", be.failed(err)
	}

	var paths []pathResult
	var mems []memResult
	var profile string

	// 1. Direct.
	progress("direct to the backend on %s", baddr)
	direct := measure(cfg, "direct", "direct to the backend", baddr, be.pid(), be.pid())
	paths = append(paths, direct)
	if direct.skip != "" {
		return "", fmt.Errorf("measuring the backend directly: %s", direct.skip)
	}

	// 2. sekisho, quickstart-sized (kept running for the rounds below).
	var sek *sekisho
	sekishoRes := pathResult{short: "sekisho", name: "through sekisho (`sekisho run`)"}
	mem1 := memResult{label: "quickstart-sized", routes: 1}
	if _, err := os.Stat(cfg.sekishoBin); err != nil {
		sekishoRes.skip = fmt.Sprintf("no sekisho binary at %s (run make build)", cfg.sekishoBin)
		mem1.skip = sekishoRes.skip
	} else {
		progress("starting sekisho run (1 route)")
		s, err := startSekisho(cfg.sekishoBin, tmp, "sekisho-1", bport, 1, cfg.readyTimeout, "/", nil)
		if err != nil {
			sekishoRes.skip = firstLine(err.Error())
			mem1.skip = sekishoRes.skip
			progress("sekisho not measured: %v", err)
		} else {
			mem1.ready = s.ready
			mem1.rss, mem1.hwm, _ = vmRSS(s.pid())
			progress("sekisho ready in %s (VmRSS %.1f MiB), gateway on %s", s.ready.Round(time.Millisecond), mem1.rss, s.gateway)
			sekishoRes = measure(cfg, "sekisho", sekishoRes.name, s.gateway, s.pid(), be.pid())
			if _, hwm, err := vmRSS(s.pid()); err == nil {
				mem1.afterLoad = hwm
			}
			if cfg.perf && sekishoRes.skip == "" {
				progress("profiling sekisho with perf under wrk")
				profile, err = perfProfile(cfg, tmp, s.pid(), "http://"+s.gateway+"/")
				if err != nil {
					progress("no profile: %v", err)
				}
			}
		}
		if s != nil && sekishoRes.skip != "" {
			s.stop()
			s = nil
		}
		sek = s
	}
	paths = append(paths, sekishoRes)
	mems = append(mems, mem1)

	// 3. nginx.
	progress("starting nginx")
	ng, err := startNginx(cfg.nginxBin, tmp, bport)
	if err != nil {
		return "", fmt.Errorf("starting nginx: %w", err)
	}
	nginxRes := measure(cfg, "nginx", "through nginx "+nginxVersion(cfg.nginxBin)+" (2 workers)", ng.addr, ng.pid(), be.pid())
	paths = append(paths, nginxRes)

	// 3b. More rounds of wrk, sekisho and nginx in turn.
	var rounds []round
	if sek != nil && nginxRes.skip == "" && cfg.rounds > 0 {
		rounds = alternate(cfg, sek, ng, be.pid())
	}
	if sek != nil {
		sek.stop()
	}
	ng.stop()

	// 4. The policy hops, on a sekisho of their own.
	var policies *policyResult
	if cfg.policies {
		if mem1.skip != "" && strings.Contains(mem1.skip, "no sekisho binary") {
			policies = &policyResult{skip: mem1.skip}
		} else if policies, err = measurePolicies(cfg, tmp, bport); err != nil {
			return "", fmt.Errorf("measuring the policy hops: %w", err)
		}
	}

	// 5. sekisho's memory with many routes.
	if cfg.routes > 0 {
		memN := memResult{label: "many routes", routes: cfg.routes}
		if mem1.skip != "" && strings.Contains(mem1.skip, "no sekisho binary") {
			memN.skip = mem1.skip
		} else {
			progress("starting sekisho run (%d routes)", cfg.routes)
			probe := "/"
			if cfg.routes > 1 {
				probe = fmt.Sprintf("/r/%05d/x", cfg.routes-2) // the last numbered route
			}
			s, err := startSekisho(cfg.sekishoBin, tmp, "sekisho-n", bport, cfg.routes, cfg.readyTimeout, probe, nil)
			if err != nil {
				memN.skip = firstLine(err.Error())
				progress("sekisho with %d routes not measured: %v", cfg.routes, err)
			} else {
				memN.ready = s.ready
				memN.rss, memN.hwm, _ = vmRSS(s.pid())
				progress("sekisho with %d routes ready in %s (VmRSS %.1f MiB)", cfg.routes, s.ready.Round(time.Millisecond), memN.rss)
			}
			if s != nil {
				s.stop()
			}
		}
		mems = append(mems, memN)
	}
	be.stop()

	var b strings.Builder
	writeReport(&b, cfg, paths, mems)
	writeRounds(&b, sekishoRes, nginxRes, rounds)
	if policies != nil {
		writePolicyReport(&b, cfg, policies)
	}
	if profile != "" {
		fmt.Fprintf(&b, "\nsekisho under wrk, perf record -g: own time by kind of code, then the functions with the largest share of samples in them or below them:\n\n```\n%s```\n", profile)
	}
	return b.String(), nil
}

// measure runs wrk (after a warm-up) and then the open-loop generator
// against addr; pid is the process whose CPU time (with its children's) is
// counted per request during the wrk run.
func measure(cfg config, short, name, addr string, pid, backendPID int) pathResult {
	r := pathResult{short: short, name: name}
	url := "http://" + addr + "/"
	if cfg.warmup >= time.Second {
		if _, err := runWrk(cfg.wrkBin, url, cfg.threads, cfg.conns, cfg.warmup); err != nil {
			r.skip = "wrk warm-up failed: " + firstLine(err.Error())
			return r
		}
	}
	if err := wrkMeasured(cfg, &r, url, pid, backendPID); err != nil {
		r.skip = "wrk failed: " + firstLine(err.Error())
		return r
	}
	w := r.wrk
	if w.Non2xx > 0 {
		r.extras = append(r.extras, fmt.Sprintf("wrk: %d of %d answers were not 2xx/3xx", w.Non2xx, w.Requests))
	}
	if w.Errors != "" {
		r.extras = append(r.extras, "wrk: "+w.Errors)
	}
	progress("  wrk: %.0f req/s, p50 %s, p99 %s", w.RPS, fmtMS(w.P50, 2), fmtMS(w.P99, 2))
	// A short open-loop warm-up, discarded.
	if _, err := openLoop(addr, cfg.rate, time.Second, cfg.rateConns); err != nil {
		r.skip = "open-loop warm-up failed: " + firstLine(err.Error())
		return r
	}
	o, err := openLoop(addr, cfg.rate, cfg.rateDuration, cfg.rateConns)
	if err != nil {
		r.skip = "open loop failed: " + firstLine(err.Error())
		return r
	}
	r.open = o
	if o.Failed > 0 {
		r.extras = append(r.extras, fmt.Sprintf("open loop: %d of %d requests failed (first: %s)", o.Failed, o.Scheduled, o.FirstErr))
	}
	progress("  open loop at %d req/s: p50 %s, p99 %s, max %s (generator lateness p99 %s)", cfg.rate, fmtMS(o.P50, 3), fmtMS(o.P99, 3), fmtMS(o.Max, 2), fmtMS(o.LateP99, 3))
	return r
}

func writeReport(w io.Writer, cfg config, paths []pathResult, mems []memResult) {
	fmt.Fprintf(w, "Data plane, %s, %d CPUs, load average at start %s, %s. wrk -t%d -c%d -d%s --latency (after a %s warm-up); open loop: %s req/s for %s over %d keep-alive connections, latency from each request's due time.\n\n",
		runtime.Version(), runtime.NumCPU(), cfg.loadAvg, time.Now().UTC().Format("2006-01-02"),
		cfg.threads, cfg.conns, cfg.duration, cfg.warmup, thousands(float64(cfg.rate)), cfg.rateDuration, cfg.rateConns)
	rate := thousands(float64(cfg.rate))
	fmt.Fprintf(w, "| path | req/s | p50 | p99 | p50 at %[1]s req/s | p99 at %[1]s req/s | max at %[1]s req/s |\n", rate)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, p := range paths {
		if p.skip != "" {
			fmt.Fprintf(w, "| %s | not measured | | | | | |\n", p.name)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", p.name, thousands(p.wrk.RPS),
			fmtMS(p.wrk.P50, 2), fmtMS(p.wrk.P99, 2), fmtMS(p.open.P50, 3), fmtMS(p.open.P99, 3), fmtMS(p.open.Max, 2))
	}
	fmt.Fprintln(w)
	byName := func(short string) *pathResult {
		for i := range paths {
			if paths[i].short == short && paths[i].skip == "" {
				return &paths[i]
			}
		}
		return nil
	}
	direct, sek, ng := byName("direct"), byName("sekisho"), byName("nginx")
	if ng != nil && direct != nil {
		fmt.Fprintf(w, "- nginx / direct throughput: %.2f×; nginx's added p99 at %s req/s: %s\n",
			ng.wrk.RPS/direct.wrk.RPS, rate, fmtSignedMS(ng.open.P99-direct.open.P99))
	}
	if sek != nil && ng != nil && direct != nil {
		fmt.Fprintf(w, "- sekisho / nginx throughput: **%.2f×** (sekisho / direct: %.2f×)\n", sek.wrk.RPS/ng.wrk.RPS, sek.wrk.RPS/direct.wrk.RPS)
		fmt.Fprintf(w, "- sekisho's added p99 over direct at %s req/s: **%s** (p50: %s)\n",
			rate, fmtSignedMS(sek.open.P99-direct.open.P99), fmtSignedMS(sek.open.P50-direct.open.P50))
	} else {
		for _, p := range paths {
			if p.short == "sekisho" && p.skip != "" {
				fmt.Fprintf(w, "- sekisho not measured: %s\n", p.skip)
			}
		}
	}
	var late []string
	for _, p := range paths {
		if p.skip == "" {
			late = append(late, fmt.Sprintf("%s %s", p.short, fmtMS(p.open.LateP99, 3)))
		}
	}
	var cpu []string
	for _, p := range paths {
		if p.skip == "" && p.cpuPerReq > 0 {
			cpu = append(cpu, fmt.Sprintf("%s %.1f µs", p.short, float64(p.cpuPerReq)/float64(time.Microsecond)))
		}
	}
	if len(cpu) > 0 {
		fmt.Fprintf(w, "- CPU time per request during the wrk run, of the path's own processes (the backend for direct; the proxy alone, backend excluded, for the others; less sensitive to other load than req/s): %s\n", strings.Join(cpu, ", "))
	}
	var rest []string
	for _, p := range paths {
		if p.skip == "" && p.cpuPerReq > 0 {
			be := p.backendPerReq
			if p.short == "direct" {
				be = p.cpuPerReq
			}
			rest = append(rest, fmt.Sprintf("%s: backend %.1f µs, wrk %.1f µs, machine idle %.1f %%", p.short,
				float64(be)/float64(time.Microsecond), float64(p.wrkPerReq)/float64(time.Microsecond), 100*p.idle))
		}
	}
	if len(rest) > 0 {
		fmt.Fprintf(w, "- the rest of the machine in the same wrk runs, CPU time per request (req/s follows the sum of all of it when the CPUs are busy): %s\n", strings.Join(rest, "; "))
	}
	fmt.Fprintf(w, "- the open-loop generator's own lateness in sending (p99, included in its figures): %s\n", strings.Join(late, ", "))
	for _, p := range paths {
		for _, e := range p.extras {
			fmt.Fprintf(w, "- %s: %s\n", p.name, e)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| `sekisho run` config | HTTPRoutes | ready after | VmRSS at ready | VmHWM at ready | VmHWM after the load runs |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, m := range mems {
		if m.skip != "" {
			fmt.Fprintf(w, "| %s | %s | not measured | | | |\n", m.label, thousands(float64(m.routes)))
			continue
		}
		after := "n/a"
		if m.afterLoad > 0 {
			after = fmt.Sprintf("%.1f MiB", m.afterLoad)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f s | %.1f MiB | %.1f MiB | %s |\n", m.label, thousands(float64(m.routes)), m.ready.Seconds(), m.rss, m.hwm, after)
	}
	for _, m := range mems {
		if m.skip != "" {
			fmt.Fprintf(w, "- %s (%d routes) not measured: %s\n", m.label, m.routes, m.skip)
		}
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench proxy] "+format+"\n", args...)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func fmtMS(d time.Duration, decimals int) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', decimals, 64) + " ms"
}

func fmtSignedMS(d time.Duration) string {
	s := fmtMS(d, 3)
	if d >= 0 {
		s = "+" + s
	}
	return s
}

// thousands formats v rounded to an integer with a space between groups of
// three digits: 90 900.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// nginxVersion is "1.22.1" from `nginx -v`, or "" when it cannot be read.
func nginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	_, v, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// wrkMeasured runs wrk against url for cfg.duration and fills r with its
// figures and what the run cost: the CPU time per request of pid (with its
// children), of the backend (unless pid is the backend), of wrk, and the
// machine's idle share.
func wrkMeasured(cfg config, r *pathResult, url string, pid, backendPID int) error {
	cpu0, be0 := treeCPU(pid), treeCPU(backendPID)
	idle0, total0 := machineCPU()
	w, err := runWrk(cfg.wrkBin, url, cfg.threads, cfg.conns, cfg.duration)
	if err != nil {
		return err
	}
	r.wrk = w
	if cpu := treeCPU(pid) - cpu0; cpu > 0 && w.Requests > 0 {
		r.cpuPerReq = cpu / time.Duration(w.Requests)
		if backendPID != pid {
			r.backendPerReq = (treeCPU(backendPID) - be0) / time.Duration(w.Requests)
		}
		r.wrkPerReq = w.CPU / time.Duration(w.Requests)
	}
	if idle1, total1 := machineCPU(); total1 > total0 {
		r.idle = (idle1 - idle0) / (total1 - total0)
	}
	return nil
}

// round is one wrk run through sekisho and one through nginx, one right
// after the other.
type round struct {
	sekisho, nginx pathResult
}

// alternate runs cfg.rounds more rounds of wrk through sekisho and nginx,
// both already warm, the order swapped every round so that a drift in the
// machine's other load does not favour one of them.
func alternate(cfg config, s *sekisho, ng *nginx, backendPID int) []round {
	var out []round
	one := func(short, addr string, pid int) pathResult {
		r := pathResult{short: short}
		if err := wrkMeasured(cfg, &r, "http://"+addr+"/", pid, backendPID); err != nil {
			r.skip = firstLine(err.Error())
		}
		return r
	}
	for i := 0; i < cfg.rounds; i++ {
		var rd round
		if i%2 == 0 {
			rd.nginx = one("nginx", ng.addr, ng.pid())
			rd.sekisho = one("sekisho", s.gateway, s.pid())
		} else {
			rd.sekisho = one("sekisho", s.gateway, s.pid())
			rd.nginx = one("nginx", ng.addr, ng.pid())
		}
		if rd.sekisho.skip != "" || rd.nginx.skip != "" {
			progress("round %d not measured: %s%s", i+1, rd.sekisho.skip, rd.nginx.skip)
			continue
		}
		progress("round %d: sekisho %.0f req/s, nginx %.0f req/s (%.2f×)", i+1, rd.sekisho.wrk.RPS, rd.nginx.wrk.RPS, rd.sekisho.wrk.RPS/rd.nginx.wrk.RPS)
		out = append(out, rd)
	}
	return out
}

// writeRounds reports the alternating rounds and the median ratio over
// every pair of runs: the first table's and the rounds'.
func writeRounds(w *strings.Builder, sek, ng pathResult, rounds []round) {
	if len(rounds) == 0 {
		return
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }
	fmt.Fprintf(w, "\nThen %d more rounds of the same wrk run through sekisho and nginx in turn (both warm; nginx first in odd rounds, sekisho first in even ones), each line one round:\n\n", len(rounds))
	w.WriteString("| round | sekisho req/s | nginx req/s | sekisho / nginx | CPU per request: sekisho | nginx | backend behind sekisho | behind nginx |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var ratios []float64
	for i, rd := range rounds {
		ratio := rd.sekisho.wrk.RPS / rd.nginx.wrk.RPS
		ratios = append(ratios, ratio)
		fmt.Fprintf(w, "| %d | %s | %s | %.2f× | %s | %s | %s | %s |\n", i+1,
			thousands(rd.sekisho.wrk.RPS), thousands(rd.nginx.wrk.RPS), ratio,
			us(rd.sekisho.cpuPerReq), us(rd.nginx.cpuPerReq), us(rd.sekisho.backendPerReq), us(rd.nginx.backendPerReq))
	}
	median := func(r []float64) float64 {
		r = slices.Sorted(slices.Values(r))
		if len(r)%2 == 0 {
			return (r[len(r)/2-1] + r[len(r)/2]) / 2
		}
		return r[len(r)/2]
	}
	rs := median(ratios)
	all := ratios
	if sek.skip == "" && ng.skip == "" && ng.wrk.RPS > 0 {
		all = append(slices.Clone(ratios), sek.wrk.RPS/ng.wrk.RPS)
	}
	fmt.Fprintf(w, "\n- sekisho / nginx throughput: median **%.3f×** over all %d pairs of runs (the first table's and the rounds'; lowest %.2f×, highest %.2f×); %.3f× over the rounds alone\n",
		median(all), len(all), slices.Min(all), slices.Max(all), rs)
}
