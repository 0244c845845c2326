package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// benchConfig has a limit no benchmark reaches, so every call is counted
// and admitted.
var benchConfig = Config{Domain: domain, Rules: []Rule{{ID: "bench", Requests: MaxRequests, Unit: "Hour"}}}

// benchRequests are 4096 one-descriptor requests with distinct keys.
func benchRequests() []*rlsv3.RateLimitRequest {
	reqs := make([]*rlsv3.RateLimitRequest, 4096)
	for i := range reqs {
		reqs[i] = request(domain, desc("bench", "x-user", "user"+strconv.Itoa(i)))
	}
	return reqs
}

func benchServer(b *testing.B, s *Server) {
	reqs := benchRequests()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			resp, err := s.ShouldRateLimit(ctx, reqs[next.Add(1)%int64(len(reqs))])
			if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
				b.Errorf("%v %v", resp, err)
				return
			}
		}
	})
}

func BenchmarkServerMemory(b *testing.B) {
	benchServer(b, newTestServer(b, NewMemoryStore(MemoryOptions{}), RealClock, benchConfig))
}

func BenchmarkServerRedis(b *testing.B) {
	r := redistest.Start(b)
	b.SetParallelism(32) // callers in flight, so Redis calls pipeline
	benchServer(b, newTestServer(b, newRedisStore(b, r), RealClock, benchConfig))
}

func BenchmarkMemoryStoreTake(b *testing.B) {
	store := NewMemoryStore(MemoryOptions{})
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = []byte("bench|x-user=user" + strconv.Itoa(i))
	}
	limit := Limit{Algorithm: FixedWindow, Requests: MaxRequests, Window: 3600e9}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		reqs := make([]Request, 1)
		out := make([]Result, 1)
		for pb.Next() {
			reqs[0] = Request{Key: keys[next.Add(1)%int64(len(keys))], Limit: limit, Cost: 1, Now: RealClock.Now()}
			store.Take(context.Background(), reqs, out)
		}
	})
}
