package proxy

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/ir"
)

func TestHeaderMutationsAndRewrites(t *testing.T) {
	be := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Secret", "s")
		w.Header().Set("X-Resp-Keep", "1")
		_, _ = io.WriteString(w, "ok")
	})
	c := cluster("default/b:80", endpointOf(t, be.URL))

	hdrs := route("hdrs", prefix("/hdrs"))
	hdrs.Forward = fwd(c.Name)
	hdrs.RequestHeaders = &ir.HeaderModifier{
		Set:    []ir.Header{{Name: "X-Set", Value: "new"}},
		Add:    []ir.Header{{Name: "X-Add", Value: "two"}},
		Remove: []string{"X-Remove"},
	}
	hdrs.ResponseHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Resp", Value: "r"}}, Remove: []string{"X-Backend-Secret"}}

	pre := route("pre", prefix("/old"))
	pre.Forward = fwd(c.Name)
	pre.Forward.Rewrite = &ir.URLRewrite{Hostname: "internal.example", Path: &ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: "/new"}}

	strip := route("strip", prefix("/strip"))
	strip.Forward = fwd(c.Name)
	strip.Forward.Rewrite = &ir.URLRewrite{Path: &ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: "/"}}

	full := route("full", prefix("/full"))
	full.Forward = fwd(c.Name)
	full.Forward.Rewrite = &ir.URLRewrite{Path: &ir.PathModifier{Type: ir.ReplaceFullPath, Value: "/replaced"}}

	wb := route("wb", prefix("/wb"))
	wb.Forward = &ir.Forward{Backends: []ir.WeightedBackend{{Cluster: c.Name, Weight: 1,
		RequestHeaders:  &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Backend-Level", Value: "yes"}}},
		ResponseHeaders: &ir.HeaderModifier{Add: []ir.Header{{Name: "X-Backend-Resp", Value: "yes"}}},
	}}}

	s := snapshotOf(t, httpGateway([]*ir.Route{hdrs, pre, strip, full, wb}, c))
	_, addr := startRuntime(t, s, "default/eg/http")

	resp, _ := get(t, "http://"+addr+"/hdrs", "X-Set", "old", "X-Add", "one", "X-Remove", "gone")
	got := be.last(t)
	if v := got.Header.Values("X-Set"); len(v) != 1 || v[0] != "new" {
		t.Errorf("X-Set = %q, want [new]", v)
	}
	if v := got.Header.Values("X-Add"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("X-Add = %q, want [one two]", v)
	}
	if got.Header.Get("X-Remove") != "" {
		t.Error("X-Remove reached the backend")
	}
	if resp.Header.Get("X-Resp") != "r" || resp.Header.Get("X-Backend-Secret") != "" || resp.Header.Get("X-Resp-Keep") != "1" {
		t.Errorf("response headers = %v", resp.Header)
	}

	for _, tc := range []struct{ in, path, host string }{
		{"/old/x?q=1", "/new/x", "internal.example"},
		{"/old", "/new", "internal.example"},
		{"/strip/a/b", "/a/b", ""},
		{"/strip", "/", ""},
		{"/full/any/thing", "/replaced", ""},
	} {
		get(t, "http://"+addr+tc.in)
		got := be.last(t)
		if got.URL.Path != tc.path {
			t.Errorf("%s: backend path %q, want %q", tc.in, got.URL.Path, tc.path)
		}
		if tc.host != "" && got.Host != tc.host {
			t.Errorf("%s: backend host %q, want %q", tc.in, got.Host, tc.host)
		}
	}

	resp, _ = get(t, "http://"+addr+"/wb")
	got = be.last(t)
	if got.Header.Get("X-Backend-Level") != "yes" || resp.Header.Get("X-Backend-Resp") != "yes" {
		t.Errorf("backend-level headers: request %v, response %v", got.Header, resp.Header)
	}
}

