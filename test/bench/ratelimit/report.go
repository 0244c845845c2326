package main

import (
	"fmt"
	"math/bits"
	"runtime"
	"strings"
	"time"

	"github.com/sekisho/sekisho/ratelimit"
)

// histogram counts latencies in buckets about 3% wide: values below 64ns
// exactly, then 32 buckets per power of two.
type histogram struct {
	n      uint64
	counts [36 * 32]uint64
}

const subBuckets = 32

func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	i := (e+1)*subBuckets + int(v>>e) - subBuckets
	return min(i, len(histogram{}.counts)-1)
}

// bucketMid is the middle of bucket i.
func bucketMid(i int) uint64 {
	if i < 2*subBuckets {
		return uint64(i)
	}
	e := i/subBuckets - 1
	low := uint64(i%subBuckets+subBuckets) << e
	return low + (uint64(1)<<e)/2
}

func (h *histogram) add(d time.Duration) {
	h.n++
	h.counts[bucketOf(uint64(max(d, 0)))]++
}

func (h *histogram) merge(o *histogram) {
	h.n += o.n
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(len(h.counts) - 1))
}

type row struct {
	name     string
	rate     float64 // decisions (or requests) per second
	p50, p99 time.Duration
	baseline bool
	redis    bool
	// CPU time per decision: the service's process (with the callers when
	// they run in it), the callers' process (gRPC), redis-server.
	cpu, callerCPU, redisCPU time.Duration
	cmds                     string // Redis commands per decision, "top-level / all"
	// uncounted calls were answered OK because the store missed the
	// deadline (fail open); they are not in the rate or the latencies.
	uncounted uint64
}

type report struct {
	cfg          config
	started      time.Time
	loadAvg      string
	redisVersion string
	incr         float64
	rows         []row
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Global rate limit: decisions per second\n\n")
	fmt.Fprintf(&b, "Measured %s on %d CPUs (GOMAXPROCS %d), load average at start %s, %s, redis-server %s.\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), r.loadAvg, runtime.Version(), r.redisVersion)
	fmt.Fprintf(&b, "%d concurrent callers for %v after %v of warm-up; gRPC over %d loopback connections (%s); one descriptor per call, %d distinct keys, FixedWindow with a limit never reached.\n\n",
		r.cfg.concurrency, r.cfg.duration, r.cfg.warmup, r.cfg.conns, serverName(r.cfg), r.cfg.keys)
	fmt.Fprintf(&b, "| measurement | decisions/s | p50 | p99 | CPU per decision: service | callers | redis-server | Redis commands per decision (top-level / all) | vs redis-benchmark INCR | failed open |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.rows {
		if row.baseline {
			fmt.Fprintf(&b, "| %s | %s | %s | – | – | – | – | 1 / 1 | 1.00 | – |\n", row.name, formatRate(row.rate), formatLatency(row.p50))
			continue
		}
		service, callers, redis, cmds, ratio := formatLatency(row.cpu), "in the service's process", "–", "–", ""
		if row.callerCPU > 0 {
			callers = formatLatency(row.callerCPU)
		}
		if row.redis {
			redis, cmds = formatLatency(row.redisCPU), row.cmds
			if r.incr > 0 {
				ratio = fmt.Sprintf("%.2f", row.rate/r.incr)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			row.name, formatRate(row.rate), formatLatency(row.p50), formatLatency(row.p99), service, callers, redis, cmds, ratio, row.uncounted)
	}
	fmt.Fprintf(&b, "\nThe callers, the service and redis-server share the same CPUs. redis-benchmark's figure is requests per second (one INCR each). Failed open: calls answered OK uncounted because the store missed the %v deadline (not in the rate or the latencies). CPU per decision is CPU time (user + system) over the measured run divided by the decisions in it; for gRPC the callers run in a process of their own, so the service's figure is the service alone.\n", ratelimit.DefaultDeadline)
	return b.String()
}

func formatRate(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

// serverName says which gRPC server the run used.
func serverName(cfg config) string {
	switch {
	case cfg.server != "grpc-go":
		return "internal/unarygrpc, as sekisho ratelimit"
	case cfg.stdCodec:
		return "grpc-go with ratelimit.GRPCServerOptions' stream workers, standard codec"
	}
	return "grpc-go with ratelimit.GRPCServerOptions"
}
