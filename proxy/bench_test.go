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

// BenchmarkProxiedRequestLean is BenchmarkProxiedRequestRaw with a backend
// and a client that allocate nothing per request (wrk's request, a fixed
// response), so that allocs/op and B/op are the proxy's own.
func BenchmarkProxiedRequestLean(b *testing.B) {
	be := newLeanBackend(b)
	c := cluster("default/b:80", endpointOf(b, be))
	r := route("r", prefix("/"))
	r.Forward = fwd(c.Name)
	_, addr := startRuntime(b, snapshotOf(b, httpGateway([]*ir.Route{r}, c)), "default/eg/http")
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
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
		buf := make([]byte, 4096)
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readLeanResponse(conn, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// newLeanBackend serves every request on a connection with the same small
// JSON response, reading heads without parsing them (requests without a
// body only).
func newLeanBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n{\"service\":\"bench\",\"ok\":true}")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8192)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						i := indexHeadEnd(buf[:n])
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						n = copy(buf, buf[i:n])
					}
					if n == len(buf) {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func indexHeadEnd(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 4
		}
	}
	return -1
}

// readLeanResponse reads one response with a Content-Length into buf.
func readLeanResponse(conn net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := conn.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
		end := indexHeadEnd(buf[:n])
		if end < 0 {
			continue
		}
		head := buf[:end]
		const cl = "\r\nContent-Length: "
		clen := -1
		for i := 0; i+len(cl) <= len(head); i++ {
			if string(head[i:i+len(cl)]) == cl {
				clen = 0
				for j := i + len(cl); head[j] >= '0' && head[j] <= '9'; j++ {
					clen = clen*10 + int(head[j]-'0')
				}
				break
			}
		}
		if clen < 0 || string(head[9:12]) != "200" {
			return io.ErrUnexpectedEOF
		}
		for n < end+clen {
			m, err := conn.Read(buf[n:])
			if err != nil {
				return err
			}
			n += m
		}
		return nil
	}
}
