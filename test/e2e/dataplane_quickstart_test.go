package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDataplaneQuickstart runs `sekisho run` on a copy of examples/quickstart
// whose fixed ports (listener 8080, backends 9001 and 9002) are rewritten to
// free ones, checks the 90/10 split, and checks that /metrics counts the
// requests of both backends under the quickstart's route.
func TestDataplaneQuickstart(t *testing.T) {
	v1, v2 := dpStartEcho(t, "demo-v1"), dpStartEcho(t, "demo-v2")
	listen := dpPort(t)
	dir := t.TempDir()
	src := filepath.Join("..", "..", "examples", "quickstart")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	replaced := map[string]bool{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for old, port := range map[string]int{"8080": listen, "9001": v1.Port, "9002": v2.Port} {
			if strings.Contains(s, old) {
				replaced[old] = true
				s = strings.ReplaceAll(s, old, strconv.Itoa(port))
			}
		}
		dpWriteFile(t, filepath.Join(dir, e.Name()), s)
	}
	for _, old := range []string{"8080", "9001", "9002"} {
		if !replaced[old] {
			t.Fatalf("examples/quickstart no longer mentions port %s, which this test rewrites", old)
		}
	}

	run := dpStartRun(t, dir)
	c := dpClient()
	defer c.CloseIdleConnections()
	url := fmt.Sprintf("http://127.0.0.1:%d/hello", listen)
	dpWaitServes(t, run.dpProc, c, url, "demo-v1", "demo-v2")

	const n = 1000
	counts := dpCount(t, c, url, n)
	// Binomial sd at n=1000, p=0.1 is 0.95 points: ±4 points is > 4 sigma.
	dpCheckShare(t, "demo-v1", counts["demo-v1"], n, 90, 4)
	dpCheckShare(t, "demo-v2", counts["demo-v2"], n, 10, 4)

	// Every answered request is counted once it has been logged; allow the
	// counters a moment to catch up with the last responses.
	series := regexp.MustCompile(`^sekisho_requests_total\{(.*)\} (\S+)$`)
	label := func(labels, name string) string {
		m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(labels)
		if m == nil {
			return ""
		}
		return m[1]
	}
	var last string
	ok := false
	deadline := time.Now().Add(10 * time.Second)
	for !ok && time.Now().Before(deadline) {
		body, err := dpAdminGet(run.Admin, "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		last = body
		got := map[string]float64{}
		for _, line := range strings.Split(body, "\n") {
			m := series.FindStringSubmatch(line)
			if m == nil || label(m[1], "response_code") != "200" {
				continue
			}
			route := label(m[1], "route")
			if !strings.HasPrefix(route, "httproute/default/demo/") {
				continue
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			got[label(m[1], "backend")] += v
		}
		ok = got["default/demo-v1:80"] >= float64(counts["demo-v1"]) && got["default/demo-v2:80"] >= float64(counts["demo-v2"])
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("/metrics does not count %v 200s for backends default/demo-v1:80 and default/demo-v2:80 on a route of default/demo; got:\n%s",
			counts, dpGrepLines(last, "sekisho_requests_total"))
	}
}

func dpGrepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