func TestRedirectsAndDirectResponses(t *testing.T) {
	toHTTPS := route("https", prefix("/secure"))
	toHTTPS.Redirect = &ir.Redirect{Scheme: "https", StatusCode: 301}
	toPath := route("path", prefix("/moved"))
	toPath.Redirect = &ir.Redirect{Hostname: "new.example", Port: 8443, Path: &ir.PathModifier{Type: ir.ReplaceFullPath, Value: "/landing"}, StatusCode: 302}
	pfx := route("pfx", prefix("/docs"))
	pfx.Redirect = &ir.Redirect{Path: &ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: "/v2/docs"}, StatusCode: 308}
	direct := route("direct", prefix("/teapot"))
	direct.DirectResponse = &ir.DirectResponse{StatusCode: 418, Body: "short and stout"}
	direct.ResponseHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "X-Direct", Value: "1"}}}

	s := snapshotOf(t, httpGateway([]*ir.Route{toHTTPS, toPath, pfx, direct}))
	_, addr := startRuntime(t, s, "default/eg/http")

	for _, tc := range []struct {
		path, host string
		code       int
		loc        string
	}{
		{"/secure/a?b=c", "example.com:8080", 301, "https://example.com/secure/a?b=c"},
		{"/moved/x", "example.com", 302, "http://new.example:8443/landing"},
		{"/docs/intro", "example.com:8080", 308, "http://example.com:8080/v2/docs/intro"},
	} {
		resp, _ := get(t, "http://"+addr+tc.path, "Host", tc.host)
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.loc {
			t.Errorf("%s: got %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.loc)
		}
	}
	resp, body := get(t, "http://"+addr+"/teapot")
	if resp.StatusCode != 418 || body != "short and stout" || resp.Header.Get("X-Direct") != "1" {
		t.Errorf("direct response: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get(t, "http://"+addr+"/nothing")
	if resp.StatusCode != 404 {
		t.Errorf("unmatched: %d, want 404", resp.StatusCode)
	}
}

func TestWeightsAndInvalidBackends(t *testing.T) {
	var a, b atomic.Int64
	beA := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { a.Add(1) })
	beB := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { b.Add(1) })
	ca := cluster("default/a:80", endpointOf(t, beA.URL))
	cb := cluster("default/b:80", endpointOf(t, beB.URL))
	split := route("split", prefix("/split"))
	split.Forward = &ir.Forward{Backends: []ir.WeightedBackend{{Cluster: ca.Name, Weight: 1}, {Cluster: cb.Name, Weight: 3}}}
	half := route("half", prefix("/half"))
	half.Forward = &ir.Forward{Backends: []ir.WeightedBackend{{Cluster: ca.Name, Weight: 1}}, InvalidWeight: 1}

	s := snapshotOf(t, httpGateway([]*ir.Route{split, half}, ca, cb))
	_, addr := startRuntime(t, s, "default/eg/http")
	const n = 400
	for i := 0; i < n; i++ {
		get(t, "http://"+addr+"/split")
	}
	// Expected 100 / 300; the bounds are more than 6 standard deviations wide.
	if a.Load() < 50 || a.Load() > 150 || a.Load()+b.Load() != n {
		t.Errorf("split 1:3 gave a=%d b=%d", a.Load(), b.Load())
	}
	a.Store(0)
	codes := map[int]int{}
	for i := 0; i < 200; i++ {
		resp, _ := get(t, "http://"+addr+"/half")
		codes[resp.StatusCode]++
	}
	if codes[500] < 50 || codes[200] < 50 || codes[500]+codes[200] != 200 || int(a.Load()) != codes[200] {
		t.Errorf("half invalid: codes %v, backend got %d", codes, a.Load())
	}
}

func TestTimeoutRetryAndMirror(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	var calls atomic.Int64
	flaky := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "finally")
	})
	shadow := newRecorder(t, nil)
	cs := cluster("default/slow:80", endpointOf(t, slow.URL))
	cf := cluster("default/flaky:80", endpointOf(t, flaky.URL))
	cm := cluster("default/shadow:80", endpointOf(t, shadow.URL))

	to := route("timeout", prefix("/slow"))
	to.Forward = fwd(cs.Name)
	to.Forward.Timeout = 100 * time.Millisecond
	re := route("retry", prefix("/flaky"))
	re.Forward = fwd(cf.Name)
	re.Forward.Retry = &ir.Retry{Attempts: 2, Codes: []int{503}, Backoff: time.Millisecond}
	nore := route("noretry", prefix("/once"))
	nore.Forward = fwd(cf.Name)
	mi := route("mirror", prefix("/mirror"))
	mi.Forward = fwd(cf.Name)
	mi.Forward.Mirrors = []ir.Mirror{{Cluster: cm.Name, Numerator: 1, Denominator: 1}}

	s := snapshotOf(t, httpGateway([]*ir.Route{to, re, nore, mi}, cs, cf, cm))
	_, addr := startRuntime(t, s, "default/eg/http")

	resp, _ := get(t, "http://"+addr+"/slow")
	if resp.StatusCode != 504 {
		t.Errorf("timeout: %d, want 504", resp.StatusCode)
	}
	resp, body := get(t, "http://"+addr+"/flaky")
	if resp.StatusCode != 200 || body != "finally" || calls.Load() != 3 {
		t.Errorf("retry: %d %q after %d calls, want 200 finally after 3", resp.StatusCode, body, calls.Load())
	}
	calls.Store(0)
	resp, _ = get(t, "http://"+addr+"/once")
	if resp.StatusCode != 503 || calls.Load() != 1 {
		t.Errorf("no retry policy: %d after %d calls, want 503 after 1", resp.StatusCode, calls.Load())
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/mirror/x", strings.NewReader("payload"))
	req.Host = "app.example"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	got := shadow.last(t)
	if got.Host != "app.example-shadow" || got.URL.Path != "/mirror/x" || got.Method != "POST" {
		t.Errorf("mirror got %s %s host %q", got.Method, got.URL.Path, got.Host)
	}
}

