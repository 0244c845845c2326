// Command controlplane measures the control plane: for 100, 1 000 and 10 000
// HTTPRoutes on one Gateway, the time from resources to snapshots set on the
// ADS server (Gateway API translation, xDS translation, snapshot), and the
// peak heap and RSS of doing it. Each size runs in a fresh child process so
// one size's garbage does not weigh on the next.
//
// The baseline, measured in the same run, is a deep copy of the same input
// objects: the least any control plane must do to take in that many objects.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sekisho/sekisho/gateway/resource"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/controlplane"
	"github.com/sekisho/sekisho/xds/server"
)

type measurement struct {
	Routes        int     `json:"routes"`
	BaselineMS    float64 `json:"baselineMs"`
	TranslateMS   float64 `json:"translateMs"` // median of full applies from nothing
	UpdateMS      float64 `json:"updateMs"`    // median of applies after one route's weights change
	PeakHeapMiB   float64 `json:"peakHeapMiB"` // sampled peak of live+unswept heap objects
	PeakRSSMiB    float64 `json:"peakRssMiB"`  // VmHWM of the child process
	RetainedMiB   float64 `json:"retainedMiB"` // heap after GC with the snapshot held
	XDSListeners  int     `json:"xdsListeners"`
	ProgrammedRts int     `json:"programmedRoutes"`
}

func main() {
	child := flag.Int("child", 0, "internal: measure this many routes and print JSON")
	sizes := flag.String("sizes", "100,1000,10000", "route counts to measure")
	runs := flag.Int("runs", 5, "applies per size (the median is reported)")
	quickstart := flag.String("quickstart", "examples/quickstart", "the quickstart folder, for the push-latency measurement")
	edits := flag.Int("edits", 20, "file edits for the push-latency measurement")
	flag.Parse()
	if *child > 0 {
		m, err := measure(*child, *runs)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(m)
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var results []measurement
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bad size %q\n", s)
			os.Exit(2)
		}
		out, err := exec.Command(self, "-child", strconv.Itoa(n), "-runs", strconv.Itoa(*runs)).Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "measuring %d routes: %v\n", n, err)
			os.Exit(1)
		}
		var m measurement
		if err := json.Unmarshal(out, &m); err != nil {
			fmt.Fprintf(os.Stderr, "measuring %d routes: %v\n", n, err)
			os.Exit(1)
		}
		results = append(results, m)
	}
	report(os.Stdout, results)

	lat, err := pushLatency(*quickstart, *edits)
	if err != nil {
		fmt.Fprintln(os.Stderr, "measuring push latency:", err)
		os.Exit(1)
	}
	var ls []float64
	for _, d := range lat {
		ls = append(ls, ms(d))
	}
	sort.Float64s(ls)
	fmt.Printf("\nFile change to ADS push (quickstart, %d edits, file replaced by rename): median %.1f ms, max %.1f ms.\n", len(ls), medianOf(ls), ls[len(ls)-1])
}

func report(w io.Writer, ms []measurement) {
	fmt.Fprintf(w, "Control plane, one Gateway, go %s, %d CPUs (%s)\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| HTTPRoutes | translate + snapshot | × baseline (deep copy of input) | one route changed | peak heap | peak RSS | retained heap |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range ms {
		fmt.Fprintf(w, "| %d | %.1f ms | %.1f× (%.2f ms) | %.1f ms | %.0f MiB | %.0f MiB | %.0f MiB |\n",
			m.Routes, m.TranslateMS, m.TranslateMS/m.BaselineMS, m.BaselineMS, m.UpdateMS, m.PeakHeapMiB, m.PeakRSSMiB, m.RetainedMiB)
	}
	if len(ms) > 1 {
		first, last := ms[0], ms[len(ms)-1]
		perFirst := first.TranslateMS / float64(first.Routes)
		perLast := last.TranslateMS / float64(last.Routes)
		fmt.Fprintf(w, "\nTime per route at %d routes is %.2f× that at %d routes (1.00× is linear).\n", last.Routes, perLast/perFirst, first.Routes)
	}
}

func measure(n, runs int) (measurement, error) {
	m := measurement{Routes: n}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var peak atomic.Uint64
	stop := sampleHeap(&peak)

	res := Generate(n)
	m.BaselineMS = median(runs, func() { _ = deepCopy(res) })

	var times, updates []float64
	var held *controlplane.Pipeline
	for i := 0; i < runs; i++ {
		srv := server.New(server.Options{Logger: log})
		pipe := controlplane.New(srv, controlplane.Options{Logger: log, Translate: gwtranslate.Options{DefaultAddresses: []string{"127.0.0.1"}}})
		start := time.Now()
		result, err := pipe.Apply(context.Background(), res, nil)
		times = append(times, ms(time.Since(start)))
		if err != nil {
			return m, fmt.Errorf("applying %d routes: %w", n, err)
		}
		if i == 0 {
			if len(result.IR.Gateways) != 1 {
				return m, fmt.Errorf("%d routes: expected 1 programmed gateway, got %d (problems: %v)", n, len(result.IR.Gateways), result.Problems)
			}
			gw := result.IR.Gateways[0]
			m.XDSListeners = len(gw.Listeners)
			for _, l := range gw.Listeners {
				for _, fc := range l.FilterChains {
					for _, vh := range fc.VirtualHosts {
						m.ProgrammedRts += len(vh.Routes)
					}
				}
			}
			if m.ProgrammedRts < n {
				return m, fmt.Errorf("%d routes: only %d programmed (problems: %v)", n, m.ProgrammedRts, result.Problems)
			}
		}
		// One route's weights change; the whole view is applied again, as the
		// providers do.
		ChangeWeights(res, i)
		start = time.Now()
		if _, err := pipe.Apply(context.Background(), res, nil); err != nil {
			return m, fmt.Errorf("re-applying %d routes: %w", n, err)
		}
		updates = append(updates, ms(time.Since(start)))
		held = pipe
	}
	stop()
	m.TranslateMS = medianOf(times)
	m.UpdateMS = medianOf(updates)
	m.PeakHeapMiB = float64(peak.Load()) / (1 << 20)
	runtime.GC()
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	m.RetainedMiB = float64(st.HeapAlloc) / (1 << 20)
	runtime.KeepAlive(held)
	runtime.KeepAlive(res)
	m.PeakRSSMiB = vmHWM()
	return m, nil
}

// sampleHeap records the peak of the heap's object bytes every 200 µs.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func vmHWM() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(runs int, f func()) float64 {
	var ts []float64
	for i := 0; i < runs; i++ {
		start := time.Now()
		f()
		ts = append(ts, ms(time.Since(start)))
	}
	return medianOf(ts)
}

func medianOf(ts []float64) float64 {
	s := append([]float64(nil), ts...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func deepCopy(res *resource.Resources) *resource.Resources {
	out := &resource.Resources{}
	for _, o := range res.GatewayClasses {
		out.GatewayClasses = append(out.GatewayClasses, o.DeepCopy())
	}
	for _, o := range res.Gateways {
		out.Gateways = append(out.Gateways, o.DeepCopy())
	}
	for _, o := range res.HTTPRoutes {
		out.HTTPRoutes = append(out.HTTPRoutes, o.DeepCopy())
	}
	for _, o := range res.Services {
		out.Services = append(out.Services, o.DeepCopy())
	}
	for _, o := range res.EndpointSlices {
		out.EndpointSlices = append(out.EndpointSlices, o.DeepCopy())
	}
	return out
}
