package server

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestDataPlane(t *testing.T) {
	t0 := time.Unix(1000, 0)
	lds := resourcev3.ListenerType
	listeners := []string{"default/gw/http-8080", "default/gw/http-18082", "default/gw/http-18082x"}
	stream := func(node string, ts TypeStatus) NodeStatus {
		return NodeStatus{NodeID: node, Gateway: "default/gw", Types: map[string]TypeStatus{lds: ts}}
	}
	acked := func(v string) TypeStatus { return TypeStatus{AckedVersion: v, AckedAt: t0} }
	nacked := func(kept, rejected, msg string) TypeStatus {
		return TypeStatus{AckedVersion: kept, AckedAt: t0, LastNACKVersion: rejected, LastNACKMessage: msg, LastNACKAt: t0.Add(time.Second)}
	}
	// Envoy's form: one "NAME: CAUSE" a line, a cause may span lines.
	envoyMsg := "Error adding/updating listener(s) default/gw/http-18082: cannot bind '0.0.0.0:18082': Address already in use\n" +
		"default/gw/http-18082x: Proto constraint validation failed: config {\n  port: 0\n}\n"
	bind := "cannot bind '0.0.0.0:18082': Address already in use"
	proto := "Proto constraint validation failed: config {\n  port: 0\n}"
	state := func(serving, rejected, pending int, node, cause string) ListenerState {
		return ListenerState{Serving: serving, Rejected: rejected, Pending: pending, Node: node, Cause: cause}
	}
	for _, tc := range []struct {
		name    string
		streams []NodeStatus
		want    map[string]ListenerState
		proxies int
	}{
		{
			name: "no proxy connected: every listener pending on nobody",
			want: map[string]ListenerState{listeners[0]: {}, listeners[1]: {}, listeners[2]: {}},
		},
		{
			name:    "one proxy, not answered yet",
			streams: []NodeStatus{stream("a", acked("v1"))},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(0, 0, 1, "", ""), listeners[1]: state(0, 0, 1, "", ""), listeners[2]: state(0, 0, 1, "", "")},
		},
		{
			name:    "one proxy acked",
			streams: []NodeStatus{stream("a", acked("v2"))},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(1, 0, 0, "", ""), listeners[1]: state(1, 0, 0, "", ""), listeners[2]: state(1, 0, 0, "", "")},
		},
		{
			name:    "Envoy's message: the listeners it names are rejected, the others serve",
			streams: []NodeStatus{stream("a", nacked("v1", "v2", envoyMsg))},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(1, 0, 0, "", ""), listeners[1]: state(0, 1, 0, "a", bind), listeners[2]: state(0, 1, 0, "a", proto)},
		},
		{
			name: "details (BadRequest) win over the message",
			streams: []NodeStatus{stream("a", func() TypeStatus {
				ts := nacked("v1", "v2", "whatever the message says")
				ts.LastNACKResources = map[string]string{listeners[0]: "binding 0.0.0.0:8080: address already in use"}
				return ts
			}())},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(0, 1, 0, "a", "binding 0.0.0.0:8080: address already in use"), listeners[1]: state(1, 0, 0, "", ""), listeners[2]: state(1, 0, 0, "", "")},
		},
		{
			name:    "a message that names no listener rejects them all",
			streams: []NodeStatus{stream("a", nacked("v1", "v2", "decoding response: bad Any"))},
			proxies: 1,
			want: map[string]ListenerState{
				listeners[0]: state(0, 1, 0, "a", "decoding response: bad Any"),
				listeners[1]: state(0, 1, 0, "a", "decoding response: bad Any"),
				listeners[2]: state(0, 1, 0, "a", "decoding response: bad Any"),
			},
		},
		{
			name:    "a NACK of an older version does not count against this one",
			streams: []NodeStatus{stream("a", func() TypeStatus { ts := nacked("v0", "v1", envoyMsg); ts.AckedVersion = "v2"; return ts }())},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(1, 0, 0, "", ""), listeners[1]: state(1, 0, 0, "", ""), listeners[2]: state(1, 0, 0, "", "")},
		},
		{
			name: "an ACK after the NACK of the same version (the port was bound later)",
			streams: []NodeStatus{stream("a", func() TypeStatus {
				ts := nacked("v1", "v2", envoyMsg)
				ts.AckedVersion, ts.AckedAt = "v2", t0.Add(time.Minute)
				return ts
			}())},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(1, 0, 0, "", ""), listeners[1]: state(1, 0, 0, "", ""), listeners[2]: state(1, 0, 0, "", "")},
		},
		{
			name: "three replicas: one serves, one rejects, one has not answered",
			streams: []NodeStatus{
				stream("c", acked("v1")),
				stream("b", nacked("v1", "v2", envoyMsg)),
				stream("a", acked("v2")),
			},
			proxies: 3,
			want: map[string]ListenerState{
				listeners[0]: state(2, 0, 1, "", ""),
				listeners[1]: state(1, 1, 1, "b", bind),
				listeners[2]: state(1, 1, 1, "b", proto),
			},
		},
		{
			name: "a stream of another type does not count",
			streams: []NodeStatus{
				{NodeID: "a", Gateway: "default/gw", TypeURL: resourcev3.ClusterType, Types: map[string]TypeStatus{}},
				stream("b", acked("v2")),
			},
			proxies: 1,
			want:    map[string]ListenerState{listeners[0]: state(1, 0, 0, "", ""), listeners[1]: state(1, 0, 0, "", ""), listeners[2]: state(1, 0, 0, "", "")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dataPlane("v2", listeners, tc.streams)
			if got.Proxies != tc.proxies {
				t.Errorf("proxies %d, want %d", got.Proxies, tc.proxies)
			}
			if !reflect.DeepEqual(got.Listeners, tc.want) {
				t.Errorf("listeners\n got %+v\nwant %+v", got.Listeners, tc.want)
			}
		})
	}
}

