package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// perfTop is how many functions of the profile are reported.
const perfTop = 30

// perfProfile records pid with `perf record -g` while wrk loads url, and
// returns the functions with the largest share of samples (their own and
// their callees'), one a line.
func perfProfile(cfg config, tmp string, pid int, url string) (string, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return "", fmt.Errorf("perf is not installed: %w", err)
	}
	data := filepath.Join(tmp, "perf.data")
	load := exec.Command(cfg.wrkBin, "-t"+strconv.Itoa(cfg.threads), "-c"+strconv.Itoa(cfg.conns), "-d"+strconv.Itoa(int(cfg.duration/time.Second))+"s", url)
	if err := load.Start(); err != nil {
		return "", fmt.Errorf("starting wrk: %w", err)
	}
	defer func() { _ = load.Wait() }()
	time.Sleep(time.Second)
	secs := max(1, int(cfg.duration/time.Second)-2)
	rec := exec.Command(perf, "record", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", data, "--", "sleep", strconv.Itoa(secs))
	if out, err := rec.CombinedOutput(); err != nil {
		return "", fmt.Errorf("perf record: %w: %s", err, out)
	}
	rep := exec.Command(perf, "report", "-i", data, "--children", "--sort", "symbol", "--stdio", "-g", "none")
	var out bytes.Buffer
	rep.Stdout = &out
	if err := rep.Run(); err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	self, err := perfSelfByKind(perf, data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(self + "\n\n  total    self\n")
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		// "  52.13%  0.00%  [.]  net/http.(*conn).serve  -  -"
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") || !strings.HasSuffix(f[1], "%") {
			continue
		}
		sym := f[3]
		if strings.HasPrefix(sym, "runtime.goexit") || strings.Contains(sym, ".gowrap") {
			continue
		}
		fmt.Fprintf(&b, "%7s %7s  %s %s\n", f[0], f[1], f[2], sym)
		if n++; n == perfTop {
			break
		}
	}
	return b.String(), nil
}

// perfSelfByKind sums each function's own samples by the kind of code it
// is: the kernel (mostly the TCP stack under read and write), the Go
// runtime (scheduler, garbage collector, allocator), the standard library's
// HTTP and network code, sekisho's own code, and the rest.
func perfSelfByKind(perf, data string) (string, error) {
	rep := exec.Command(perf, "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio", "-g", "none")
	var out bytes.Buffer
	rep.Stdout = &out
	if err := rep.Run(); err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	kinds := []string{"kernel", "Go runtime", "net/http, net, bufio, syscall", "sekisho (proxy/...)", "other Go code (context, sync, strings, fmt, time, metrics)"}
	sums := make([]float64, len(kinds))
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		sym := f[2] // "  6.15%  [k]  _raw_spin_unlock_irqrestore  -  -"
		k := len(kinds) - 1
		switch {
		case f[1] == "[k]":
			k = 0
		case strings.HasPrefix(sym, "runtime.") || strings.HasPrefix(sym, "internal/runtime") || strings.HasPrefix(sym, "gcWriteBarrier") || sym == "aeshashbody" || strings.HasPrefix(sym, "__vdso"):
			k = 1
		case strings.HasPrefix(sym, "net/") || strings.HasPrefix(sym, "net.") || strings.HasPrefix(sym, "bufio.") || strings.HasPrefix(sym, "syscall.") || strings.HasPrefix(sym, "internal/poll.") || strings.HasPrefix(sym, "net/textproto."):
			k = 2
		case strings.HasPrefix(sym, "github.com/sekisho/sekisho/"):
			k = 3
		}
		sums[k] += v
	}
	var parts []string
	for i, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, sums[i]))
	}
	return "own time: " + strings.Join(parts, ", "), nil
}
