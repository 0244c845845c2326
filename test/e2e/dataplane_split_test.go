package e2e

import (
	"testing"
)

// TestDataplaneCanarySplit sends 2 000 requests through a 90/10 HTTPRoute
// served by `sekisho run` and checks that each backend gets its share.
func TestDataplaneCanarySplit(t *testing.T) {
	v1, v2 := dpStartEcho(t, "v1"), dpStartEcho(t, "v2")
	cfg := dpNewConfig(t, dpService{"demo-v1", []int{v1.Port}}, dpService{"demo-v2", []int{v2.Port}})
	cfg.writeRoute(t, dpRef{"demo-v1", 90}, dpRef{"demo-v2", 10})
	run := dpStartRun(t, cfg.Dir)
	c := dpClient()
	defer c.CloseIdleConnections()
	dpWaitServes(t, run.dpProc, c, cfg.url("/canary"), "v1", "v2")

	const n = 2000
	counts := dpCount(t, c, cfg.url("/canary"), n)
	if other := n - counts["v1"] - counts["v2"]; other != 0 {
		t.Errorf("%d answers from neither v1 nor v2: %v", other, counts)
	}
	// The binomial standard deviation of 2 000 draws at p=0.1 is 0.67
	// points, so ±3 points is more than 4 sigma.
	dpCheckShare(t, "v1", counts["v1"], n, 90, 3)
	dpCheckShare(t, "v2", counts["v2"], n, 10, 3)
}
