package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// ftHTTPEnv is one `sekisho run` serving testdata/features/http.yaml.
type ftHTTPEnv struct {
	port   int
	base   string // http://127.0.0.1:port
	client *http.Client
	flaky  *ftRecorder
	mirror *ftRecorder
}

func startFTHTTPEnv(t *testing.T) *ftHTTPEnv {
	t.Helper()
	alpha := ftEcho(t, "alpha")
	beta := ftEcho(t, "beta")
	// flaky answers 503 to the first ?fail=N attempts of each X-Req-Id
	// (every attempt carries the same query and headers), then 200.
	var mu sync.Mutex
	attempts := map[string]int{}
	flaky := ftStartRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Req-Id")
		mu.Lock()
		attempts[id]++
		n := attempts[id]
		mu.Unlock()
		fail, _ := strconv.Atoi(r.URL.Query().Get("fail"))
		code := http.StatusServiceUnavailable
		if c, err := strconv.Atoi(r.URL.Query().Get("code")); err == nil {
			code = c
		}
		if n <= fail {
			w.WriteHeader(code)
			fmt.Fprintf(w, "attempt %d failed\n", n)
			return
		}
		fmt.Fprintf(w, "attempt %d ok\n", n)
	})
	mirror := ftStartRecorder(t, nil)
	port := ftPort(t)
	dir := ftConfigDir(t, "http.yaml", map[string]string{"PORT": strconv.Itoa(port)},
		ftServiceYAML(t, "alpha", alpha, ""),
		ftServiceYAML(t, "beta", beta, ""),
		ftServiceYAML(t, "flaky", flaky.Addr, ""),
		ftServiceYAML(t, "mirror", mirror.Addr, ""),
	)
	ftRun(t, dir)
	env := &ftHTTPEnv{port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: ftClient(t), flaky: flaky, mirror: mirror}
	// Every route is in one snapshot: once the last HTTPRoute answers, all do.
	waitFor(t, 15*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, env.base+"/", nil)
		req.Host = "x.wild.example"
		resp, err := env.client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Echo-Backend") == "beta"
	})
	return env
}

// echo sends a request and decodes the echo backend's answer; it fails the
// test unless the answer is 200 from an echo backend.
func (e *ftHTTPEnv) echo(t *testing.T, method, target, host string, hdr http.Header) ftEchoed {
	t.Helper()
	resp, body := ftDo(t, e.client, method, e.base+target, host, hdr)
	got, ok := ftDecodeEcho(body)
	if resp.StatusCode != http.StatusOK || !ok {
		t.Fatalf("%s %s (Host %s): status %d, body %q; want 200 from an echo backend", method, target, host, resp.StatusCode, body)
	}
	return got
}

