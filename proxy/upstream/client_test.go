package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer answers each connection with serve; it counts connections.
type rawServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns int
}

func newRawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return s
}

func (s *rawServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// readRequest reads one request (with its body) or returns false.
func readRequest(br *bufio.Reader) (*http.Request, string, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", false
	}
	b, _ := io.ReadAll(req.Body)
	return req, string(b), true
}

func newReq(t *testing.T, ctx context.Context, method, addr, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr, body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = &url.URL{Scheme: "http", Host: addr, Opaque: path}
	req.Host = "svc.example"
	return req
}

func roundTrip(t *testing.T, c *Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

func TestClientBodiesAndPoolReuse(t *testing.T) {
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, body, ok := readRequest(br)
			if !ok {
				return
			}
			switch req.URL.Path {
			case "/length":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
			case "/chunked":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
			case "/continue":
				_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/echo":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\nX-Host: "+req.Host+"\r\nX-Query: "+req.URL.RawQuery+"\r\n\r\n"+body)
			case "/close":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
				return
			case "/empty":
				_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			}
		}
	})
	addr := s.ln.Addr().String()
	c := NewClient(time.Second)
	defer c.Close()
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		resp, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/length", nil))
		if resp.StatusCode != 200 || body != "hello" || resp.ContentLength != 5 || resp.Header.Get("Content-Type") != "text/plain" {
			t.Fatalf("length: %d %q %d %v", resp.StatusCode, body, resp.ContentLength, resp.Header)
		}
	}
	if n := s.count(); n != 1 {
		t.Fatalf("%d connections for 3 sequential requests, want 1 (reused)", n)
	}
	if n := c.IdleConns(addr); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}

	resp, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/chunked", nil))
	if body != "abcde" || resp.ContentLength != -1 || resp.Trailer.Get("X-Trailer") != "t" {
		t.Fatalf("chunked: %q %d trailer %v", body, resp.ContentLength, resp.Trailer)
	}
	if _, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/continue", nil)); body != "ok" {
		t.Fatalf("after a 100 Continue: %q", body)
	}
	resp, body = roundTrip(t, c, newReq(t, ctx, "POST", addr, "/echo?a=b", strings.NewReader("payload")))
	if body != "payload" || resp.Header.Get("X-Host") != "svc.example" || resp.Header.Get("X-Query") != "a=b" {
		t.Fatalf("echo: %q %v", body, resp.Header)
	}
	// A chunked request body (unknown length).
	req := newReq(t, ctx, "POST", addr, "/echo", io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")))
	req.ContentLength = -1
	if _, body := roundTrip(t, c, req); body != "abcdef" {
		t.Fatalf("chunked request body: %q", body)
	}
	if resp, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/empty", nil)); resp.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	if n := s.count(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	// A body delimited by the close: read whole, the connection is not kept.
	if _, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/close", nil)); body != "until the end" {
		t.Fatalf("close-delimited: %q", body)
	}
	if n := c.IdleConns(addr); n != 0 {
		t.Fatalf("%d idle connections after a close-delimited body, want 0", n)
	}
	// A body closed before its end: the connection is dropped, not pooled.
	resp, err := c.RoundTrip(newReq(t, ctx, "GET", addr, "/length", nil))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := c.IdleConns(addr); n != 0 {
		t.Fatalf("%d idle connections after an unread body, want 0", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestClientRetriesStaleConnection(t *testing.T) {
	// Every connection serves one request, then closes without saying so.
	var mu sync.Mutex
	var bodies []string
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		_, body, ok := readRequest(br)
		if !ok {
			return
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond)
	})
	addr := s.ln.Addr().String()
	c := NewClient(time.Second)
	defer c.Close()
	ctx := context.Background()
	roundTrip(t, c, newReq(t, ctx, "GET", addr, "/", nil))
	time.Sleep(100 * time.Millisecond) // the server closed the pooled connection
	if _, body := roundTrip(t, c, newReq(t, ctx, "GET", addr, "/", nil)); body != "ok" {
		t.Fatalf("after a stale connection: %q", body)
	}
	if n := s.count(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	// A buffered body is sent again through GetBody.
	time.Sleep(100 * time.Millisecond)
	req := newReq(t, ctx, "POST", addr, "/", bytes.NewReader([]byte("again")))
	if req.GetBody == nil {
		t.Fatal("no GetBody")
	}
	if _, body := roundTrip(t, c, req); body != "ok" {
		t.Fatalf("POST after a stale connection: %q", body)
	}
	mu.Lock()
	got := bodies[len(bodies)-1]
	mu.Unlock()
	if got != "again" {
		t.Fatalf("resent body %q", got)
	}

	// A body that cannot be sent again is not retried.
	time.Sleep(100 * time.Millisecond)
	roundTrip(t, c, newReq(t, ctx, "GET", addr, "/", nil))
	time.Sleep(100 * time.Millisecond)
	req = newReq(t, ctx, "POST", addr, "/", io.NopCloser(strings.NewReader("once")))
	req.ContentLength = 4
	if _, err := c.RoundTrip(req); err == nil {
		t.Fatal("a stream body was sent again on a new connection")
	}
}

func TestClientMalformedAndCancelled(t *testing.T) {
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		req, _, ok := readRequest(br)
		if !ok {
			return
		}
		switch req.URL.Path {
		case "/bad":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx")
		case "/slow":
			time.Sleep(2 * time.Second)
		case "/upgrade":
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
			_, _ = io.Copy(c, br)
		}
	})
	addr := s.ln.Addr().String()
	c := NewClient(time.Second)
	defer c.Close()
	if _, err := c.RoundTrip(newReq(t, context.Background(), "GET", addr, "/bad", nil)); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed response: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.RoundTrip(newReq(t, ctx, "GET", addr, "/slow", nil))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
	resp, err := c.RoundTrip(newReq(t, context.Background(), "GET", addr, "/upgrade", nil))
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", err)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("the 101 body is not a ReadWriteCloser")
	}
	_, _ = io.WriteString(rw, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	_ = rw.Close()
	if _, err := c.RoundTrip(newReq(t, context.Background(), "GET", "127.0.0.1:1", "/", nil)); !IsConnectError(err) {
		t.Fatalf("connect failure: %v", err)
	}
}