func TestUpstreamFailures(t *testing.T) {
	// A port nothing listens on: connect failures, retried, then 503.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	cd := cluster("default/dead:80", endpointOf(t, dead))
	empty := cluster("default/empty:80")
	r1 := route("dead", prefix("/dead"))
	r1.Forward = fwd(cd.Name)
	r1.Forward.Retry = &ir.Retry{Attempts: 1}
	r2 := route("empty", prefix("/empty"))
	r2.Forward = fwd(empty.Name)
	s := snapshotOf(t, httpGateway([]*ir.Route{r1, r2}, cd, empty))
	rt, addr := startRuntime(t, s, "default/eg/http")
	if resp, _ := get(t, "http://"+addr+"/dead"); resp.StatusCode != 503 {
		t.Errorf("connect failure: %d, want 503", resp.StatusCode)
	}
	if resp, body := get(t, "http://"+addr+"/empty"); resp.StatusCode != 503 || body != "no healthy upstream" {
		t.Errorf("no endpoints: %d %q, want 503", resp.StatusCode, body)
	}
	var b bytes.Buffer
	rt.WriteClusters(&b)
	if !strings.Contains(b.String(), "default/dead:80::"+dead+"::rq_error::2") {
		t.Errorf("clusters page does not count both connect failures:\n%s", b.String())
	}
}

// rawExchange sends raw bytes on a new connection and returns all it reads
// until the proxy closes the connection or 2s pass.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestSmugglingAndPaths(t *testing.T) {
	be := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "backend path=%s", r.URL.EscapedPath())
	})
	c := cluster("default/b:80", endpointOf(t, be.URL))
	admin := route("admin", prefix("/admin"))
	admin.DirectResponse = &ir.DirectResponse{StatusCode: 403, Body: "admin"}
	all := route("all", prefix("/"))
	all.Forward = fwd(c.Name)
	s := snapshotOf(t, httpGateway([]*ir.Route{admin, all}, c))
	_, addr := startRuntime(t, s, "default/eg/http")

	big := strings.Repeat("a", 61<<10)
	for _, tc := range []struct{ name, raw, want string }{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"duplicate cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400"},
		{"conflicting cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "HTTP/1.1 400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "HTTP/1.1 400"},
		{"te in http/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n", "HTTP/1.1 4"},
		{"escaped slash", "GET /a%2Fb HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 400"},
		{"escaped backslash", "GET /a%5cb HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 400"},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 400"},
		{"dot segments to admin", "GET /public/../admin/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 403"},
		{"encoded dots to admin", "GET /public/%2e%2E/admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 403"},
		{"double slash to admin", "GET //admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 403"},
		{"encoded letter to admin", "GET /%61dmin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 403"},
		{"backslash to admin", "GET /x\\..\\admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 403"},
		{"params stay literal", "GET /admin;x/y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "path=/admin%3Bx/y"},
		{"chunked body passes", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "path=/p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.got)
			out := rawExchange(t, addr, tc.raw)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("got %q, want %q in it", out, tc.want)
			}
			if strings.HasPrefix(tc.want, "HTTP/1.1 4") || tc.want == "400" {
				if len(be.got) != before {
					t.Fatalf("a refused request reached the backend")
				}
			}
			for len(be.got) > 0 {
				<-be.got
			}
		})
	}

	// A refused request on a keep-alive connection after a good one: the
	// good one is served, the bad one is not forwarded.
	out := rawExchange(t, addr, "POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if !strings.Contains(out, "path=/ok") || !strings.Contains(out, "400 Bad Request") || strings.Contains(out, "path=/bad") {
		t.Fatalf("pipelined: %q", out)
	}
}

