package h1

import "testing"

// BenchmarkParseHeads parses a browser-like request head and a small response
// head, as the proxy does for each request.
func BenchmarkParseHeads(b *testing.B) {
	req := []byte("GET /api/items?x=1 HTTP/1.1\r\nHost: bench.example:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n")
	var rh RequestHead
	var sh ResponseHead
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if HeadEnd(req) < 0 || HeadEnd(resp) < 0 {
			b.Fatal("no head")
		}
		if err := ParseRequest(req, &rh); err != nil {
			b.Fatal(err)
		}
		if err := ParseResponse(resp, &sh); err != nil {
			b.Fatal(err)
		}
	}
}
