// Command ratelimit measures the global rate-limit service (package
// ratelimit) in one run on this machine, against a baseline measured in the
// same run:
//
//   - the ceiling: redis-benchmark INCR against the same redis-server
//     (-n 200000 -c 50), the plainest thing Redis can do per request;
//   - decisions per second, p50 and p99 latency at fixed concurrency for a
//     fixed time, for the memory store and the Redis store, both called
//     in-process (no gRPC) and through the real gRPC service on loopback,
//     served with ratelimit.GRPCServerOptions;
//   - CPU time per decision of the service, of the callers and of
//     redis-server: for gRPC the callers are this program re-executed with
//     -load, so the service's own cost is measured apart from theirs;
//   - for Redis, the commands per decision, from INFO commandstats deltas:
//     top-level calls (EVALSHA) and every command including those the
//     scripts run.
//
// Every call is one descriptor with a key drawn from -keys distinct users,
// under a FixedWindow rule with a limit no run reaches, so each call is
// counted and admitted. redis-server (Debian's, as the tests use) runs as a
// child on 127.0.0.1 and a free port and is stopped at the end and on
// interrupt. Everything shares the machine's CPUs, and other work on the
// machine moves the rates: the CPU per decision moves much less.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/sekisho/sekisho/internal/unarygrpc"
	"github.com/sekisho/sekisho/ratelimit"
	"github.com/sekisho/sekisho/ratelimit/redistest"
)

type config struct {
	duration, warmup time.Duration
	concurrency      int
	conns            int
	keys             int
	incrRequests     int
	incrClients      int
	redisBenchmark   string
	out              string
	cpuProfile       string
	flushDelay       time.Duration
	multiplex        int
	only             string
	stdCodec         bool
	server           string // "unarygrpc" (as sekisho ratelimit) or "grpc-go"
}

func main() {
	var cfg config
	load := flag.String("load", "", "internal: run the gRPC callers against this address and report on stdout")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each measured run")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up before each measured run (not reported)")
	flag.IntVar(&cfg.concurrency, "concurrency", 64, "concurrent callers")
	flag.IntVar(&cfg.conns, "conns", 4, "gRPC connections the callers share")
	flag.IntVar(&cfg.keys, "keys", 10000, "distinct counter keys (x-user values)")
	flag.IntVar(&cfg.incrRequests, "incr-requests", 200000, "redis-benchmark -n")
	flag.IntVar(&cfg.incrClients, "incr-clients", 50, "redis-benchmark -c")
	flag.StringVar(&cfg.redisBenchmark, "redis-benchmark", "/usr/bin/redis-benchmark", "the redis-benchmark binary")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the service during each measured run into this folder")
	flag.DurationVar(&cfg.flushDelay, "redis-flush-delay", 0, "RedisOptions.MaxFlushDelay (0: the store's default, negative: none)")
	flag.IntVar(&cfg.multiplex, "redis-multiplex", 0, "RedisOptions.PipelineMultiplex (2^n connections; 0: the client's default)")
	flag.BoolVar(&cfg.stdCodec, "std-codec", false, "with -server grpc-go, serve with the standard protobuf codec instead of ratelimit.GRPCServerOptions' codec")
	flag.StringVar(&cfg.server, "server", "unarygrpc", "the gRPC server: unarygrpc (internal/unarygrpc, as sekisho ratelimit) or grpc-go (ratelimit.GRPCServerOptions)")
	flag.StringVar(&cfg.only, "only", "", "run only these measurements (comma-separated: incr, memory, redis)")
	flag.Parse()

	var err error
	if *load != "" {
		err = runLoad(cfg, *load)
	} else {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench ratelimit:", err)
		os.Exit(1)
	}
}