func TestRoundTripRawFieldsAndHead(t *testing.T) {
	got := make(chan http.Header, 2)
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, _, ok := readRequest(br)
			if !ok {
				return
			}
			got <- req.Header
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := NewClient(time.Second)
	defer c.Close()
	addr := s.ln.Addr().String()
	for i := 0; i < 2; i++ {
		req := newReq(t, context.Background(), http.MethodGet, addr, "/raw", nil)
		req.Header.Set("X-Ignored", "map")
		resp, err := c.RoundTripRaw(req, []byte("X-Field: one\r\nX-Field: two\r\n"), true)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header != nil {
			t.Errorf("the response has a header map: %v", resp.Header)
		}
		head, h := ResponseHead(resp)
		if h == nil || h.Status != 200 || len(h.Fields) != 4 || string(h.Name(head, 0)) != "content-type" || string(h.Value(head, 2)) != "b" {
			t.Fatalf("ResponseHead: %q %+v", head, h)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "ok" {
			t.Errorf("body %q", b)
		}
		hdr := <-got
		if vs := hdr["X-Field"]; len(vs) != 2 || vs[0] != "one" || vs[1] != "two" || hdr.Get("X-Ignored") != "" || hdr.Get("Host") != "" {
			t.Errorf("the upstream got %v", hdr)
		}
	}
	if n := s.count(); n != 1 {
		t.Errorf("%d connections, want 1 (kept alive)", n)
	}
	// A response from RoundTrip has its map and no raw head.
	req := newReq(t, context.Background(), http.MethodGet, addr, "/map", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	<-got
	if vs := resp.Header["X-Two"]; len(vs) != 2 {
		t.Errorf("header %v", resp.Header)
	}
	if head, h := ResponseHead(resp); head != nil || h != nil {
		t.Error("ResponseHead of a response with a header map")
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}