// selfSigned returns PEM certificate and key for the names.
func selfSigned(t *testing.T, names ...string) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestTLSBySNI(t *testing.T) {
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	aCert, aKey := selfSigned(t, "a.example.com")
	wCert, wKey := selfSigned(t, "*.example.org")
	ra := route("a", prefix("/"))
	ra.Forward = fwd(c.Name)
	rw := route("w", prefix("/"))
	rw.DirectResponse = &ir.DirectResponse{StatusCode: 200, Body: "wildcard"}
	gw := &ir.Gateway{
		Name: "default/eg", Namespace: "default", GatewayName: "eg",
		Listeners: []*ir.Listener{{
			Name: "default/eg/https", Address: "127.0.0.1", Port: 8443, Protocol: ir.ProtocolHTTPS,
			FilterChains: []*ir.FilterChain{
				{Name: "a", ServerNames: []string{"a.example.com"}, TLS: &ir.TLSConfig{SecretNames: []string{"a-cert"}, ALPN: []string{"h2", "http/1.1"}},
					VirtualHosts: []*ir.VirtualHost{{Name: "a", Domains: []string{"a.example.com"}, Routes: []*ir.Route{ra}}}},
				{Name: "w", ServerNames: []string{"*.example.org"}, TLS: &ir.TLSConfig{SecretNames: []string{"w-cert"}, ALPN: []string{"http/1.1"}},
					VirtualHosts: []*ir.VirtualHost{{Name: "w", Domains: []string{"*.example.org"}, Routes: []*ir.Route{rw}}}},
			},
		}},
		Clusters: []*ir.Cluster{c},
		Secrets:  []*ir.Secret{{Name: "a-cert", CertPEM: aCert, KeyPEM: aKey}, {Name: "w-cert", CertPEM: wCert, KeyPEM: wKey}},
	}
	_, addr := startRuntime(t, snapshotOf(t, gw), "default/eg/https")

	for _, tc := range []struct {
		sni, body, proto string
		h2               bool
	}{
		{"a.example.com", "ok", "HTTP/2.0", true},
		{"a.example.com", "ok", "HTTP/1.1", false},
		{"x.example.org", "wildcard", "HTTP/1.1", true}, // the chain offers http/1.1 only
	} {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(aCert)
		pool.AppendCertsFromPEM(wCert)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: tc.sni}, ForceAttemptHTTP2: tc.h2}
		if !tc.h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
		req.Host = tc.sni
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		tr.CloseIdleConnections()
		if string(b) != tc.body || resp.Proto != tc.proto {
			t.Errorf("%s (h2 %v): got %q over %s, want %q over %s", tc.sni, tc.h2, b, resp.Proto, tc.body, tc.proto)
		}
		if tc.body == "ok" {
			if got := be.last(t); got.Header.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("X-Forwarded-Proto = %q", got.Header.Get("X-Forwarded-Proto"))
			}
		}
	}
	// No chain takes an unknown name: the handshake fails.
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true})
	if err == nil {
		_ = conn.Close()
		t.Error("a handshake for a name no chain serves succeeded")
	}
}

