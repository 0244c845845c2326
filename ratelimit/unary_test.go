package ratelimit

import (
	"context"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestUnaryShouldRateLimitAnswersAsShouldRateLimit(t *testing.T) {
	cfg := Config{Domain: domain, Rules: []Rule{{ID: "api", Requests: 2, Unit: "Minute"}}}
	direct := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(0), cfg)
	unary := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(0), cfg)
	ctx := context.Background()
	for i := range 3 { // OK, OK, OVER_LIMIT
		req := request(domain, desc("api", "x-user", "alice"))
		want, err := direct.ShouldRateLimit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		in, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		out, err := unary.UnaryShouldRateLimit(ctx, in)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var got rlsv3.RateLimitResponse
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatalf("call %d: the answer does not parse: %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("call %d: got %v, want %v", i, &got, want)
		}
	}
	if _, err := unary.UnaryShouldRateLimit(ctx, []byte{0x0a, 0xff}); status.Code(err) != codes.Internal {
		t.Errorf("a request that does not parse: got %v, want Internal", err)
	}
}
