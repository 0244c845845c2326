package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const waitTimeout = 5 * time.Second

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	srv  *Server
	addr string
	reg  *prometheus.Registry
	logs *lockedBuffer
}

// startServer serves a new Server on a free 127.0.0.1 port until the test ends.
func startServer(t *testing.T) *testEnv {
	t.Helper()
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	srv := New(Options{
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Registerer:    reg,
		ShutdownGrace: 100 * time.Millisecond,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Serve did not stop after cancel")
		}
	})
	return &testEnv{srv: srv, addr: lis.Addr().String(), reg: reg, logs: logs}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// sotwClient is a raw state-of-the-world ADS client that, like Envoy, sends
// its node on the first request only.
type sotwClient struct {
	t        *testing.T
	stream   discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool
	names    map[string][]string
	resp     chan *discovery.DiscoveryResponse
	errc     chan error
}

func newSotwClient(t *testing.T, addr string, node *corev3.Node) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, addr)).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening ADS stream: %v", err)
	}
	c := &sotwClient{
		t: t, stream: stream, node: node, names: map[string][]string{},
		resp: make(chan *discovery.DiscoveryResponse, 64), errc: make(chan error, 1),
	}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resp <- r
		}
	}()
	return c
}

func (c *sotwClient) send(typeURL, version, nonce string, detail *rpcstatus.Status) {
	c.t.Helper()
	req := &discovery.DiscoveryRequest{
		TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce,
		ResourceNames: c.names[typeURL], ErrorDetail: detail,
	}
	if !c.sentNode {
		req.Node = c.node
		c.sentNode = true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("sending %s request: %v", typeURL, err)
	}
}

// closeSend ends the stream from the client's side.
func (c *sotwClient) closeSend() {
	c.t.Helper()
	if err := c.stream.CloseSend(); err != nil {
		c.t.Fatalf("closing the stream: %v", err)
	}
}

func (c *sotwClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	c.send(typeURL, "", "", nil)
}

func (c *sotwClient) ack(r *discovery.DiscoveryResponse) {
	c.t.Helper()
	c.send(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), nil)
}

func (c *sotwClient) nack(r *discovery.DiscoveryResponse, keptVersion, msg string) {
	c.t.Helper()
	c.send(r.GetTypeUrl(), keptVersion, r.GetNonce(), &rpcstatus.Status{Code: 3, Message: msg})
}

func (c *sotwClient) next() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resp:
		return r
	case err := <-c.errc:
		c.t.Fatalf("ADS stream failed: %v", err)
	case <-time.After(waitTimeout):
		c.t.Fatalf("no ADS response within %v", waitTimeout)
	}
	return nil
}

// expectNothing asserts that no response arrives within d.
func (c *sotwClient) expectNothing(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resp:
		c.t.Fatalf("unexpected ADS response: type %s version %s", r.GetTypeUrl(), r.GetVersionInfo())
	case err := <-c.errc:
		c.t.Fatalf("ADS stream failed: %v", err)
	case <-time.After(d):
	}
}

// eventually polls cond until it holds or the wait times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// findNode returns the status of the stream of nodeID.
func findNode(s *Server, nodeID string) (NodeStatus, bool) {
	for _, n := range s.Nodes() {
		if n.NodeID == nodeID {
			return n, true
		}
	}
	return NodeStatus{}, false
}

// metricValue reads a counter or gauge from reg, matching label values.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