func (c config) runs(name string) bool {
	if c.only == "" {
		return true
	}
	for _, n := range strings.Split(c.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench ratelimit: "+format+"\n", args...)
}

func run(cfg config) error {
	if _, err := os.Stat(cfg.redisBenchmark); err != nil {
		return fmt.Errorf("%s is needed (%v): run `%s`", cfg.redisBenchmark, err, redistest.InstallHint)
	}
	if cfg.cpuProfile != "" {
		if err := os.MkdirAll(cfg.cpuProfile, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "sekisho-bench-ratelimit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	redis, err := redistest.Launch(tmp)
	if err != nil {
		return err
	}
	defer redis.Stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		redis.Stop() // the load child, if any, dies with this process (Pdeathsig)
		os.RemoveAll(tmp)
		fmt.Fprintln(os.Stderr, "bench ratelimit: stopped by", s)
		os.Exit(130)
	}()

	rep := &report{cfg: cfg, started: time.Now(), loadAvg: loadAvg()}
	info, _ := redistest.Do(redis.Addr(), time.Second, "INFO", "server")
	rep.redisVersion = infoField(info, "redis_version")

	if cfg.runs("incr") {
		progress("redis-benchmark INCR -n %d -c %d", cfg.incrRequests, cfg.incrClients)
		incr, incrP50, err := redisBenchmark(cfg, redis.Port())
		if err != nil {
			return err
		}
		rep.rows = append(rep.rows, row{name: fmt.Sprintf("redis-benchmark INCR (-c %d), the ceiling", cfg.incrClients), rate: incr, p50: incrP50, cmds: "1 / 1", baseline: true})
		rep.incr = incr
	}

	reqs := requests(cfg.keys)
	rule := ratelimit.Config{Domain: "bench", Rules: []ratelimit.Rule{{ID: "bench", Requests: ratelimit.MaxRequests, Unit: ratelimit.UnitHour}}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	for _, kind := range []string{"memory", "redis"} {
		if !cfg.runs(kind) {
			continue
		}
		var store ratelimit.Store
		redisAddr := ""
		if kind == "memory" {
			store = ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
		} else {
			redisAddr = redis.Addr()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			store, err = ratelimit.NewRedisStore(ctx, ratelimit.RedisOptions{Addrs: []string{redisAddr}, Logger: quiet,
				MaxFlushDelay: cfg.flushDelay, PipelineMultiplex: cfg.multiplex})
			cancel()
			if err != nil {
				return err
			}
		}
		srv, err := ratelimit.NewServer(ratelimit.Options{Store: store, Logger: quiet, Registerer: prometheus.NewRegistry()})
		if err != nil {
			return err
		}
		if err := srv.SetConfig(rule); err != nil {
			return err
		}

		progress("%s store, in-process, %d callers, %v", kind, cfg.concurrency, cfg.duration)
		w := &window{redisAddr: redisAddr, profile: profilePath(cfg, kind+"-inprocess")}
		out, err := runCallers(cfg, reqs, func(int) caller { return srv.ShouldRateLimit }, w.start, w.stop)
		if err != nil {
			return err
		}
		r, err := w.row(kind+" store, in-process", out, nil)
		if err != nil {
			return err
		}
		rep.rows = append(rep.rows, r)

		progress("%s store, gRPC over loopback (%d connections), %d callers in another process, %v", kind, cfg.conns, cfg.concurrency, cfg.duration)
		r, err = measureGRPC(cfg, srv, &window{redisAddr: redisAddr, profile: profilePath(cfg, kind+"-grpc")})
		if err != nil {
			return err
		}
		r.name = kind + " store, gRPC"
		rep.rows = append(rep.rows, r)
		srv.Close()
		store.Close()
	}

	text := rep.String()
	fmt.Print(text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func profilePath(cfg config, name string) string {
	if cfg.cpuProfile == "" {
		return ""
	}
	return filepath.Join(cfg.cpuProfile, name+".pprof")
}

// requests are one-descriptor requests, one per key.
func requests(keys int) []*rlsv3.RateLimitRequest {
	out := make([]*rlsv3.RateLimitRequest, keys)
	for i := range out {
		out[i] = &rlsv3.RateLimitRequest{Domain: "bench", Descriptors: []*ratelimitv3.RateLimitDescriptor{{
			Entries: []*ratelimitv3.RateLimitDescriptor_Entry{
				{Key: ratelimit.RuleEntryKey, Value: "bench"},
				{Key: "x-user", Value: "user-" + strconv.Itoa(i)},
			},
		}}}
	}
	return out
}

// measureGRPC serves srv on loopback and runs the callers in a child
// process (this program with -load), taking the service's figures while
// the child measures.
func measureGRPC(cfg config, srv *ratelimit.Server, w *window) (row, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return row{}, err
	}
	if cfg.server == "grpc-go" {
		opts := ratelimit.GRPCServerOptions()
		if cfg.stdCodec {
			opts = opts[1:] // without the codec
		}
		gs := grpc.NewServer(opts...)
		srv.Register(gs)
		go func() { _ = gs.Serve(lis) }()
		defer gs.Stop()
	} else {
		us := unarygrpc.NewServer(unarygrpc.Options{Workers: 128})
		us.Handle(ratelimit.ShouldRateLimitMethod, srv.UnaryShouldRateLimit)
		go func() { _ = us.Serve(lis) }()
		defer us.Stop()
	}

	out, err := runLoadChild(cfg, lis.Addr().String(), w.start, w.stop)
	if err != nil {
		return row{}, err
	}
	return w.row("", out.outcome, &out.CPU)
}

// window takes the service's figures over one measured run.
type window struct {
	redisAddr  string // "" without Redis
	profile    string // "" for none
	prof       *os.File
	begin, end snapshot
}

type snapshot struct {
	cpu, redisCPU time.Duration
	top, all      uint64 // Redis commands so far: top-level, all
}

func (w *window) take() (snapshot, error) {
	var s snapshot
	var err error
	if s.cpu, err = processCPU(); err != nil {
		return s, err
	}
	if w.redisAddr != "" {
		if s.redisCPU, err = redisCPU(w.redisAddr); err != nil {
			return s, err
		}
		if s.top, s.all, err = commandCalls(w.redisAddr); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (w *window) start() error {
	var err error
	if w.begin, err = w.take(); err != nil {
		return err
	}
	if w.profile != "" {
		if w.prof, err = os.Create(w.profile); err != nil {
			return err
		}
		return pprof.StartCPUProfile(w.prof)
	}
	return nil
}

func (w *window) stop() error {
	if w.prof != nil {
		pprof.StopCPUProfile()
		w.prof.Close()
	}
	var err error
	w.end, err = w.take()
	return err
}

// row turns a measured run into a report row; callerCPU is the callers'
// CPU time when they ran in another process.
func (w *window) row(name string, o outcome, callerCPU *time.Duration) (row, error) {
	if o.Failed > 0 {
		return row{}, fmt.Errorf("%s: %d calls failed, first: %s", name, o.Failed, o.FirstErr)
	}
	r := row{name: name, rate: float64(o.Calls) / o.Elapsed.Seconds(), p50: o.P50, p99: o.P99, uncounted: o.Uncounted, redis: w.redisAddr != ""}
	if o.Calls == 0 {
		return r, nil
	}
	n := time.Duration(o.Calls)
	r.cpu = (w.end.cpu - w.begin.cpu) / n
	if callerCPU != nil {
		r.callerCPU = *callerCPU / n
	}
	if r.redis {
		r.redisCPU = (w.end.redisCPU - w.begin.redisCPU) / n
		r.cmds = fmt.Sprintf("%.2f / %.2f", float64(w.end.top-w.begin.top)/float64(o.Calls), float64(w.end.all-w.begin.all)/float64(o.Calls))
	}
	return r, nil
}
