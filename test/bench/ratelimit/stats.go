package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

var incrLine = regexp.MustCompile(`INCR: ([0-9.]+) requests per second(?:, p50=([0-9.]+) msec)?`)

// redisBenchmark runs redis-benchmark's INCR test and returns its requests
// per second and p50.
func redisBenchmark(cfg config, port int) (float64, time.Duration, error) {
	cmd := exec.Command(cfg.redisBenchmark, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "incr",
		"-n", strconv.Itoa(cfg.incrRequests), "-c", strconv.Itoa(cfg.incrClients), "-q")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark: %w: %s", err, out)
	}
	// -q rewrites its progress line with \r; the last match is the result.
	m := incrLine.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("redis-benchmark printed no INCR figure: %q", out)
	}
	last := m[len(m)-1]
	rps, err := strconv.ParseFloat(last[1], 64)
	if err != nil {
		return 0, 0, err
	}
	var p50 time.Duration
	if last[2] != "" {
		ms, _ := strconv.ParseFloat(last[2], 64)
		p50 = time.Duration(ms * float64(time.Millisecond))
	}
	return rps, p50, nil
}

var cmdstatLine = regexp.MustCompile(`^cmdstat_([a-z|_-]+):calls=(\d+)`)

// commandCalls sums the calls of INFO commandstats: top-level calls (the
// scripts, and what clients send on their own: PING, HELLO, SCRIPT LOAD)
// and every command, including those the scripts run. The reads of the
// statistics themselves are left out.
func commandCalls(addr string) (top, all uint64, err error) {
	info, err := redistest.Do(addr, 5*time.Second, "INFO", "commandstats")
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		m := cmdstatLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || m[1] == "info" {
			continue
		}
		n, _ := strconv.ParseUint(m[2], 10, 64)
		all += n
		switch m[1] {
		case "evalsha", "eval", "ping", "hello", "client|setinfo", "script|load":
			top += n
		}
	}
	return top, all, sc.Err()
}

// redisCPU is the CPU time redis-server has used (INFO cpu: user + sys).
func redisCPU(addr string) (time.Duration, error) {
	info, err := redistest.Do(addr, 5*time.Second, "INFO", "cpu")
	if err != nil {
		return 0, err
	}
	var total float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(infoField(info, f), 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %s: %w", f, err)
		}
		total += v
	}
	return time.Duration(total * float64(time.Second)), nil
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return "?"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
