package upstream

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testCluster(lb clusterv3.Cluster_LbPolicy, n int, unhealthy ...int) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	cl := &clusterv3.Cluster{
		Name:                 "c",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(time.Second),
		LbPolicy:             lb,
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:          wrapperspb.UInt32(3),
			EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
			Interval:                 durationpb.New(5 * time.Second),
			BaseEjectionTime:         durationpb.New(30 * time.Second),
			MaxEjectionPercent:       wrapperspb.UInt32(50),
		},
	}
	loc := &endpointv3.LocalityLbEndpoints{}
	for i := 0; i < n; i++ {
		h := corev3.HealthStatus_HEALTHY
		for _, u := range unhealthy {
			if u == i {
				h = corev3.HealthStatus_UNHEALTHY
			}
		}
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.0.0." + fmt.Sprint(i+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}},
			HealthStatus: h,
		})
	}
	return cl, &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{loc}}
}

func TestRoundRobinSkipsUnhealthy(t *testing.T) {
	cl, cla := testCluster(clusterv3.Cluster_ROUND_ROBIN, 3, 1)
	c, err := Compile(cl, cla, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		e := c.Pick()
		counts[e.Addr]++
		c.Done(e, false)
	}
	if len(counts) != 2 || counts["10.0.0.1:80"] != 50 || counts["10.0.0.3:80"] != 50 {
		t.Errorf("round robin counts %v, want 50/50 over the two healthy endpoints", counts)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	cl, cla := testCluster(clusterv3.Cluster_LEAST_REQUEST, 2)
	c, err := Compile(cl, cla, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	busy := c.Endpoints[0]
	busy.active.Store(100)
	idle := 0
	for i := 0; i < 1000; i++ {
		e := c.Pick()
		if e != busy {
			idle++
		}
		c.Done(e, false)
	}
	// Two random choices: the busy one wins only when both picks are it (1/4).
	if idle < 650 || idle > 850 {
		t.Errorf("idle endpoint chosen %d of 1000 times, want about 750", idle)
	}
}

func TestOutlierEjection(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cl, cla := testCluster(clusterv3.Cluster_ROUND_ROBIN, 4)
	c, err := Compile(cl, cla, nil, Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	bad := c.Endpoints[0]
	fail := func(e *Endpoint, n int) {
		for i := 0; i < n; i++ {
			e.active.Add(1)
			c.Done(e, true)
		}
	}
	fail(bad, 2)
	c.Done(func() *Endpoint { bad.active.Add(1); return bad }(), false) // a success resets the count
	fail(bad, 2)
	if c.Ejected(bad) {
		t.Fatal("ejected after 2 consecutive failures, want 3")
	}
	fail(bad, 1)
	if !c.Ejected(bad) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	for i := 0; i < 40; i++ {
		e := c.Pick()
		if e == bad {
			t.Fatal("an ejected endpoint was picked")
		}
		c.Done(e, false)
	}
	// 50% of 4: a second ejection is allowed, a third is not.
	fail(c.Endpoints[1], 3)
	fail(c.Endpoints[2], 3)
	if !c.Ejected(c.Endpoints[1]) || c.Ejected(c.Endpoints[2]) {
		t.Fatalf("max_ejection_percent not honoured: %v %v", c.Ejected(c.Endpoints[1]), c.Ejected(c.Endpoints[2]))
	}
	clk.advance(31 * time.Second)
	if c.Ejected(bad) {
		t.Fatal("still ejected after base_ejection_time")
	}
	// A second ejection lasts twice as long.
	fail(bad, 3)
	clk.advance(31 * time.Second)
	if !c.Ejected(bad) {
		t.Fatal("the second ejection did not last 2 x base_ejection_time")
	}
	clk.advance(30 * time.Second)
	if c.Ejected(bad) {
		t.Fatal("still ejected after 2 x base_ejection_time")
	}

	// State carries over to the next compile of the same cluster.
	fail(bad, 3)
	c2, err := Compile(cl, cla, c, Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Ejected(c2.Endpoints[0]) || !c2.SharesPool(c) {
		t.Fatal("endpoint state or pool not carried over")
	}
}

func TestConnectErrorIsMarked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	tr := newTransport(false, time.Second, nil)
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/", nil)
	_, err = tr.RoundTrip(req)
	if err == nil || !IsConnectError(err) {
		t.Fatalf("RoundTrip to a closed port: %v, want a ConnectError", err)
	}
}

func TestCompileRefuses(t *testing.T) {
	cl, cla := testCluster(clusterv3.Cluster_MAGLEV, 1)
	if _, err := Compile(cl, cla, nil, Options{}); err == nil {
		t.Error("MAGLEV accepted")
	}
	cl, cla = testCluster(clusterv3.Cluster_ROUND_ROBIN, 1)
	cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	if _, err := Compile(cl, cla, nil, Options{}); err == nil {
		t.Error("STATIC accepted")
	}
}
