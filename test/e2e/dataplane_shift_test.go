package e2e

import (
	"testing"
	"time"
)

// TestDataplaneWeightShiftUnderLoad sends 200 requests/s for 15 s through
// `sekisho run` while the route file moves the canary 90/10 -> 50/50 (at
// 5 s) -> 0/100 (at 10 s). No request may fail, and once the last shift has
// had time to apply, every request goes to v2.
func TestDataplaneWeightShiftUnderLoad(t *testing.T) {
	v1, v2 := dpStartEcho(t, "v1"), dpStartEcho(t, "v2")
	cfg := dpNewConfig(t, dpService{"demo-v1", []int{v1.Port}}, dpService{"demo-v2", []int{v2.Port}})
	cfg.writeRoute(t, dpRef{"demo-v1", 90}, dpRef{"demo-v2", 10})
	run := dpStartRun(t, cfg.Dir)
	c := dpClient()
	defer c.CloseIdleConnections()
	url := cfg.url("/shift")
	dpWaitServes(t, run.dpProc, c, url, "v1", "v2")

	const total = 15 * time.Second
	load := dpStartLoad(t, c, url, 200, total)
	load.sleepUntil(5 * time.Second)
	cfg.writeRoute(t, dpRef{"demo-v1", 50}, dpRef{"demo-v2", 50})
	t.Logf("50/50 written at %s", load.elapsed().Round(time.Millisecond))
	load.sleepUntil(10 * time.Second)
	cfg.writeRoute(t, dpRef{"demo-v1", 0}, dpRef{"demo-v2", 100})
	t.Logf("0/100 written at %s", load.elapsed().Round(time.Millisecond))
	rs := load.wait(total + 10*time.Second)

	if len(rs) < 2800 {
		t.Errorf("only %d requests sent in %s, want about 3000 (the client fell behind)", len(rs), total)
	}
	for _, w := range []struct{ from, to time.Duration }{{0, 5 * time.Second}, {5 * time.Second, 10 * time.Second}, {10 * time.Second, total}} {
		win := dpWindow(rs, w.from, w.to)
		t.Logf("[%s, %s): %d requests, %d failed, by backend %v", w.from, w.to, len(win), len(dpFailures(win)), dpByBackend(win))
	}
	dpReportFailures(t, "while the weights shifted", rs)

	// The 50/50 phase, from 3 s after its write: about half each (400
	// requests: one sd is 2.5 points; ±15 points is far beyond chance).
	mid := dpWindow(rs, 8*time.Second, 10*time.Second)
	if n := len(mid); n > 0 {
		dpCheckShare(t, "v2 during 50/50", dpByBackend(mid)["v2"], n, 50, 15)
	}
	// The last 2 s: v2 only.
	last := dpWindow(rs, total-2*time.Second, total)
	if len(last) < 300 {
		t.Errorf("only %d requests in the last 2s, want about 400", len(last))
	}
	if got := dpByBackend(last); got["v2"] != len(last) {
		t.Errorf("last 2s after the shift to 0/100: %d requests, by backend %v; want all to v2", len(last), got)
	}
}