func TestRejectedResources(t *testing.T) {
	br, err := anypb.New(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "default/gw/http-18082", Description: "binding 0.0.0.0:18082: address already in use"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := anypb.New(&errdetails.ErrorInfo{Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	got := rejectedResources(&rpcstatus.Status{Message: "m", Details: []*anypb.Any{other, br}})
	want := map[string]string{"default/gw/http-18082": "binding 0.0.0.0:18082: address already in use"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := rejectedResources(&rpcstatus.Status{Message: "m"}); got != nil {
		t.Errorf("no details: got %v, want nil", got)
	}
}

// TestDataPlaneOverADS: two replicas of a gateway; one NACKs a listener
// (Envoy's message and BadRequest details), then ACKs the same version late
// (its port became free); the other leaves.
func TestDataPlaneOverADS(t *testing.T) {
	env := startServer(t)
	changes := make(chan string, 64)
	env.srv.onDataPlane = func(gw string) { changes <- gw }
	f := defaultFixture()
	mustSet(t, env.srv, desiredState{"ns/gw": f.build(t)})
	if dp := env.srv.DataPlane("ns/gw"); dp.Proxies != 0 || dp.Listeners["http-8080"] != (ListenerState{}) {
		t.Fatalf("before any proxy: %+v", dp)
	}
	lds := resourcev3.ListenerType
	replica := func(id string) (*sotwClient, *discovery.DiscoveryResponse) {
		c := newSotwClient(t, env.addr, &corev3.Node{Id: id, Cluster: "ns/gw"})
		c.subscribe(lds)
		r := c.next()
		if r.GetTypeUrl() != lds {
			t.Fatalf("got %s, want LDS", r.GetTypeUrl())
		}
		return c, r
	}
	a, ra := replica("a")
	b, rb := replica("b")
	eventually(t, "two pending proxies", func() bool {
		dp := env.srv.DataPlane("ns/gw")
		return dp.Proxies == 2 && dp.Listeners["http-8080"].Pending == 2
	})

	const cause = "binding 0.0.0.0:8080: address already in use"
	br, err := anypb.New(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "http-8080", Description: cause}}})
	if err != nil {
		t.Fatal(err)
	}
	a.send(lds, "", ra.GetNonce(), &rpcstatus.Status{Code: 3, Message: envoyLDSPrefix + "http-8080: " + cause + "\n", Details: []*anypb.Any{br}})
	b.ack(rb)
	eventually(t, "one rejects, one serves", func() bool {
		return env.srv.DataPlane("ns/gw").Listeners["http-8080"] == ListenerState{Serving: 1, Rejected: 1, Node: "a", Cause: cause}
	})
	// The rejected version is not pushed again; the late ACK of it is taken.
	a.expectNothing(100 * time.Millisecond)
	a.ack(ra)
	eventually(t, "both serve", func() bool {
		return env.srv.DataPlane("ns/gw").Listeners["http-8080"] == ListenerState{Serving: 2}
	})
	a.expectNothing(100 * time.Millisecond)

	// A replica that leaves no longer counts.
	b.closeSend()
	eventually(t, "one proxy left", func() bool {
		dp := env.srv.DataPlane("ns/gw")
		return dp.Proxies == 1 && dp.Listeners["http-8080"] == ListenerState{Serving: 1}
	})
	if len(changes) == 0 {
		t.Error("OnDataPlaneChange was never called")
	}
	if n := strings.Count(env.logs.String(), "a proxy cannot serve the configuration"); n != 1 {
		t.Errorf("%d ERROR lines for the NACK, want 1", n)
	}
}
