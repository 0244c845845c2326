package unarygrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
)

// rawCodec passes message bytes through unchanged, so tests can call the
// server with arbitrary payloads. Messages are *[]byte on both sides.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "raw" }

// testServer is a Server serving on a 127.0.0.1 listener.
type testServer struct {
	*Server
	addr     string
	serveErr chan error
}

// startServer starts a server with the given handlers and stops it when the
// test ends.
func startServer(t testing.TB, o Options, handlers map[string]Handler) *testServer {
	t.Helper()
	srv := NewServer(o)
	for m, h := range handlers {
		srv.Handle(m, h)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, addr: l.Addr().String(), serveErr: make(chan error, 1)}
	go func() { ts.serveErr <- srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return ts
}

// waitServe waits for Serve to return and checks it returned ErrServerStopped.
func (ts *testServer) waitServe(t testing.TB) {
	t.Helper()
	select {
	case err := <-ts.serveErr:
		if !errors.Is(err, ErrServerStopped) {
			t.Fatalf("Serve returned %v, want ErrServerStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// dial returns a grpc-go client connection to addr using rawCodec.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// invoke makes one unary call with raw bytes.
func invoke(ctx context.Context, cc *grpc.ClientConn, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := cc.Invoke(ctx, method, &req, &resp)
	return resp, err
}

// testCtx returns a context bounding a test step.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor receives from ch or fails the test after d.
func waitFor[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
