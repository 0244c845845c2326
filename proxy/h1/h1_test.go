package h1

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestParseRequestFraming(t *testing.T) {
	for _, tc := range []struct {
		name    string
		head    string
		status  int // 0: accepted
		cl      int64
		chunked bool
		close   bool
		upgrade bool
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, false, false, false},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, false, false, false},
		{"bare LF lines", "GET / HTTP/1.1\nHost: a\n\n", 0, 0, false, false, false},
		{"content length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 0, 12, false, false, false},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", 0, -1, true, false, false},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, false, true, false},
		{"upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0, 0, false, false, true},
		{"upgrade header alone", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 0, 0, false, false, false},
		{"http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", 0, 0, false, false, false},
		{"value with tab and obs-text", "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\xff\r\n\r\n", 0, 0, false, false, false},

		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0, false, false, false},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, 0, false, false, false},
		{"duplicate cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400, 0, false, false, false},
		{"conflicting cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, 0, false, false, false},
		{"cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400, 0, false, false, false},
		{"cl sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400, 0, false, false, false},
		{"cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, 0, false, false, false},
		{"cl huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", 400, 0, false, false, false},
		{"te in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0, false, false, false},
		{"te not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 0, false, false, false},
		{"te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0, false, false, false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, 0, false, false, false},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, 0, false, false, false},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, 0, false, false, false},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400, 0, false, false, false},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400, 0, false, false, false},
		{"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, 0, false, false, false},
		{"bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, 0, false, false, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0, false, false, false},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, 0, false, false, false},
		{"bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0, false, false, false},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0, false, false, false},
		{"control in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0, false, false, false},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 0, false, false, false},
		{"bad version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400, 0, false, false, false},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0, false, false, false},
		{"missing version", "GET /\r\nHost: a\r\n\r\n", 400, 0, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h RequestHead
			b := []byte(tc.head)
			if n := HeadEnd(b); n != len(b) {
				t.Fatalf("HeadEnd = %d, want %d", n, len(b))
			}
			err := ParseRequest(b, &h)
			if tc.status != 0 {
				e, ok := err.(*Error)
				if !ok || e.Status != tc.status {
					t.Fatalf("ParseRequest = %v, want a %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if h.ContentLength != tc.cl || h.Chunked != tc.chunked || h.Close != tc.close || h.Upgrade != tc.upgrade {
				t.Errorf("got cl=%d chunked=%v close=%v upgrade=%v", h.ContentLength, h.Chunked, h.Close, h.Upgrade)
			}
			if string(h.Method(b)) != strings.Fields(strings.TrimLeft(tc.head, "\r\n"))[0] {
				t.Errorf("method %q", h.Method(b))
			}
		})
	}
}

func TestParseResponseFraming(t *testing.T) {
	for _, tc := range []struct {
		name    string
		head    string
		bad     bool
		status  int
		cl      int64
		chunked bool
		close   bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, 200, 5, false, false},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, 204, -1, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, -1, true, false},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, -1, true, true},
		{"close delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", false, 200, -1, false, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false, 200, 1, false, true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, 200, 1, false, true},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false, 200, 1, false, false},
		{"equal duplicate length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", false, 200, 1, false, false},
		{"other coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 200, -1, false, true},

		{"conflicting length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", true, 0, 0, false, false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true, 0, 0, false, false},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", true, 0, 0, false, false},
		{"status too small", "HTTP/1.1 099 OK\r\n\r\n", true, 0, 0, false, false},
		{"not http", "ICY 200 OK\r\n\r\n", true, 0, 0, false, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", true, 0, 0, false, false},
		{"bad name", "HTTP/1.1 200 OK\r\nX Y: a\r\n\r\n", true, 0, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h ResponseHead
			err := ParseResponse([]byte(tc.head), &h)
			if tc.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.status || h.ContentLength != tc.cl || h.Chunked != tc.chunked || h.Close != tc.close {
				t.Errorf("got status=%d cl=%d chunked=%v close=%v", h.Status, h.ContentLength, h.Chunked, h.Close)
			}
		})
	}
}

func TestReadHead(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 20000) + "\r\n\r\nBODY"
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
		err      error
	}{
		{"in buffer", "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY", 1 << 16, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"larger than the buffer", big, 1 << 16, big[:len(big)-4], nil},
		{"too large", big, 8 << 10, "", ErrHeadTooLarge},
		{"too large in buffer", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 10, "", ErrHeadTooLarge},
		{"cut short", "GET / HTTP/1.1\r\nHost: a\r\n", 1 << 16, "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(&slowReader{s: tc.in, step: 7}, 4096)
			var scratch []byte
			head, inBuf, _, err := ReadHead(br, tc.max, &scratch)
			if err != tc.err {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if string(head) != tc.want {
				t.Fatalf("head %q…, want %q…", short(string(head)), short(tc.want))
			}
			if inBuf {
				_, _ = br.Discard(len(head))
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tc.in[len(tc.want):] {
				t.Fatalf("rest %q, want %q", rest, tc.in[len(tc.want):])
			}
		})
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// slowReader hands out s a few bytes at a time.
type slowReader struct {
	s    string
	step int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := min(len(p), r.step, len(r.s))
	copy(p, r.s[:n])
	r.s = r.s[n:]
	return n, nil
}

func TestChunkedReader(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		trailers       string
		bad            bool
	}{
		{"two chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT", "abcde", "", false},
		{"extension and upper hex", "A;x=y\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", false},
		{"trailers", "1\r\na\r\n0\r\nGrpc-Status: 0\r\nX-T: v\r\n\r\n", "a", "Grpc-Status=0;X-T=v;", false},
		{"bare LF", "1\na\n0\n\n", "a", "", false},
		{"bad size", "x\r\nabc\r\n0\r\n\r\n", "", "", true},
		{"missing CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", "", "", true},
		{"cut short", "5\r\nab", "", "", true},
		{"size too large", "1000000000000000\r\n", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(&slowReader{s: tc.in, step: 3})
			var c ChunkedReader
			c.Reset(br)
			var tr strings.Builder
			c.Trailer = func(n, v []byte) { tr.WriteString(string(n) + "=" + string(v) + ";") }
			got, err := io.ReadAll(&c)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %q", got)
				}
				return
			}
			if err != nil || string(got) != tc.want || !c.Done() {
				t.Fatalf("got %q %v done=%v, want %q", got, err, c.Done(), tc.want)
			}
			if tr.String() != tc.trailers {
				t.Errorf("trailers %q, want %q", tr.String(), tc.trailers)
			}
			rest, _ := io.ReadAll(br)
			if want := tc.in[strings.LastIndex(tc.in, "\n")+1:]; string(rest) != want {
				t.Errorf("left %q, want %q", rest, want)
			}
		})
	}
}

func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"content-type", "CONTENT-LENGTH", "x-forwarded-for", "x-custom-thing", "sec-websocket-key", "a", "x_y"} {
		if got, want := CanonicalKey([]byte(k)), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = CanonicalKey([]byte("content-type")) }); n != 0 {
		t.Errorf("CanonicalKey of a common name allocates %v times", n)
	}
}

func TestParsersDoNotAllocate(t *testing.T) {
	req := []byte("GET /api/items?x=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: wrk\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nDate: x\r\n\r\n")
	var rh RequestHead
	var sh ResponseHead
	_ = ParseRequest(req, &rh)
	_ = ParseResponse(resp, &sh)
	if n := testing.AllocsPerRun(100, func() {
		if err := ParseRequest(req, &rh); err != nil {
			t.Fatal(err)
		}
		if err := ParseResponse(resp, &sh); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("parsing allocates %v times", n)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"\r\nGET / HTTP/1.0\n\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := HeadEnd(b)
		if n < 0 {
			return
		}
		head := b[:n]
		var h RequestHead
		if err := ParseRequest(head, &h); err != nil {
			return
		}
		// What is accepted is consistent.
		if h.Chunked && h.ContentLength != -1 || !h.Chunked && h.ContentLength < 0 {
			t.Fatalf("framing chunked=%v cl=%d", h.Chunked, h.ContentLength)
		}
		for i := range h.Fields {
			name, value := h.Name(head, i), h.Value(head, i)
			if len(name) == 0 {
				t.Fatal("empty name accepted")
			}
			for _, c := range name {
				if !tchar[c] {
					t.Fatalf("name %q accepted", name)
				}
			}
			for _, c := range value {
				if c == '\r' || c == '\n' || c == 0 {
					t.Fatalf("value %q accepted", value)
				}
			}
		}
		for _, c := range h.Target(head) {
			if c <= ' ' {
				t.Fatalf("target %q accepted", h.Target(head))
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := HeadEnd(b)
		if n < 0 {
			return
		}
		var h ResponseHead
		if err := ParseResponse(b[:n], &h); err != nil {
			return
		}
		if h.Status < 100 || h.Status > 999 {
			t.Fatalf("status %d accepted", h.Status)
		}
		if h.Chunked && h.ContentLength != -1 {
			t.Fatalf("chunked with length %d", h.ContentLength)
		}
	})
}

func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("1;a=b\r\nx\r\n0\r\nT: v\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ChunkedReader
		c.Reset(bufio.NewReader(strings.NewReader(string(b))))
		out, err := io.ReadAll(io.LimitReader(&c, 1<<20))
		if err == nil && c.Done() && len(out) > len(b) {
			t.Fatalf("read %d bytes from %d", len(out), len(b))
		}
	})
}
