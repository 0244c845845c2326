package proxy

import (
	"github.com/sekisho/sekisho/ir"
	"testing"
)

func TestForwardBasic(t *testing.T) {
	be := newRecorder(t, nil)
	r := route("web", prefix("/"))
	r.Forward = fwd("default/b:80")
	s := snapshotOf(t, httpGateway([]*ir.Route{r}, cluster("default/b:80", endpointOf(t, be.URL))))
	_, addr := startRuntime(t, s, "default/eg/http")
	resp, body := get(t, "http://"+addr+"/hello?x=1", "Connection", "keep-alive, X-Drop", "X-Drop", "1", "X-Forwarded-For", "10.9.9.9")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
	got := be.last(t)
	if got.URL.Path != "/hello" || got.URL.RawQuery != "x=1" {
		t.Errorf("backend got %s?%s", got.URL.Path, got.URL.RawQuery)
	}
	if got.Header.Get("X-Drop") != "" {
		t.Errorf("the hop-by-hop header named in Connection reached the backend")
	}
	if xff := got.Header.Get("X-Forwarded-For"); xff != "10.9.9.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", xff)
	}
	if xfp := got.Header.Get("X-Forwarded-Proto"); xfp != "http" {
		t.Errorf("X-Forwarded-Proto = %q", xfp)
	}
}
