package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestEditQuery(t *testing.T) {
	set := []*corev3.QueryParameter{{Key: "b", Value: "new"}, {Key: "z", Value: "1"}}
	got := editQuery("a=1&b=2&code=x&b=3&c", set, []string{"code", "c"})
	if got != "a=1&b=new&z=1" {
		t.Errorf("editQuery = %q", got)
	}
}

// TestMerge: a route's context extensions are merged with its virtual
// host's (the route's win), without changing the virtual host's; a
// disabled route entry wins whole. (Entries of one level only are the
// connection manager's: proxy's TestMergeRouteFilters.)
func TestMerge(t *testing.T) {
	vh := &perRoute{ext: map[string]string{"x": "vh", "y": "vh"}}
	m := merge(vh, &perRoute{ext: map[string]string{"y": "route"}}).(*perRoute)
	if got := m.ext; len(got) != 2 || got["x"] != "vh" || got["y"] != "route" {
		t.Errorf("merged context extensions %v", got)
	}
	if len(vh.ext) != 2 || vh.ext["y"] != "vh" {
		t.Error("merging changed the virtual host's entry")
	}
	if m := merge(vh, &perRoute{disabled: true}).(*perRoute); !m.disabled {
		t.Error("the route's disabled entry lost to its virtual host's")
	}
}
