package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestDataplaneRouteToNewBackendUnderLoad flips a route between two
// backends, each flip naming a cluster the previous route did not use, while
// requests flow without pause. A route change must not fail requests: the
// proxy may send a request to the old backend or the new one, but never
// answer it with an error because the new cluster's endpoints, or the old
// cluster itself, are not there at that moment.
func TestDataplaneRouteToNewBackendUnderLoad(t *testing.T) {
	v1, v2 := dpStartEcho(t, "v1"), dpStartEcho(t, "v2")
	cfg := dpNewConfig(t, dpService{"demo-v1", []int{v1.Port}}, dpService{"demo-v2", []int{v2.Port}})
	cfg.writeRoute(t, dpRef{"demo-v1", 100})
	run := dpStartRun(t, cfg.Dir)
	c := dpClient()
	defer c.CloseIdleConnections()
	url := cfg.url("/flip")
	dpWaitServes(t, run.dpProc, c, url, "v1")

	const flips = 8
	load := dpStartLoad(t, c, url, 800, 30*time.Second)
	for i := 1; i <= flips; i++ {
		to := fmt.Sprintf("demo-v%d", 1+i%2)
		cfg.writeRoute(t, dpRef{to, 100})
		dpWaitFor(t, run.dpProc, 10*time.Second, "the route to send everything to "+to, func() bool {
			w, _, err := dpConfigWeights(run.Admin, "")
			return err == nil && w["default/"+to+":80"] == 100 && len(w) == 1
		})
		time.Sleep(300 * time.Millisecond)
	}
	rs := load.stop()
	t.Logf("%d route flips, %d requests in %s, by backend %v", flips, len(rs), load.elapsed().Round(time.Millisecond), dpByBackend(rs))
	dpReportFailures(t, "while the route moved between backends", rs)
}
