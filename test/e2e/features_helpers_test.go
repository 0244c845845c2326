package e2e

// Shared helpers of the features_*_test.go end-to-end tests: they start
// `sekisho run` and `sekisho echo` as separate processes on 127.0.0.1, write
// the Gateway API YAML they serve, and talk to the proxy as clients do.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ftLog collects a process's output; it is written from the process's copy
// goroutines and read when a test fails.
type ftLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *ftLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *ftLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ftStartProcess starts the sekisho binary with args; it is interrupted and
// waited for when the test ends, and its output is logged if the test failed.
func ftStartProcess(t *testing.T, label string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, sekishoBin, args...)
	logs := &ftLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second // then it is killed
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", label, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			out := logs.String()
			if len(out) > 20000 {
				out = "…" + out[len(out)-20000:]
			}
			t.Logf("%s output:\n%s", label, out)
		}
	})
}

// ftPort returns a port on 127.0.0.1 that was free a moment ago.
func ftPort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ftPortOf returns the port of a host:port address.
func ftPortOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ftEcho starts `sekisho echo` as backend name and waits until it answers.
func ftEcho(t *testing.T, name string) string {
	t.Helper()
	addr := freeAddr(t)
	ftStartProcess(t, "echo "+name, "echo", "--listen", addr, "--name", name)
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.Header.Get("X-Echo-Backend") == name
	})
	return addr
}

// ftRun starts `sekisho run -f dir` and waits for its /readyz.
func ftRun(t *testing.T, dir string) (adminAddr string) {
	t.Helper()
	xdsAddr, adminAddr := freeAddr(t), freeAddr(t)
	ftStartProcess(t, "sekisho run", "run", "-f", dir, "--xds-address", xdsAddr, "--admin-address", adminAddr)
	waitFor(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return adminAddr
}

// ftServiceYAML is a Service and its EndpointSlice for one backend listening
// on addr (127.0.0.1); the Service port is 80. appProtocol may be empty.
func ftServiceYAML(t *testing.T, name, addr, appProtocol string) string {
	t.Helper()
	port := ftPortOf(t, addr)
	ap := ""
	if appProtocol != "" {
		ap = ", appProtocol: " + appProtocol
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: %[2]d%[3]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-1, namespace: default, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: http, port: %[2]d}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
`, name, port, ap)
}

// ftConfigDir writes the fixture testdata/features/<fixture> into a new
// folder with vars (${NAME} -> value) substituted, and the extra documents
// (Services, Secrets) beside it. It fails on a placeholder left unset.
func ftConfigDir(t *testing.T, fixture string, vars map[string]string, extra ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "features", fixture))
	if err != nil {
		t.Fatal(err)
	}
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "${"+k+"}", v)
	}
	text := strings.NewReplacer(pairs...).Replace(string(b))
	if i := strings.Index(text, "${"); i >= 0 {
		t.Fatalf("fixture %s: placeholder left unset near %q", fixture, text[i:min(len(text), i+20)])
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "backends.yaml"), []byte(strings.Join(extra, "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ftEchoed is what an echo backend says it received.
type ftEchoed struct {
	Backend  string              `json:"backend"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"rawQuery"`
	Host     string              `json:"host"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
}

// ftDecodeEcho decodes an echo backend's answer; ok is false when body is not one.
func ftDecodeEcho(body []byte) (ftEchoed, bool) {
	var e ftEchoed
	if err := json.Unmarshal(body, &e); err != nil || e.Backend == "" {
		return e, false
	}
	return e, true
}

// ftClient is an HTTP/1.1 client that does not follow redirects.
func ftClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ftDo sends one request to base+target with the Host header host (when not
// empty) and returns the response with its body read.
func ftDo(t *testing.T, c *http.Client, method, url, host string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	return ftDoBody(t, c, method, url, host, hdr, "")
}

// ftDoBody is ftDo with a request body (none when body is empty).
func ftDoBody(t *testing.T, c *http.Client, method, url, host string, hdr http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range hdr {
		req.Header[k] = append([]string(nil), vv...)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s (Host %s): reading the body: %v", method, url, host, err)
	}
	return resp, got
}

// ftSeen is one request an ftRecorder received.
type ftSeen struct {
	Method string
	Path   string
	Host   string
	Header http.Header
	Body   string
}

// ftRecorder is a backend in the test process that records every request
// and answers with respond (200 "ok" when respond is nil).
type ftRecorder struct {
	Addr    string
	mu      sync.Mutex
	seen    []ftSeen
	respond func(w http.ResponseWriter, r *http.Request)
}

func ftStartRecorder(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *ftRecorder {
	t.Helper()
	rec := &ftRecorder{respond: respond}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rec.mu.Lock()
		rec.seen = append(rec.seen, ftSeen{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header.Clone(), Body: string(body)})
		rec.mu.Unlock()
		if rec.respond != nil {
			rec.respond(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	rec.Addr = srv.Listener.Addr().String()
	return rec
}

// Seen returns a copy of the requests received so far.
func (r *ftRecorder) Seen() []ftSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ftSeen(nil), r.seen...)
}

// CountHeader counts the requests received with header k set to v.
func (r *ftRecorder) CountHeader(k, v string) int {
	n := 0
	for _, s := range r.Seen() {
		if s.Header.Get(k) == v {
			n++
		}
	}
	return n
}

// ftRaw writes raw to a new connection to addr and reads one response. It
// also reports whether the server closed the connection after it (EOF
// within a second).
func ftRaw(t *testing.T, addr, raw string) (resp *http.Response, body []byte, closed bool) {
	t.Helper()
	resps, bodies, closed := ftRawN(t, addr, raw, 1)
	return resps[0], bodies[0], closed
}

// ftRawN is ftRaw for n pipelined requests: it reads n responses.
func ftRawN(t *testing.T, addr, raw string, n int) (resps []*http.Response, bodies [][]byte, closed bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	br := bufio.NewReader(conn)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d to %q: %v", i+1, ftShort(raw), err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps, bodies = append(resps, resp), append(bodies, body)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	var one [1]byte
	_, err = br.Read(one[:])
	closed = err == io.EOF
	return resps, bodies, closed
}

// ftShort shortens a raw request for messages.
func ftShort(s string) string {
	if len(s) > 120 {
		return s[:120] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// ftCA is a certificate authority made for one test.
type ftCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

func ftNewCA(t *testing.T) *ftCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sekisho e2e CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ftCA{cert: cert, key: key, Pool: pool}
}

// Leaf signs a serving certificate for dnsName and returns it and its key as PEM.
func (ca *ftCA) Leaf(t *testing.T, serial int64, dnsName string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// ftTLSSecretYAML is a kubernetes.io/tls Secret holding certPEM and keyPEM.
func ftTLSSecretYAML(name string, certPEM, keyPEM []byte) string {
	indent := func(b []byte) string {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		return "    " + strings.Join(lines, "\n    ")
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: default}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, indent(certPEM), indent(keyPEM))
}
