package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ftTestService is the gRPC backend: UnaryCall answers a payload of
// ResponseSize bytes (or the request's payload), StreamingOutputCall one
// message per ResponseParameters; both end with ResponseStatus when it is
// set, and both send a header saying whether the route's request header
// reached them and a trailer naming the method.
type ftTestService struct {
	testpb.UnimplementedTestServiceServer
}

func ftViaRoute(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return strings.Join(md.Get("x-via-route"), ",")
}

func (ftTestService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-seen-via-route", ftViaRoute(ctx)))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	if s := req.GetResponseStatus(); s != nil && s.GetCode() != 0 {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	body := req.GetPayload().GetBody()
	if req.GetResponseSize() > 0 {
		body = bytes.Repeat([]byte{'u'}, int(req.GetResponseSize()))
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

func (ftTestService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	_ = stream.SetHeader(metadata.Pairs("x-seen-via-route", ftViaRoute(stream.Context())))
	stream.SetTrailer(metadata.Pairs("x-trailer", "stream"))
	for i, p := range req.GetResponseParameters() {
		if p.GetIntervalUs() > 0 {
			time.Sleep(time.Duration(p.GetIntervalUs()) * time.Microsecond)
		}
		msg := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: bytes.Repeat([]byte{byte('a' + i%26)}, int(p.GetSize()))}}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	if s := req.GetResponseStatus(); s != nil && s.GetCode() != 0 {
		return status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return nil
}

func TestFeaturesGRPCRoute(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, ftTestService{})
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	port := ftPort(t)
	dir := ftConfigDir(t, "grpc.yaml", map[string]string{"PORT": strconv.Itoa(port)},
		ftServiceYAML(t, "grpcsvc", lis.Addr().String(), "kubernetes.io/h2c"))
	ftRun(t, dir)

	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testpb.NewTestServiceClient(conn)

	call := func(t *testing.T, req *testpb.SimpleRequest) (*testpb.SimpleResponse, metadata.MD, metadata.MD, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var hdr, trl metadata.MD
		resp, err := client.UnaryCall(ctx, req, grpc.Header(&hdr), grpc.Trailer(&trl))
		return resp, hdr, trl, err
	}
	waitFor(t, 15*time.Second, func() bool {
		_, _, _, err := call(t, &testpb.SimpleRequest{ResponseSize: 1})
		return err == nil
	})

	t.Run("unary", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			req      *testpb.SimpleRequest
			wantBody []byte
		}{
			{"echoes the payload", &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello through sekisho")}}, []byte("hello through sekisho")},
			{"large response", &testpb.SimpleRequest{ResponseSize: 1 << 20}, bytes.Repeat([]byte{'u'}, 1<<20)},
			{"large request", &testpb.SimpleRequest{Payload: &testpb.Payload{Body: bytes.Repeat([]byte{'r'}, 512<<10)}}, bytes.Repeat([]byte{'r'}, 512<<10)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, hdr, trl, err := call(t, tc.req)
				if err != nil {
					t.Fatalf("UnaryCall: %v", err)
				}
				if !bytes.Equal(resp.GetPayload().GetBody(), tc.wantBody) {
					t.Errorf("payload of %d bytes, want %d bytes", len(resp.GetPayload().GetBody()), len(tc.wantBody))
				}
				if got := hdr.Get("x-seen-via-route"); len(got) != 1 || got[0] != "testservice" {
					t.Errorf("the backend saw x-via-route %q, want the route's [testservice]", got)
				}
				if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
					t.Errorf("trailer x-trailer = %q, want [unary]", got)
				}
			})
		}
	})

	t.Run("unary status and trailers propagate", func(t *testing.T) {
		_, _, trl, err := call(t, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such widget"}})
		st := status.Convert(err)
		if st.Code() != codes.NotFound || st.Message() != "no such widget" {
			t.Errorf("status %v %q, want NotFound %q", st.Code(), st.Message(), "no such widget")
		}
		if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("trailer x-trailer = %q, want [unary]", got)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			sizes      []int32
			interval   int32
			statusCode codes.Code
		}{
			{"small messages", []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, codes.OK},
			{"spaced messages", []int32{10, 10, 10, 10, 10}, 20000, codes.OK},
			{"large messages", []int32{300 << 10, 1, 300 << 10, 64 << 10}, 0, codes.OK},
			{"messages then NotFound", []int32{5, 5, 5}, 0, codes.NotFound},
			{"no message, only a status", nil, 0, codes.NotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				req := &testpb.StreamingOutputCallRequest{}
				for _, s := range tc.sizes {
					req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: s, IntervalUs: tc.interval})
				}
				if tc.statusCode != codes.OK {
					req.ResponseStatus = &testpb.EchoStatus{Code: int32(tc.statusCode), Message: "stream ends here"}
				}
				stream, err := client.StreamingOutputCall(ctx, req)
				if err != nil {
					t.Fatalf("StreamingOutputCall: %v", err)
				}
				var got []int
				var last error
				for range len(tc.sizes) + 1 {
					msg, err := stream.Recv()
					if err != nil {
						last = err
						break
					}
					body := msg.GetPayload().GetBody()
					i := len(got)
					if i < len(tc.sizes) && (len(body) != int(tc.sizes[i]) || (len(body) > 0 && body[0] != byte('a'+i%26))) {
						t.Errorf("message %d: %d bytes of %q, want %d bytes of %q", i, len(body), body[:min(1, len(body))], tc.sizes[i], byte('a'+i%26))
					}
					got = append(got, len(body))
				}
				if len(got) != len(tc.sizes) {
					t.Errorf("received %d messages, want %d", len(got), len(tc.sizes))
				}
				if tc.statusCode == codes.OK {
					if !errors.Is(last, io.EOF) {
						t.Errorf("stream ended with %v, want io.EOF (status OK)", last)
					}
				} else if st := status.Convert(last); st.Code() != tc.statusCode || st.Message() != "stream ends here" {
					t.Errorf("stream ended with %v %q, want %v", st.Code(), st.Message(), tc.statusCode)
				}
				if got := stream.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "stream" {
					t.Errorf("trailer x-trailer = %q, want [stream]", got)
				}
			})
		}
	})

	t.Run("concurrent calls on one connection", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				want := fmt.Sprintf("call-%d", i)
				resp, _, _, err := call(t, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(want)}})
				if err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
				if string(resp.GetPayload().GetBody()) != want {
					errs <- fmt.Errorf("call %d got the answer %q", i, resp.GetPayload().GetBody())
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("a service without a route is Unimplemented", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if st := status.Convert(err); st.Code() != codes.Unimplemented {
			t.Errorf("Health/Check: %v, want Unimplemented (no route)", err)
		}
	})
}
