package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sekisho/sekisho/ir"
)

func TestOutlierEjectionMovesTraffic(t *testing.T) {
	var badHits atomic.Int64
	bad := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { badHits.Add(1); w.WriteHeader(500) })
	good := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, bad.URL), endpointOf(t, good.URL))
	r := route("r", prefix("/"))
	r.Forward = fwd(c.Name)
	rt, addr := startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{r}, c)), "default/eg/http")
	fails := 0
	for i := 0; i < 40; i++ {
		resp, _ := get(t, "http://"+addr+"/")
		if resp.StatusCode == 500 {
			fails++
		}
	}
	// Round robin: the bad endpoint fails 5 times in a row (every second
	// request), is ejected, and the rest goes to the good one.
	if badHits.Load() != 5 || fails != 5 {
		t.Errorf("bad endpoint got %d requests (%d failures), want 5", badHits.Load(), fails)
	}
	var b writerString
	rt.WriteClusters(&b)
	if !contains(string(b), "health_flags::/failed_outlier_check") {
		t.Errorf("clusters page does not show the ejection:\n%s", b)
	}
}

type writerString []byte

func (w *writerString) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// BenchmarkProxiedRequest measures one small GET through the runtime to a
// local backend, over keep-alive connections on both sides.
func BenchmarkProxiedRequest(b *testing.B) {
	be := newRecorder(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	c := cluster("default/b:80", endpointOf(b, be.URL))
	r := route("r", prefix("/"))
	r.Forward = fwd(c.Name)
	_, addr := startRuntime(b, snapshotOf(b, httpGateway([]*ir.Route{r}, c)), "default/eg/http")
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	cl := &http.Client{Transport: tr}
	url := "http://" + addr + "/api/items"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			resp, err := cl.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkDirectRequest is the baseline of BenchmarkProxiedRequest: the same
// client and backend without the proxy.
func BenchmarkDirectRequest(b *testing.B) {
	be := newRecorder(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	cl := &http.Client{Transport: tr}
	url := be.URL + "/api/items"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			resp, err := cl.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			_ = resp.Body.Close()
		}
	})
}

// BenchmarkProxiedRequestRaw is BenchmarkProxiedRequest with a minimal
// client (one keep-alive connection per goroutine, 64 in all, requests
// written and responses read by hand), so that the client's own cost does
// not hide the proxy's in a profile.
func BenchmarkProxiedRequestRaw(b *testing.B) {
	be := newRecorder(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	c := cluster("default/b:80", endpointOf(b, be.URL))
	r := route("r", prefix("/"))
	r.Forward = fwd(c.Name)
	_, addr := startRuntime(b, snapshotOf(b, httpGateway([]*ir.Route{r}, c)), "default/eg/http")
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		req := []byte("GET /api/items HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: raw\r\n\r\n")
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
