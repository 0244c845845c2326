package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// epoch is aligned to every unit (a whole day), so offsets from it are
// offsets into a window.
var epoch = time.UnixMilli(1_800_057_600_000)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(at time.Duration) *fakeClock { return &fakeClock{t: epoch.Add(at)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(at time.Duration) {
	c.mu.Lock()
	c.t = epoch.Add(at)
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// storeKind makes a fresh store of one kind for a test.
type storeKind struct {
	name string
	new  func(t *testing.T) Store
}

// storeKinds is every store, each test table runs against all of them. The
// Redis kinds start real redis-servers for the test: one, or a cluster of
// three masters.
func storeKinds() []storeKind {
	return []storeKind{
		{"memory", func(t *testing.T) Store { return NewMemoryStore(MemoryOptions{}) }},
		{"redis", func(t *testing.T) Store { return newRedisStore(t, redistest.Start(t)) }},
		{"redis-cluster", func(t *testing.T) Store {
			return newRedisStoreOpts(t, RedisOptions{Addrs: redistest.StartCluster(t, 3).Addrs()})
		}},
	}
}

func newRedisStore(t testing.TB, r *redistest.Redis) *RedisStore {
	t.Helper()
	return newRedisStoreOpts(t, RedisOptions{Addrs: []string{r.Addr()}})
}

func newRedisStoreOpts(t testing.TB, opts RedisOptions) *RedisStore {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := NewRedisStore(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*RedisStore)
}

func newTestServer(t testing.TB, store Store, clock Clock, cfg Config) *Server {
	t.Helper()
	s, err := NewServer(Options{Store: store, Clock: clock, Logger: quietLog, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

// desc is a descriptor for rule with the given key, value pairs after it.
func desc(rule string, kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: RuleEntryKey, Value: rule}}}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// rawDesc is a descriptor of exactly these key, value pairs.
func rawDesc(kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func withHits(d *ratelimitv3.RateLimitDescriptor, n uint64) *ratelimitv3.RateLimitDescriptor {
	d.HitsAddend = wrapperspb.UInt64(n)
	return d
}

func request(domain string, descs ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: domain, Descriptors: descs}
}

func headerMap(resp *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.GetResponseHeadersToAdd() {
		m[h.GetKey()] = h.GetValue()
	}
	return m
}

func mustDecide(t testing.TB, s *Server, req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := s.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	if len(resp.Statuses) != len(req.Descriptors) {
		t.Fatalf("%d statuses for %d descriptors", len(resp.Statuses), len(req.Descriptors))
	}
	return resp
}

// counterValue reads a counter or gauge.
func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
