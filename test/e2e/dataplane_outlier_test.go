package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestDataplaneOutlierEjection kills (SIGKILL) one of a Service's two
// endpoints while requests flow. The route has no retry policy, so some
// requests fail, but the dead endpoint must be ejected after a few
// consecutive failures and the traffic move to the healthy one.
func TestDataplaneOutlierEjection(t *testing.T) {
	a, b := dpStartEcho(t, "pool-a"), dpStartEcho(t, "pool-b")
	cfg := dpNewConfig(t, dpService{"pool", []int{a.Port, b.Port}})
	cfg.writeRoute(t, dpRef{"pool", 1})
	run := dpStartRun(t, cfg.Dir)
	c := dpClient()
	defer c.CloseIdleConnections()
	url := cfg.url("/outlier")
	dpWaitServes(t, run.dpProc, c, url, "pool-a", "pool-b")

	// Both endpoints serve before the kill.
	before := dpCount(t, c, url, 20)
	if before["pool-a"] == 0 || before["pool-b"] == 0 {
		t.Fatalf("before the kill: %v, want both endpoints", before)
	}

	a.kill()
	t.Logf("pool-a killed")

	// Within maxRequests after the kill, want a run of `run` consecutive
	// successes, all from pool-b.
	const maxRequests, wantRun, maxFailures = 50, 20, 10
	var (
		failures, streak, sent int
		outcomes               []string
	)
	deadline := time.Now().Add(30 * time.Second)
	for sent < maxRequests && streak < wantRun && time.Now().Before(deadline) {
		sent++
		got, err := dpGet(c, url)
		switch {
		case err != nil:
			failures++
			streak = 0
			outcomes = append(outcomes, "fail")
		case got == "pool-b":
			streak++
			outcomes = append(outcomes, "b")
		default:
			streak = 0
			outcomes = append(outcomes, got)
		}
	}
	t.Logf("after the kill: %d requests, %d failed: %s", sent, failures, strings.Join(outcomes, " "))
	if streak < wantRun {
		t.Errorf("no %d consecutive successes from pool-b within %d requests after pool-a was killed", wantRun, maxRequests)
	}
	if failures > maxFailures {
		t.Errorf("%d requests failed after the kill, want at most %d (consecutive-5xx ejection should stop them)", failures, maxFailures)
	}
	if body, err := dpAdminGet(run.Admin, "/clusters"); err == nil {
		t.Logf("/clusters:\n%s", dpGrepLines(body, "health_flags"))
		if !strings.Contains(body, "failed_outlier_check") {
			t.Errorf("/clusters shows no endpoint ejected:\n%s", body)
		}
	} else {
		t.Errorf("/clusters: %v", err)
	}
}
