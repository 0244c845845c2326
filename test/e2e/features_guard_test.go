package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFeaturesPathNormalisationAndSmuggling(t *testing.T) {
	admin := ftEcho(t, "admin")
	public := ftEcho(t, "public")
	counter := ftStartRecorder(t, nil)
	port := ftPort(t)
	dir := ftConfigDir(t, "guard.yaml", map[string]string{"PORT": strconv.Itoa(port)},
		ftServiceYAML(t, "admin", admin, ""),
		ftServiceYAML(t, "public", public, ""),
		ftServiceYAML(t, "counter", counter.Addr, ""),
	)
	ftRun(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	get := func(target string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: guard.example\r\nConnection: close\r\n\r\n"
	}
	waitFor(t, 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/admin")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Echo-Backend") == "admin"
	})

	t.Run("normalised path selects the route", func(t *testing.T) {
		for _, tc := range []struct {
			target      string
			wantStatus  int
			wantBackend string // "" with a 400
			wantPath    string // what the backend saw
		}{
			{"/admin", 200, "admin", "/admin"},
			{"/a/../admin", 200, "admin", "/admin"},
			{"/public/../admin/x", 200, "admin", "/admin/x"},
			{"/admin/../public", 200, "public", "/public"},
			{"/admin/x/../../public", 200, "public", "/public"},
			{"/../admin", 200, "admin", "/admin"},
			{"/./admin", 200, "admin", "/admin"},
			{"//admin", 200, "admin", "/admin"},
			{"///admin//x", 200, "admin", "/admin/x"},
			{"/%61dmin", 200, "admin", "/admin"},
			{"/%2e%2e/admin", 200, "admin", "/admin"},
			{"/public/%2E%2E/admin", 200, "admin", "/admin"},
			{"/\\admin", 200, "admin", "/admin"},
			{"/admin;x", 200, "public", "/admin;x"},
			{"/admin;x/y", 200, "public", "/admin;x/y"},
			{"/adminx", 200, "public", "/adminx"},
			{"/ADMIN", 200, "public", "/ADMIN"},
			{"/admin#x", 400, "", ""},
			{"/public#/../admin", 400, "", ""},
			{"/admin%2Fx", 400, "", ""},
			{"/public/..%2fadmin", 400, "", ""},
			{"/public/..%5Cadmin", 400, "", ""},
			{"/admin%zz", 400, "", ""},
			{"/public?next=/../admin&x=a%2Fb", 200, "public", "/public"},
			{"http://guard.example/a/../admin", 200, "admin", "/admin"},
			{"http://guard.example//admin", 200, "admin", "/admin"},
			{"http://guard.example/admin%2Fx", 400, "", ""},
		} {
			t.Run(tc.target, func(t *testing.T) {
				resp, body, _ := ftRaw(t, addr, get(tc.target))
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("GET %s: status %d, want %d (body %q)", tc.target, resp.StatusCode, tc.wantStatus, body)
				}
				got, ok := ftDecodeEcho(body)
				if tc.wantBackend == "" {
					if ok {
						t.Fatalf("GET %s reached backend %s (path %q)", tc.target, got.Backend, got.Path)
					}
					return
				}
				if !ok || got.Backend != tc.wantBackend || got.Path != tc.wantPath {
					t.Errorf("GET %s: backend %q saw path %q, want %q %q", tc.target, got.Backend, got.Path, tc.wantBackend, tc.wantPath)
				}
			})
		}
	})

	t.Run("refused framing never reaches a backend", func(t *testing.T) {
		smuggled := "GET /count/smuggled HTTP/1.1\r\nHost: guard.example\r\n\r\n"
		big := strings.Repeat("a", 61<<10)
		for _, tc := range []struct {
			name  string
			raw   string
			codes []int
		}{
			{"escaped slash", get("/count%2Fx"), []int{400}},
			{"escaped slash, lower case", get("/count/a%2fb"), []int{400}},
			{"oversized header block", "GET /count/big HTTP/1.1\r\nHost: guard.example\r\nX-Big: " + big + "\r\n\r\n", []int{431, 400}},
			{"oversized over many headers", "GET /count/many HTTP/1.1\r\nHost: guard.example\r\n" + strings.Repeat("X-H: "+strings.Repeat("b", 1000)+"\r\n", 62) + "\r\n", []int{431, 400}},
			{"Content-Length and Transfer-Encoding", "POST /count/clte HTTP/1.1\r\nHost: guard.example\r\nContent-Length: " + strconv.Itoa(len("0\r\n\r\n"+smuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, []int{400}},
			{"Transfer-Encoding and Content-Length", "POST /count/tecl HTTP/1.1\r\nHost: guard.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" + smuggled, []int{400}},
			{"duplicate Content-Length, equal", "POST /count/dup HTTP/1.1\r\nHost: guard.example\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", []int{400}},
			{"duplicate Content-Length, different", "POST /count/dup2 HTTP/1.1\r\nHost: guard.example\r\nContent-Length: 0\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, []int{400}},
			{"Content-Length list", "POST /count/list HTTP/1.1\r\nHost: guard.example\r\nContent-Length: 2, 2\r\n\r\nhi", []int{400}},
			{"Content-Length with a sign", "POST /count/sign HTTP/1.1\r\nHost: guard.example\r\nContent-Length: +2\r\n\r\nhi", []int{400}},
			{"obs-fold", "GET /count/fold HTTP/1.1\r\nHost: guard.example\r\nX-Folded: a\r\n b\r\n\r\n", []int{400}},
			{"obs-fold with a tab", "GET /count/fold2 HTTP/1.1\r\nHost: guard.example\r\nX-Folded: a\r\n\tb\r\n\r\n", []int{400}},
			{"Transfer-Encoding in capitals and Content-Length", "POST /count/caps HTTP/1.1\r\nHost: guard.example\r\nTRANSFER-ENCODING: Chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", []int{400}},
			{"space before the colon", "POST /count/space HTTP/1.1\r\nHost: guard.example\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", []int{400}},
			{"two Host headers", "GET /count/hosts HTTP/1.1\r\nHost: guard.example\r\nHost: other.example\r\n\r\n", []int{400}},
			{"Transfer-Encoding in HTTP/1.0", "POST /count/te10 HTTP/1.0\r\nHost: guard.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}},
			{"refused after a good request on the same connection", "GET /public HTTP/1.1\r\nHost: guard.example\r\n\r\n" +
				"POST /count/second HTTP/1.1\r\nHost: guard.example\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(counter.Seen())
				want := 1
				if tc.codes == nil {
					want = 2
				}
				resps, bodies, closed := ftRawN(t, addr, tc.raw, want)
				resp, body := resps[want-1], bodies[want-1]
				codes := tc.codes
				if tc.codes == nil {
					// The good request is answered first; the refused one
					// gets the next response.
					if resps[0].StatusCode != 200 {
						t.Fatalf("first response %d, want 200", resps[0].StatusCode)
					}
					codes = []int{400}
				}
				ok := false
				for _, c := range codes {
					ok = ok || resp.StatusCode == c
				}
				if !ok {
					t.Errorf("status %d, want one of %v (body %q)", resp.StatusCode, codes, ftShort(string(body)))
				}
				if !closed {
					t.Errorf("the connection stayed open after a refused request")
				}
				if after := len(counter.Seen()); after != before {
					t.Errorf("the counting backend got %d request(s): %+v", after-before, counter.Seen()[before:])
				}
			})
		}
		// After every connection above was closed, nothing more arrives, and
		// a well-framed request does reach the counting backend.
		time.Sleep(200 * time.Millisecond)
		if n := len(counter.Seen()); n != 0 {
			t.Errorf("the counting backend got %d request(s) from refused ones: %+v", n, counter.Seen())
		}
		resp, _, _ := ftRaw(t, addr, "POST /count/good HTTP/1.1\r\nHost: guard.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		if resp.StatusCode != 200 {
			t.Fatalf("a well-framed request: status %d", resp.StatusCode)
		}
		if seen := counter.Seen(); len(seen) != 1 || seen[0].Path != "/count/good" {
			t.Errorf("the counting backend saw %+v, want exactly /count/good", seen)
		}
	})
}