func TestFeaturesHTTPRoute(t *testing.T) {
	e := startFTHTTPEnv(t)
	hostPort := func(h string) string { return h + ":" + strconv.Itoa(e.port) }

	t.Run("matches", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, target string
			hdr                  http.Header
			wantRule             string
		}{
			{"exact", "GET", "/exact", nil, "exact"},
			{"exact beats a prefix of the same path", "GET", "/exact/", nil, "exact-prefix"},
			{"exact with a suffix is the prefix rule", "GET", "/exact/x", nil, "exact-prefix"},
			{"prefix itself", "GET", "/foo", nil, "prefix"},
			{"prefix with a trailing slash", "GET", "/foo/", nil, "prefix"},
			{"prefix, deeper", "GET", "/foo/bar", nil, "prefix"},
			{"prefix is element-wise", "GET", "/foobar", nil, "catchall"},
			{"regex", "GET", "/re/123", nil, "regex"},
			{"regex matches the whole path", "GET", "/re/123/x", nil, "catchall"},
			{"regex, no match", "GET", "/re/abc", nil, "catchall"},
			{"longest prefix wins", "GET", "/p/long/x", nil, "long"},
			{"longest prefix is element-wise", "GET", "/p/longer", nil, "short"},
			{"short prefix", "GET", "/p/x", nil, "short"},
			{"no header", "GET", "/h", nil, "h-none"},
			{"header exact", "GET", "/h", http.Header{"X-Env": {"prod"}}, "header-exact"},
			{"header value is case-sensitive", "GET", "/h", http.Header{"X-Env": {"PROD"}}, "h-none"},
			{"two header matches beat one", "GET", "/h", http.Header{"X-Env": {"prod"}, "X-Tier": {"gold"}}, "two-headers"},
			{"header regex", "GET", "/h/x", http.Header{"X-Env": {"staging"}}, "header-regex"},
			{"header regex matches the whole value", "GET", "/h", http.Header{"X-Env": {"prestage"}}, "h-none"},
			{"query param", "GET", "/q?tenant=acme", nil, "query"},
			{"query param among others", "GET", "/q/x?a=1&tenant=acme", nil, "query"},
			{"query param percent-decoded", "GET", "/q?tenant=ac%6De", nil, "query"},
			{"query param other value", "GET", "/q?tenant=other", nil, "q-none"},
			{"query param name is case-sensitive", "GET", "/q?Tenant=acme", nil, "q-none"},
			{"method", "POST", "/m", nil, "method"},
			{"other method", "GET", "/m", nil, "m-none"},
			{"method beats headers", "POST", "/mh", http.Header{"X-Env": {"prod"}}, "mh-method"},
			{"header alone", "GET", "/mh", http.Header{"X-Env": {"prod"}}, "mh-header"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := e.echo(t, tc.method, tc.target, "match.example", tc.hdr)
				if rule := strings.Join(got.Headers["X-Rule"], ","); rule != tc.wantRule {
					t.Errorf("%s %s %v: rule %q, want %q", tc.method, tc.target, tc.hdr, rule, tc.wantRule)
				}
			})
		}
	})

	t.Run("hostnames", func(t *testing.T) {
		for _, tc := range []struct {
			name, host  string
			wantStatus  int
			wantBackend string
		}{
			{"exact hostname", "host-a.example", 200, "alpha"},
			{"hostname with the port", hostPort("host-a.example"), 200, "alpha"},
			{"hostname is case-insensitive", "HOST-A.example", 200, "alpha"},
			{"wildcard", "x.wild.example", 200, "beta"},
			{"wildcard, two labels", "y.x.wild.example", 200, "beta"},
			{"wildcard does not match its own suffix", "wild.example", 404, ""},
			{"unknown host", "unknown.example", 404, ""},
			{"no Host but the address", "127.0.0.1", 404, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := ftDo(t, e.client, "GET", e.base+"/any", tc.host, nil)
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("Host %s: status %d, want %d (body %q)", tc.host, resp.StatusCode, tc.wantStatus, body)
				}
				if tc.wantBackend != "" {
					if got, _ := ftDecodeEcho(body); got.Backend != tc.wantBackend {
						t.Errorf("Host %s: backend %q, want %q", tc.host, got.Backend, tc.wantBackend)
					}
				}
			})
		}
	})

	t.Run("request header modifier", func(t *testing.T) {
		got := e.echo(t, "GET", "/reqhdr", "headers.example", http.Header{
			"X-Set": {"zero"}, "X-Add": {"one"}, "X-Remove": {"gone"}, "X-Keep": {"kept"},
		})
		for k, want := range map[string][]string{
			"X-Set":    {"one"},
			"X-Add":    {"one", "two"},
			"X-Remove": nil,
			"X-Keep":   {"kept"},
		} {
			// Several values may arrive as several lines or one joined line.
			var vals []string
			for _, v := range got.Headers[k] {
				for p := range strings.SplitSeq(v, ",") {
					vals = append(vals, strings.TrimSpace(p))
				}
			}
			if !slices.Equal(vals, want) {
				t.Errorf("backend saw %s = %q, want %q", k, vals, want)
			}
		}
	})

	t.Run("response header modifier", func(t *testing.T) {
		resp, body := ftDo(t, e.client, "GET", e.base+"/resphdr", "headers.example", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		if got := resp.Header.Values("X-Echo-Backend"); !slices.Equal(got, []string{"masked"}) {
			t.Errorf("X-Echo-Backend = %q, want [masked] (set replaces the backend's value)", got)
		}
		if got := resp.Header.Values("X-Served-By"); !slices.Equal(got, []string{"sekisho"}) {
			t.Errorf("X-Served-By = %q, want [sekisho]", got)
		}
		if got := resp.Header.Values("Content-Type"); len(got) != 0 {
			t.Errorf("Content-Type = %q, want it removed", got)
		}
		if got, ok := ftDecodeEcho(body); !ok || got.Backend != "alpha" {
			t.Errorf("body %q is not alpha's answer", body)
		}
	})

	t.Run("request redirect", func(t *testing.T) {
		p := strconv.Itoa(e.port)
		for _, tc := range []struct {
			name, target, host string
			wantCode           int
			wantLocation       string
		}{
			{"scheme https drops the port (443 is the default)", "/scheme?a=1", hostPort("redirect.example"), 302, "https://redirect.example/scheme?a=1"},
			{"hostname keeps the listener port", "/host/x", hostPort("redirect.example"), 301, "http://other.example:" + p + "/host/x"},
			{"hostname, Host without a port: the listener port", "/host/x", "redirect.example", 301, "http://other.example:" + p + "/host/x"},
			{"port and scheme", "/port", hostPort("redirect.example"), 308, "https://redirect.example:8443/port"},
			{"port 80 over http is left out", "/port80/y", hostPort("redirect.example"), 302, "http://redirect.example/port80/y"},
			{"replace full path", "/full/x", hostPort("redirect.example"), 303, "http://redirect.example:" + p + "/new"},
			{"replace prefix", "/prefix/x/y?q=1", hostPort("redirect.example"), 307, "http://redirect.example:" + p + "/p/x/y?q=1"},
			{"replace prefix, the prefix itself", "/prefix", hostPort("redirect.example"), 307, "http://redirect.example:" + p + "/p"},
			{"replace prefix with /", "/to-root/x", hostPort("redirect.example"), 302, "http://redirect.example:" + p + "/x"},
			{"replace prefix with /, the prefix itself", "/to-root", hostPort("redirect.example"), 302, "http://redirect.example:" + p + "/"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := ftDo(t, e.client, "GET", e.base+tc.target, tc.host, nil)
				if resp.StatusCode != tc.wantCode {
					t.Errorf("GET %s: status %d, want %d (body %q)", tc.target, resp.StatusCode, tc.wantCode, body)
				}
				if got := resp.Header.Get("Location"); got != tc.wantLocation {
					t.Errorf("GET %s (Host %s): Location %q, want %q", tc.target, tc.host, got, tc.wantLocation)
				}
			})
		}
	})

	t.Run("url rewrite", func(t *testing.T) {
		for _, tc := range []struct {
			name, target       string
			wantPath, wantHost string
		}{
			{"hostname", "/rw-host/x", "/rw-host/x", "internal.example"},
			{"full path", "/rw-full/a/b", "/rewritten", ""},
			{"prefix", "/rw-prefix/a/b", "/new/a/b", ""},
			{"prefix, the prefix itself", "/rw-prefix", "/new", ""},
			{"prefix to /", "/rw-root/a/b", "/a/b", "root.internal"},
			{"prefix to /, the prefix itself", "/rw-root", "/", "root.internal"},
			{"prefix to /, with a trailing slash", "/rw-root/", "/", "root.internal"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := e.echo(t, "GET", tc.target+"?k=v", "rewrite.example", nil)
				if got.Path != tc.wantPath || got.RawQuery != "k=v" {
					t.Errorf("GET %s: backend saw path %q query %q, want %q k=v", tc.target, got.Path, got.RawQuery, tc.wantPath)
				}
				wantHost := tc.wantHost
				if wantHost == "" {
					wantHost = "rewrite.example"
				}
				if got.Host != wantHost {
					t.Errorf("GET %s: backend saw Host %q, want %q", tc.target, got.Host, wantHost)
				}
			})
		}
	})

	t.Run("url rewrite on a path match without a type (PathPrefix by default)", func(t *testing.T) {
		resp, body := ftDo(t, e.client, "GET", e.base+"/dflt/x", "defaults.example", nil)
		got, ok := ftDecodeEcho(body)
		if resp.StatusCode != http.StatusOK || !ok {
			t.Fatalf("GET /dflt/x: status %d, body %q; want 200 from alpha (the HTTPRoute is valid: an omitted path type is PathPrefix)", resp.StatusCode, body)
		}
		if got.Path != "/new/x" {
			t.Errorf("GET /dflt/x: backend saw %q, want /new/x", got.Path)
		}
	})

	t.Run("request mirror", func(t *testing.T) {
		id := fmt.Sprintf("mirror-%d", time.Now().UnixNano())
		resp, body := ftDoBody(t, e.client, "POST", e.base+"/mirrored/x?m=1", "mirror.example", http.Header{"X-Req-Id": {id}}, "mirrored body")
		got, ok := ftDecodeEcho(body)
		if resp.StatusCode != http.StatusOK || !ok || got.Backend != "alpha" {
			t.Fatalf("status %d, body %q; want 200 from alpha", resp.StatusCode, body)
		}
		var copies []ftSeen
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			copies = nil
			for _, s := range e.mirror.Seen() {
				if s.Header.Get("X-Req-Id") == id {
					copies = append(copies, s)
				}
			}
			if len(copies) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(copies) != 1 {
			t.Fatalf("the mirror got %d copies of the request, want 1", len(copies))
		}
		if c := copies[0]; c.Path != "/mirrored/x" || c.Method != "POST" || c.Body != "mirrored body" {
			t.Errorf("the mirror saw %s %s with body %q, want POST /mirrored/x with %q", c.Method, c.Path, c.Body, "mirrored body")
		}
		if !strings.HasPrefix(copies[0].Host, "mirror.example") {
			t.Errorf("the mirror saw Host %q, want mirror.example (or its -shadow form)", copies[0].Host)
		}
	})

	t.Run("timeouts", func(t *testing.T) {
		for _, tc := range []struct {
			name, target string
			wantCode     int
			min, max     time.Duration
		}{
			{"request timeout", "/request?delay=5s", 504, 400 * time.Millisecond, 3 * time.Second},
			{"request within the timeout", "/request?delay=50ms", 200, 0, 3 * time.Second},
			{"backend request timeout", "/backend?delay=5s", 504, 300 * time.Millisecond, 3 * time.Second},
			{"backend request within the timeout", "/backend?delay=50ms", 200, 0, 3 * time.Second},
		} {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				resp, body := ftDo(t, e.client, "GET", e.base+tc.target, "timeout.example", nil)
				took := time.Since(start)
				if resp.StatusCode != tc.wantCode {
					t.Errorf("GET %s: status %d, want %d (body %q)", tc.target, resp.StatusCode, tc.wantCode, body)
				}
				if took < tc.min || took > tc.max {
					t.Errorf("GET %s answered after %s, want between %s and %s", tc.target, took, tc.min, tc.max)
				}
			})
		}
	})

	t.Run("retry", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, target, body string
			wantCode                   int
			wantAttempts               int
		}{
			{"a 503 is retried until it succeeds", "GET", "/retry?fail=2", "", 200, 3},
			{"attempts bound the retries", "GET", "/retry?fail=5", "", 503, 3},
			{"a code not listed is not retried", "GET", "/retry?fail=1&code=500", "", 500, 1},
			{"no retry policy, one attempt", "GET", "/noretry?fail=1", "", 503, 1},
			{"a small body is replayed on each attempt", "POST", "/retry?fail=2", "the same body every time", 200, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("retry-%s-%d", tc.target, time.Now().UnixNano())
				resp, body := ftDoBody(t, e.client, tc.method, e.base+tc.target, "retry.example", http.Header{"X-Req-Id": {id}}, tc.body)
				if resp.StatusCode != tc.wantCode {
					t.Errorf("%s %s: status %d, want %d (body %q)", tc.method, tc.target, resp.StatusCode, tc.wantCode, body)
				}
				var attempts []ftSeen
				for _, s := range e.flaky.Seen() {
					if s.Header.Get("X-Req-Id") == id {
						attempts = append(attempts, s)
					}
				}
				if len(attempts) != tc.wantAttempts {
					t.Errorf("%s %s: the backend got %d attempts, want %d", tc.method, tc.target, len(attempts), tc.wantAttempts)
				}
				for i, a := range attempts {
					if a.Method != tc.method || a.Body != tc.body {
						t.Errorf("attempt %d: %s with body %q, want %s with %q", i+1, a.Method, a.Body, tc.method, tc.body)
					}
				}
			})
		}
	})

	t.Run("weighted backends", func(t *testing.T) {
		for _, tc := range []struct {
			name, target string
			want         []string // backends that must each get some requests; no other may
		}{
			{"a weight-0 backend gets nothing", "/zero", []string{"alpha"}},
			{"equal weights both get requests", "/split", []string{"alpha", "beta"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				counts := map[string]int{}
				for range 40 {
					got := e.echo(t, "GET", tc.target, "backends.example", nil)
					counts[got.Backend]++
				}
				for _, b := range tc.want {
					if counts[b] == 0 {
						t.Errorf("%s: backend %s got none of 40 requests: %v", tc.target, b, counts)
					}
				}
				for b := range counts {
					if !slices.Contains(tc.want, b) {
						t.Errorf("%s: backend %s got %d requests, want none: %v", tc.target, b, counts[b], counts)
					}
				}
			})
		}
	})

	t.Run("backendRef to a missing Service answers 500", func(t *testing.T) {
		resp, body := ftDo(t, e.client, "GET", e.base+"/missing", "backends.example", nil)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status %d, want 500 (body %q)", resp.StatusCode, body)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		cfg, err := websocket.NewConfig("ws://"+hostPort("backends.example")+"/ws", "http://backends.example/")
		if err != nil {
			t.Fatal(err)
		}
		ws, err := websocket.NewClient(cfg, conn)
		if err != nil {
			t.Fatalf("WebSocket handshake through the proxy: %v", err)
		}
		defer ws.Close()
		for _, msg := range []string{"hello", strings.Repeat("x", 4000), "bye"} {
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatalf("sending: %v", err)
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil {
				t.Fatalf("receiving: %v", err)
			}
			if got != msg {
				t.Fatalf("echoed %d bytes %q…, want %d bytes %q…", len(got), got[:min(len(got), 10)], len(msg), msg[:min(len(msg), 10)])
			}
		}
	})
}
