package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int
	Non2xx   int
	Errors   string        // wrk's "Socket errors" line, when there is one
	CPU      time.Duration // wrk's own CPU time (user + system)
}

// runWrk runs `wrk -tT -cC -dD --latency url` and reads its report.
func runWrk(bin, url string, threads, conns int, d time.Duration) (wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s",
		"--latency", url,
	}
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("running wrk %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	r, err := parseWrk(out.String())
	if ps := cmd.ProcessState; ps != nil {
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return r, fmt.Errorf("reading the report of wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return r, nil
}

func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	var got50, got99, gotRPS bool
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "50%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			r.P50, got50 = d, true
		case len(f) == 2 && f[0] == "99%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			r.P99, got99 = d, true
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", f[1], err)
			}
			r.RPS, gotRPS = v, true
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.Atoi(f[0])
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			r.Non2xx, _ = strconv.Atoi(f[len(f)-1])
		case strings.HasPrefix(strings.TrimSpace(line), "Socket errors:"):
			r.Errors = strings.TrimSpace(line)
		}
	}
	if !got50 || !got99 || !gotRPS {
		return r, fmt.Errorf("no latency distribution or Requests/sec line")
	}
	return r, nil
}

// parseWrkDuration reads wrk's durations: 512.00us, 1.06ms, 1.20s, 2.00m.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("duration %q: unknown unit", s)
}
