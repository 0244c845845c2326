package unarygrpc

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
)

// benchResponse is the trivial handler's fixed answer, about the size of an
// ext_authz CheckResponse that allows a request.
var benchResponse = bytes.Repeat([]byte("r"), 64)

func benchHandler(_ context.Context, req []byte) ([]byte, error) {
	if len(req) == 0 {
		return nil, nil
	}
	return benchResponse, nil
}

// BenchmarkUnary compares this server with grpc-go's server, with the same
// trivial handler over one 127.0.0.1 connection, as a proxy would use it.
//
// The grpc-go-client variants use a real grpc-go client; on a small machine
// the client's own CPU dominates ns/op, which hides much of the difference.
// The raw-client variants drive the servers with a minimal pipelining HTTP/2
// client, so ns/op there is mostly server cost. Allocations count client and
// server together.
func BenchmarkUnary(b *testing.B) {
	req := bytes.Repeat([]byte("q"), 512) // a typical CheckRequest size

	servers := []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"unarygrpc", func(b *testing.B) string {
			return startServer(b, Options{}, map[string]Handler{echoMethod: benchHandler}).addr
		}},
		{"grpc-go", startGRPCGoServer},
	}
	for _, srv := range servers {
		b.Run("grpc-go-client/"+srv.name, func(b *testing.B) {
			runUnaryBenchmark(b, srv.start(b), req)
		})
	}
	for _, srv := range servers {
		b.Run("raw-client/"+srv.name, func(b *testing.B) {
			runRawBenchmark(b, srv.start(b), req)
		})
	}
}

// startGRPCGoServer serves benchHandler with grpc.NewServer, registered as a
// plain unary method with a pass-through codec.
func startGRPCGoServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}))
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				out, err := benchHandler(ctx, in)
				return &out, err
			},
		}},
	}, struct{}{})
	go gs.Serve(l)
	b.Cleanup(gs.Stop)
	return l.Addr().String()
}

// runRawBenchmark sends b.N calls over one connection with up to 64 in
// flight, using a bare HTTP/2 framer: requests are written in batches and
// answers are only checked for their status.
func runRawBenchmark(b *testing.B, addr string, req []byte) {
	const inFlight = 64
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	var wmu sync.Mutex // guards bw, wfr, henc and hbuf
	bw := bufio.NewWriterSize(nc, 64<<10)
	wfr := http2.NewFramer(bw, nil)
	var hbuf bytes.Buffer
	henc := hpack.NewEncoder(&hbuf)
	io.WriteString(bw, http2.ClientPreface)
	wfr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	wfr.WriteWindowUpdate(0, 1<<30)
	bw.Flush()

	body := grpcFrame(req)
	slots := make(chan struct{}, inFlight)
	readErr := make(chan error, 1)
	go func() {
		rfr := http2.NewFramer(nil, bufio.NewReaderSize(nc, 64<<10))
		rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		var received int64
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				readErr <- err
				return
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if !f.StreamEnded() {
					continue
				}
				if header(f, "grpc-status") != "0" {
					readErr <- io.ErrUnexpectedEOF
					return
				}
				<-slots
			case *http2.DataFrame:
				if received += int64(f.Length); received > 1<<29 {
					wmu.Lock()
					wfr.WriteWindowUpdate(0, uint32(received))
					bw.Flush()
					wmu.Unlock()
					received = 0
				}
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					wfr.WriteSettingsAck()
					bw.Flush()
					wmu.Unlock()
				}
			}
		}
	}()

	b.ReportAllocs()
	b.ResetTimer()
	id := uint32(1)
	for i := 0; i < b.N; i++ {
		select {
		case slots <- struct{}{}:
		default:
			// Every slot is taken: send what is buffered, then wait.
			wmu.Lock()
			bw.Flush()
			wmu.Unlock()
			slots <- struct{}{}
		}
		wmu.Lock()
		hbuf.Reset()
		for _, hf := range [...]hpack.HeaderField{
			{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: echoMethod}, {Name: ":authority", Value: "bench"},
			{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		} {
			henc.WriteField(hf)
		}
		wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
		wfr.WriteData(id, true, body)
		wmu.Unlock()
		id += 2
	}
	wmu.Lock()
	bw.Flush()
	wmu.Unlock()
	for range inFlight { // wait for the last answers
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

func runUnaryBenchmark(b *testing.B, addr string, req []byte) {
	cc := dial(b, addr)
	ctx := context.Background()
	if resp, err := invoke(ctx, cc, echoMethod, req); err != nil || !bytes.Equal(resp, benchResponse) {
		b.Fatalf("warm-up call: %q, %v", resp, err)
	}
	b.ReportAllocs()
	// Keep many calls in flight, as a busy proxy does.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := invoke(ctx, cc, echoMethod, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
