package auth

import (
	"context"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func serveGRPC(t testing.TB, s *Server) (string, *grpc.Server) {
	t.Helper()
	lis, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), srv
}

// benchRequest is a typical API request: a bearer token, a dozen headers,
// and a policy with claim headers and a few rules.
func benchRequest(b *testing.B, method jwt.SigningMethod) (*Server, *authv3.CheckRequest) {
	clock := newClock()
	cfg := authzPolicy(b)
	s, _ := newTestServer(b, clock, cfg)
	var tok string
	if method == jwt.SigningMethodES256 {
		tok = sign(b, method, ecKey, "ec1", claimsAt(clock.Now(), jwt.MapClaims{"role": "user", "groups": []string{"dev"}}))
	} else {
		tok = sign(b, method, rsaKey, "rsa1", claimsAt(clock.Now(), jwt.MapClaims{"role": "user", "groups": []string{"dev"}}))
	}
	h := map[string]string{
		"authorization":   "Bearer " + tok,
		"user-agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
		"accept":          "application/json",
		"accept-encoding": "gzip, deflate, br",
		"accept-language": "en-US,en;q=0.9",
		"x-request-id":    "3f1e2d4c-5b6a-4789-8a9b-0c1d2e3f4a5b",
		"x-forwarded-for": "203.0.113.9",
		"content-type":    "application/json",
		":authority":      "api.example.com",
		":path":           "/api/v1/orders/1234?expand=items",
		":method":         "GET",
		":scheme":         "https",
	}
	r := req{path: "/api/v1/orders/1234?expand=items", host: "api.example.com", headers: h}.proto()
	if resp, _ := s.Check(context.Background(), r); resp.GetOkResponse() == nil {
		b.Fatalf("the benchmark request is not allowed: %v", resp)
	}
	return s, r
}

func benchmarkCheck(b *testing.B, m jwt.SigningMethod) {
	s, r := benchRequest(b, m)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if resp, _ := s.Check(ctx, r); resp.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckRS256 and BenchmarkCheckES256: Check in process, keys and
// the token's verification cached (the steady state of a client that keeps
// using its token).
func BenchmarkCheckRS256(b *testing.B) { benchmarkCheck(b, jwt.SigningMethodRS256) }
func BenchmarkCheckES256(b *testing.B) { benchmarkCheck(b, jwt.SigningMethodES256) }

func BenchmarkCheckRS256Parallel(b *testing.B) {
	s, r := benchRequest(b, jwt.SigningMethodRS256)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if resp, _ := s.Check(ctx, r); resp.GetOkResponse() == nil {
				b.Error("denied")
				return
			}
		}
	})
}

// BenchmarkVerify is a full verification (signature and claims) with the
// keys cached: what a token's first check costs.
func BenchmarkVerify(b *testing.B) {
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodRS256, jwt.SigningMethodES256} {
		b.Run(m.Alg(), func(b *testing.B) {
			s, r := benchRequest(b, m)
			ja := s.snap.Load().policies[testPolicy].jwt
			rq, err := readRequest(r)
			if err != nil {
				b.Fatal(err)
			}
			tok, loc, _ := ja.extract(rq)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := ja.verify(ctx, tok, loc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCodec compares the codec of GRPCServerOptions with the standard
// one on the benchmark request and its answer.
func BenchmarkCodec(b *testing.B) {
	s, r := benchRequest(b, jwt.SigningMethodRS256)
	resp, _ := s.Check(context.Background(), r)
	reqBytes, err := proto.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"standard", encoding.GetCodecV2("proto")}, {"auth", Codec{}}} {
		b.Run("unmarshal/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var x authv3.CheckRequest
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(reqBytes)}, &x); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("marshal/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := c.codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
			}
		})
	}
}
