package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/ir"
)

// rawConn is a client connection that sends raw bytes and reads responses.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the proxy closes the connection (after whatever it
// still sends) within 2s.
func (r *rawConn) closed() bool {
	_ = r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := io.ReadAll(r.br)
	return err == nil
}

func echoRuntime(t *testing.T) (*Runtime, string) {
	t.Helper()
	be := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Content-Type", "text/plain")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			return
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Forwarded-For-Seen", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Connection-Seen", r.Header.Get("Connection"))
		fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.RequestURI(), b)
	})
	c := cluster("default/b:80", endpointOf(t, be.URL))
	direct := route("direct", prefix("/direct"))
	direct.DirectResponse = &ir.DirectResponse{StatusCode: 200, Body: "direct"}
	all := route("all", prefix("/"))
	all.Forward = fwd(c.Name)
	return startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{direct, all}, c)), "default/eg/http")
}

func TestH1ServerKeepAliveAndFraming(t *testing.T) {
	_, addr := echoRuntime(t)
	c := dialRaw(t, addr)

	// Several requests on one connection, one of them pipelined behind
	// another, with bodies of both framings.
	c.send("GET /a?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || body != "GET /a?x=1 body=" || resp.Header.Get("X-Forwarded-For-Seen") != "127.0.0.1" || resp.Header.Get("X-Connection-Seen") != "" {
		t.Fatalf("first: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("Date") == "" {
		t.Error("no Date header")
	}
	if _, body := c.read("POST"); body != "POST /b body=hello" {
		t.Fatalf("pipelined: %q", body)
	}
	c.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	if _, body := c.read("POST"); body != "POST /c body=abcde" {
		t.Fatalf("chunked request: %q", body)
	}
	// A chunked response, relayed chunked.
	c.send("GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body = c.read("GET")
	if body != "part one, part two" || len(resp.TransferEncoding) == 0 {
		t.Fatalf("chunked response: %q %v", body, resp.TransferEncoding)
	}
	// HEAD: the head with no body.
	c.send("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body = c.read("HEAD")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("X-Method") != "HEAD" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	c.send("GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 204 {
		t.Fatalf("204: %d", resp.StatusCode)
	}
	// A body the handler does not read (a direct response) is drained and
	// the connection kept.
	c.send("POST /direct HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz")
	if _, body := c.read("POST"); body != "direct" {
		t.Fatalf("direct: %q", body)
	}
	// Expect: 100-continue gets its interim response before the body is sent.
	c.send("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	if l, _ := c.br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after the 100: %q", l)
	}
	c.send("body")
	if _, body := c.read("POST"); body != "POST /e body=body" {
		t.Fatalf("after 100-continue: %q", body)
	}
	// Connection: close is honoured.
	c.send("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resp, _ = c.read("GET")
	if !resp.Close {
		t.Error("the response to Connection: close does not say close")
	}
	if !c.closed() {
		t.Error("the connection stayed open after Connection: close")
	}

	// HTTP/1.0: closed after the response unless keep-alive is asked for.
	c = dialRaw(t, addr)
	c.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ := c.read("GET"); resp.Close {
		t.Error("an HTTP/1.0 keep-alive request was answered with close")
	}
	c.send("GET /old HTTP/1.0\r\n\r\n")
	c.read("GET")
	if !c.closed() {
		t.Error("an HTTP/1.0 connection stayed open")
	}
}

func TestH1ServerRefusals(t *testing.T) {
	_, addr := echoRuntime(t)
	for _, tc := range []struct{ name, raw, want string }{
		{"http/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 "},
		{"unsupported coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 "},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "HTTP/1.1 400 "},
		{"nul in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n", "HTTP/1.1 400 "},
		{"bad absolute target", "GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 "},
		{"many small headers over the limit", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: "+strings.Repeat("v", 100)+"\r\n", 700) + "\r\n", "HTTP/1.1 431 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(tc.raw)
			line, err := c.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, tc.want) {
				t.Fatalf("got %q %v, want %q", line, err, tc.want)
			}
			if !c.closed() {
				t.Error("the connection stayed open")
			}
		})
	}
}

func TestH1ServerDrainsIdleConnections(t *testing.T) {
	rt, addr := echoRuntime(t)
	idle := dialRaw(t, addr)
	idle.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := rt.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with one idle connection", d)
	}
	if !idle.closed() {
		t.Error("the idle connection stayed open after Close")
	}
}

func TestH1ServerRequestAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a loop of requests")
	}
	_, addr := echoRuntime(t)
	c := dialRaw(t, addr)
	req := "GET /direct HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
	c.send(req)
	c.read("GET")
	// A direct response: the server's own cost per request (parsing,
	// building the request, routing, writing the response).
	n := testing.AllocsPerRun(200, func() {
		_, _ = io.WriteString(c.c, req)
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	})
	// The client side (http.ReadResponse) allocates too; this bounds both
	// and fails on a gross regression only.
	if n > 40 {
		t.Errorf("%v allocations per request", n)
	}
}

// A route table that matches on headers has the request's header map built
// for it on the fast path (TestForwardBasic covers a table that does not).
func TestFastPathHeaderMatch(t *testing.T) {
	prodBE := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "prod")
		_, _ = io.WriteString(w, "prod")
	})
	restBE := newRecorder(t, nil)
	prodC := cluster("default/prod:80", endpointOf(t, prodBE.URL))
	restC := cluster("default/rest:80", endpointOf(t, restBE.URL))
	prod := route("prod", prefix("/"))
	prod.Match.Headers = []ir.HeaderMatch{{Name: "x-env", Type: ir.MatchExact, Value: "prod"}}
	prod.Forward = fwd(prodC.Name)
	rest := route("rest", prefix("/"))
	rest.Forward = fwd(restC.Name)
	_, addr := startRuntime(t, snapshotOf(t, httpGateway([]*ir.Route{prod, rest}, prodC, restC)), "default/eg/http")

	c := dialRaw(t, addr)
	const fields = "x-env: prod\r\nx-custom-name: v1\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\nx-forwarded-for: 10.0.0.9\r\n"
	c.send("GET /p HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n")
	resp, body := c.read("GET")
	if body != "prod" || resp.Header.Get("X-Backend") != "prod" {
		t.Fatalf("header match: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := prodBE.last(t); got.Header.Get("X-Custom-Name") != "v1" || got.Header.Get("X-Drop") != "" ||
		got.Header.Get("X-Forwarded-For") != "10.0.0.9, 127.0.0.1" || got.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("the backend got %v", got.Header)
	}
	c.send("GET /r HTTP/1.1\r\nHost: a\r\nx-env: dev\r\nx-custom-name: v2\r\n\r\n")
	if resp, body := c.read("GET"); body != "ok" || resp.Header.Get("Date") == "" {
		t.Fatalf("no match: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := restBE.last(t); got.Header.Get("X-Custom-Name") != "v2" || got.Header.Get("X-Env") != "dev" {
		t.Errorf("the backend got %v", got.Header)
	}
}
