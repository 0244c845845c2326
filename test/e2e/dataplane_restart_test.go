package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestDataplaneControlPlaneRestart runs `sekisho controller` and `sekisho
// proxy` as separate processes, SIGKILLs the controller under steady
// traffic, and restarts it on the same xDS address. The proxy must keep
// serving its last configuration (no failed request, /readyz 200 all
// along), reconnect, and apply a route change made after the restart.
func TestDataplaneControlPlaneRestart(t *testing.T) {
	v1, v2 := dpStartEcho(t, "v1"), dpStartEcho(t, "v2")
	cfg := dpNewConfig(t, dpService{"demo-v1", []int{v1.Port}}, dpService{"demo-v2", []int{v2.Port}})
	cfg.writeRoute(t, dpRef{"demo-v1", 90}, dpRef{"demo-v2", 10})
	xds, adm := freeAddr(t), freeAddr(t)
	ctl := dpStartController(t, cfg.Dir, xds, adm)
	px := dpStartProxy(t, xds, cfg.node())
	c := dpClient()
	defer c.CloseIdleConnections()
	url := cfg.url("/restart")
	dpWaitServes(t, px.dpProc, c, url, "v1", "v2")
	dpWaitConnected(t, px, true, 10*time.Second)

	// /readyz of the proxy is watched from now to the end.
	var (
		mu       sync.Mutex
		notReady []string
	)
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if code := dpAdminStatus(px.Admin, "/readyz"); code != http.StatusOK {
				mu.Lock()
				notReady = append(notReady, time.Now().Format("15:04:05.000")+": "+http.StatusText(code))
				mu.Unlock()
			}
		}
	}()
	var stopWatchOnce sync.Once
	endWatch := func() { stopWatchOnce.Do(func() { close(stopWatch) }); <-watchDone }
	t.Cleanup(endWatch)

	load := dpStartLoad(t, c, url, 100, 45*time.Second)
	load.sleepUntil(time.Second)
	ctl.kill()
	killedAt := load.elapsed()
	t.Logf("controller killed at %s", killedAt.Round(time.Millisecond))
	dpWaitConnected(t, px, false, 10*time.Second)
	load.sleepUntil(killedAt + 3*time.Second)

	ctl2 := dpStartController(t, cfg.Dir, xds, adm)
	restartedAt := load.elapsed()
	t.Logf("controller restarted at %s", restartedAt.Round(time.Millisecond))
	dpWaitConnected(t, px, true, 20*time.Second)
	t.Logf("proxy reconnected at %s", load.elapsed().Round(time.Millisecond))

	// The new weights keep both clusters, so that this test is about the
	// reconnection only (see TestDataplaneRouteToNewBackendUnderLoad for
	// a route change that adds a cluster).
	cfg.writeRoute(t, dpRef{"demo-v1", 10}, dpRef{"demo-v2", 90})
	writtenAt := load.elapsed()
	dpWaitFor(t, ctl2.dpProc, 15*time.Second, "the proxy's route table to have the 10/90 weights", func() bool {
		w, _, err := dpConfigWeights(px.Admin, "")
		return err == nil && w["default/demo-v1:80"] == 10 && w["default/demo-v2:80"] == 90
	})
	appliedAt := load.elapsed()
	t.Logf("route change written at %s, in the proxy at %s", writtenAt.Round(time.Millisecond), appliedAt.Round(time.Millisecond))
	load.sleepUntil(appliedAt + 2*time.Second)
	rs := load.stop()
	endWatch()
	// The proxy first, so that the controller need not wait out the
	// shutdown grace of its open ADS stream.
	px.stop()

	outage := dpWindow(rs, killedAt, killedAt+3*time.Second)
	t.Logf("3 s after the kill: %d requests, by backend %v", len(outage), dpByBackend(outage))
	if len(outage) < 200 {
		t.Errorf("only %d requests in the 3 s after the kill, want about 300", len(outage))
	}
	// 300 requests at p=0.9: one sd is 1.7 points; ±10 is far beyond chance.
	if len(outage) > 0 {
		dpCheckShare(t, "v1 while the controller was down", dpByBackend(outage)["v1"], len(outage), 90, 10)
	}
	dpReportFailures(t, "with the controller killed and restarted", rs)
	// Requests sent after the proxy had the new route (with 200 ms for the
	// ones already in flight) follow the new weights (180 requests at
	// p=0.9: one sd is 2.2 points).
	after := dpWindow(rs, appliedAt+200*time.Millisecond, appliedAt+2*time.Second)
	t.Logf("after the route change: %d requests, by backend %v", len(after), dpByBackend(after))
	if len(after) < 100 {
		t.Errorf("only %d requests after the route change was applied, want about 180", len(after))
	} else {
		dpCheckShare(t, "v2 after the route change", dpByBackend(after)["v2"], len(after), 90, 12)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notReady) > 0 {
		t.Errorf("proxy /readyz was not 200 %d times (the proxy keeps its last configuration): %v", len(notReady), notReady)
	}
}

// dpWaitConnected waits until the proxy's /config_dump says its ADS stream
// is (or is not) connected.
func dpWaitConnected(t *testing.T, px *dpRunning, want bool, timeout time.Duration) {
	t.Helper()
	what := "/config_dump connected: false"
	if want {
		what = "/config_dump connected: true"
	}
	dpWaitFor(t, px.dpProc, timeout, what, func() bool {
		_, connected, err := dpConfigWeights(px.Admin, "")
		return err == nil && connected == want
	})
}