func TestH2CStreamingWithTrailers(t *testing.T) {
	next := make(chan struct{})
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want h2c", 400)
			return
		}
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(200)
		_, _ = w.Write(append([]byte("first:"), in...))
		w.(http.Flusher).Flush()
		select { // the client must see "first" before this goes on
		case <-next:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "|second")
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "done")
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	backend.Config.Protocols = &p
	backend.Start()
	t.Cleanup(backend.Close)

	c := &ir.Cluster{Name: "default/grpc:50051", Protocol: ir.AppProtocolH2C, LoadBalancer: ir.LoadBalancerLeastRequest,
		Endpoints: []ir.Endpoint{endpointOf(t, backend.URL)}}
	r := route("grpc", prefix("/"))
	r.Forward = fwd(c.Name)
	r.Forward.GRPC = true
	_, addr := startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{r}, c)), "default/eg/http")

	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	cl := &http.Client{Transport: &http.Transport{Protocols: &cp}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+addr+"/pkg.Svc/Method", strings.NewReader("hello"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("downstream protocol %s, want HTTP/2", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	buf := make([]byte, len("first:hello"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "first:hello" {
		t.Fatalf("first message: %q %v", buf, err)
	}
	close(next)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "|second" {
		t.Fatalf("rest: %q %v", rest, err)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "done" {
		t.Fatalf("trailers = %v", resp.Trailer)
	}
}

func TestWebSocketEcho(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_, _ = io.Copy(conn, brw) // echo
	}))
	t.Cleanup(backend.Close)
	c := cluster("default/ws:80", endpointOf(t, backend.URL))
	r := route("ws", prefix("/"))
	r.Forward = fwd(c.Name)
	_, addr := startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{r}, c)), "default/eg/http")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"ping", "frames of any bytes \x00\x01"} {
		_, _ = io.WriteString(conn, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q %v", buf, err)
		}
	}
}

func TestSwapKeepsSocketAndInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	oldBE := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "old")
	})
	newBE := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "new") })
	co := cluster("default/old:80", endpointOf(t, oldBE.URL))
	cn := cluster("default/new:80", endpointOf(t, newBE.URL))
	r := route("r", prefix("/"))
	r.Forward = fwd(co.Name)
	s1 := snapshotOf(t, httpGateway([]*ir.Route{r}, co, cn))
	rt, addr := startRuntime(t, s1, "default/eg/http")

	done := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/block")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		done <- string(b)
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the backend")
	}

	r2 := route("r", prefix("/"))
	r2.Forward = fwd(cn.Name)
	s2 := snapshotOf(t, httpGateway([]*ir.Route{r2}, co, cn))
	if err := rt.Apply(s2); err != nil {
		t.Fatal(err)
	}
	if rt.Addr("default/eg/http") != addr {
		t.Fatalf("the listener moved from %s to %s", addr, rt.Addr("default/eg/http"))
	}
	if _, body := get(t, "http://"+addr+"/x"); body != "new" {
		t.Errorf("after the swap: %q, want new", body)
	}
	if rt.ConfigDump() != s2 {
		t.Error("ConfigDump does not return the applied snapshot")
	}
	close(release)
	select {
	case b := <-done:
		if b != "old" {
			t.Errorf("in-flight request: %q, want old", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight request did not finish")
	}

	// A snapshot the proxy cannot honour is refused and changes nothing.
	bad := snapshotOf(t, httpGateway([]*ir.Route{r}, co, cn))
	bad.Clusters[co.Name].IgnoreHealthOnHostRemoval = true
	if err := rt.Apply(bad); err == nil || !strings.Contains(err.Error(), "ignore_health_on_host_removal") || !strings.Contains(err.Error(), co.Name) {
		t.Fatalf("Apply(bad) = %v, want an error naming the cluster and field", err)
	}
	if _, body := get(t, "http://"+addr+"/x"); body != "new" {
		t.Errorf("after a refused snapshot: %q, want new", body)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	r := route("httproute/default/web/rule/0/match/0", prefix("/"))
	r.Forward = fwd(c.Name)
	reg := prometheus.NewRegistry()
	var logBuf syncBuffer
	_, addr := startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{r}, c)), "default/eg/http", func(o *Options) {
		o.Registerer = reg
		o.AccessLog = &logBuf
	})
	get(t, "http://"+addr+"/a")
	get(t, "http://"+addr+"/b")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "sekisho_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["gateway"] == "default/eg" && labels["route"] == r.Name && labels["backend"] == c.Name && labels["response_code"] == "200" && m.GetCounter().GetValue() == 2 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no sekisho_requests_total series with value 2 for the route")
	}
	hist := 0
	for _, mf := range mfs {
		if mf.GetName() == "sekisho_request_duration_milliseconds" {
			for _, m := range mf.GetMetric() {
				hist += int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if hist != 2 {
		t.Errorf("duration samples: %d, want 2", hist)
	}
	line := logBuf.String()
	for _, want := range []string{`"method":"GET"`, `"path":"/a"`, `"status":200`, `"backend":"default/b:80"`, `"upstream_address":"` + strings.TrimPrefix(be.URL, "http://") + `"`, `"duration_ms":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log lacks %s:\n%s", want, line)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
