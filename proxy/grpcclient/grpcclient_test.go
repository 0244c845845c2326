package grpcclient

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// TestGRPCClientConnectsBeforeTheFirstCheck: a filter's channel dials the
// service as soon as it knows the endpoints, so the first request does not
// wait for (or, past the filter's timeout, fail open on) the connection.
func TestGRPCClientConnectsBeforeTheFirstCheck(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	g, err := New("svc", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	g.SetEndpoints([]string{lis.Addr().String()})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for st := g.conn.GetState(); st != connectivity.Ready; st = g.conn.GetState() {
		if !g.conn.WaitForStateChange(ctx, st) {
			t.Fatalf("the channel is %v after 5s without a call; it should connect on its own", st)
		}
	}
}
