package hcm

import (
	"bufio"
	"bytes"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sekisho/sekisho/proxy/h1"
	"github.com/sekisho/sekisho/proxy/router"
)

// The fast path edits header fields in place of http.Header: these tests
// check it against the map code it stands in for, field by field (a map
// has no order, so the lines are compared sorted).

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\r\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

var requestFieldCases = []string{
	"",
	"User-Agent: wrk\r\nAccept: */*\r\n",
	"user-agent: lower\r\nACCEPT-encoding: gzip\r\nx-custom-THING: v\r\n",
	"X-Forwarded-For: 1.1.1.1\r\n",
	"X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: 3.3.3.3\r\nX-Forwarded-Proto: https\r\n",
	"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n",
	"Connection: close, X-Secret , x-other\r\nX-Secret: s\r\nX-Other: o\r\nX-Kept: k\r\n",
	"Connection: X-Forwarded-For\r\nX-Forwarded-For: 9.9.9.9\r\n",
	"Te: trailers\r\n",
	"TE: gzip, Trailers\r\nConnection: te\r\n",
	"Te: gzip\r\n",
	"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\nTrailer: X-T\r\n",
	"Content-Length: 0\r\nCookie: a=1\r\nCookie: b=2\r\n",
	"Transfer-Encoding: chunked\r\n",
	"Connection: \xc2\xa0x-nbsp\xc2\xa0\r\nX-Nbsp: gone\r\n",
	"Expect: 100-continue\r\nContent-Length: 3\r\n",
	"X-Empty:\r\nX-Forwarded-For:\r\n",
}

func TestUpstreamFieldsMatchHeaderEdits(t *testing.T) {
	h := &Handler{}
	rt := &router.Route{}
	for _, ip := range []string{"10.1.2.3", ""} {
		for _, fields := range requestFieldCases {
			head := "GET /x HTTP/1.1\r\nHost: example.com\r\n" + fields + "\r\n"
			c := &h1Conn{ip: ip, hdr: http.Header{}, req: &http.Request{ProtoMajor: 1, ProtoMinor: 1}}
			if ip != "" {
				c.req.RemoteAddr = ip + ":4321"
			}
			if err := h1.ParseRequest([]byte(head), &c.head); err != nil {
				t.Fatalf("%q: %v", fields, err)
			}
			c.line = head
			got := string(c.upstreamFields("http"))

			c.header()
			h.editRequestHeader(c.req, nil, rt, nil, "http")
			var want strings.Builder
			for k, vv := range c.req.Header {
				switch k {
				case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
					continue
				}
				for _, v := range vv {
					want.WriteString(k + ": " + v + "\r\n")
				}
			}
			if g, w := sortedLines(got), sortedLines(want.String()); strings.Join(g, "|") != strings.Join(w, "|") {
				t.Errorf("ip %q, fields %q:\n got %q\nwant %q", ip, fields, g, w)
			}
		}
	}
}

var responseFieldCases = []string{
	"",
	"Content-Type: application/json\r\nContent-Length: 29\r\n",
	"content-type: text/plain\r\ncontent-length: 5\r\nDATE: Mon, 02 Jan 2006 15:04:05 GMT\r\n",
	"Transfer-Encoding: chunked\r\nX-A: 1\r\n",
	"Connection: keep-alive, X-Hop\r\nX-Hop: h\r\nKeep-Alive: timeout=5\r\nX-Kept: k\r\nContent-Length: 2\r\n",
	"Connection: Content-Length\r\nContent-Length: 2\r\n",
	"Connection: date\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n",
	"Content-Length: 2\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
	"Upgrade: h2c\r\nTrailer: X-T\r\nProxy-Authenticate: Basic\r\nTe: trailers\r\nContent-Length: 0\r\n",
	"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
}

func TestUpstreamHeadMatchesWriteHeader(t *testing.T) {
	for _, proto := range []int{1, 0} {
		for _, method := range []string{"GET", "HEAD"} {
			for _, status := range []int{200, 204, 304, 404} {
				for _, fields := range responseFieldCases {
					head := []byte("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" + fields + "\r\n")
					var rh h1.ResponseHead
					if err := h1.ParseResponse(head, &rh); err != nil {
						t.Fatalf("%q: %v", head, err)
					}
					req := &http.Request{Method: method, ProtoMajor: 1, ProtoMinor: proto}

					raw, rawW := testRespWriter(req)
					raw.writeUpstreamHead(status, head, &rh)
					raw.c.bw.Flush()

					mapped, mapW := testRespWriter(req)
					dst := mapped.Header()
					for i := range rh.Fields {
						k := h1.CanonicalKey(rh.Name(head, i))
						if k != "Transfer-Encoding" {
							dst[k] = append(dst[k], string(rh.Value(head, i)))
						}
					}
					removeHop(dst)
					if _, ok := dst["Content-Type"]; !ok {
						dst["Content-Type"] = nil
					}
					mapped.WriteHeader(status)
					mapped.c.bw.Flush()

					g, w := rawW.String(), mapW.String()
					gl, wl := strings.SplitN(g, "\r\n", 2), strings.SplitN(w, "\r\n", 2)
					if gl[0] != wl[0] || strings.Join(sortedLines(gl[1]), "|") != strings.Join(sortedLines(wl[1]), "|") ||
						raw.clen != mapped.clen || raw.chunked != mapped.chunked || raw.noBody != mapped.noBody || raw.closeAfter != mapped.closeAfter {
						t.Errorf("HTTP/1.%d %s, %d %q:\n got %q (clen %d chunked %v)\nwant %q (clen %d chunked %v)",
							proto, method, status, fields, g, raw.clen, raw.chunked, w, mapped.clen, mapped.chunked)
					}
				}
			}
		}
	}
}

func testRespWriter(req *http.Request) (*respWriter, *bytes.Buffer) {
	var out bytes.Buffer
	c := &h1Conn{bw: bufio.NewWriter(&out), hs: &H1Server{}}
	c.w.c = c
	c.w.hdr = http.Header{}
	c.w.reset(req, &c.head)
	return &c.w, &out
}
