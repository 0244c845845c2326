package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sekisho/sekisho/internal/unarygrpc"
)

const domain = "sekisho"

func TestServerFixedWindowAnswer(t *testing.T) {
	clock := newFakeClock(10 * time.Second)
	s := newTestServer(t, NewMemoryStore(MemoryOptions{}), clock, Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 3, Unit: "Minute"},
	}})
	for i := range 3 {
		resp := mustDecide(t, s, request(domain, desc("api", "x-user", "alice")))
		if resp.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d: %v", i, resp.OverallCode)
		}
		st := resp.Statuses[0]
		if st.Code != rlsv3.RateLimitResponse_OK || st.LimitRemaining != uint32(2-i) ||
			st.CurrentLimit.GetRequestsPerUnit() != 3 || st.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE ||
			st.CurrentLimit.GetName() != "api" || st.DurationUntilReset.AsDuration() != 50*time.Second {
			t.Errorf("call %d: status %v", i, st)
		}
		want := map[string]string{HeaderLimit: "3", HeaderRemaining: string(rune('2' - i)), HeaderReset: "50", HeaderPolicy: "3;w=60"}
		if got := headerMap(resp); !equalMaps(got, want) {
			t.Errorf("call %d: headers %v, want %v", i, got, want)
		}
	}
	clock.Advance(9500 * time.Millisecond) // 40.5s before the window ends
	resp := mustDecide(t, s, request(domain, desc("api", "x-user", "alice")))
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("4th call: %v", resp)
	}
	want := map[string]string{HeaderLimit: "3", HeaderRemaining: "0", HeaderReset: "41", HeaderPolicy: "3;w=60", HeaderRetryAfter: "41"}
	if got := headerMap(resp); !equalMaps(got, want) {
		t.Errorf("over the limit: headers %v, want %v", got, want)
	}
	// Another user has a counter of its own.
	if resp := mustDecide(t, s, request(domain, desc("api", "x-user", "bob"))); resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("another user: %v", resp.OverallCode)
	}
	// The next window.
	clock.Set(60 * time.Second)
	if resp := mustDecide(t, s, request(domain, desc("api", "x-user", "alice"))); resp.OverallCode != rlsv3.RateLimitResponse_OK || headerMap(resp)[HeaderRemaining] != "2" {
		t.Errorf("next window: %v", resp)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestServerDescriptorProtocol(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := NewServer(Options{Store: NewMemoryStore(MemoryOptions{}), Clock: newFakeClock(0), Logger: quietLog, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Before any config every request is for an unknown domain.
	if resp := mustDecide(t, s, request(domain, desc("api"))); resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("no config: %v", resp)
	}
	if err := s.SetConfig(Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 1, Unit: "Hour"},
		{ID: "internal", Requests: 1, Unit: "Hour", ClientCIDRs: []string{"10.0.0.0/8"}},
	}}); err != nil {
		t.Fatal(err)
	}
	notCounted := func(name string, req *rlsv3.RateLimitRequest) {
		t.Helper()
		for i := range 3 {
			resp := mustDecide(t, s, req)
			if resp.OverallCode != rlsv3.RateLimitResponse_OK || len(resp.ResponseHeadersToAdd) != 0 {
				t.Errorf("%s, call %d: %v", name, i, resp)
			}
			for _, st := range resp.Statuses {
				if st.Code != rlsv3.RateLimitResponse_OK || st.CurrentLimit != nil {
					t.Errorf("%s, call %d: status %v", name, i, st)
				}
			}
		}
	}
	notCounted("other domain", request("other", desc("api")))
	notCounted("unknown rule", request(domain, desc("nope", "x-user", "a")))
	notCounted("first entry not the rule", request(domain, rawDesc("x-user", "a")))
	notCounted("the rule entry not first", request(domain, rawDesc("x-user", "a", RuleEntryKey, "api")))
	notCounted("no entries", request(domain, rawDesc()))
	notCounted("outside the CIDRs", request(domain, desc("internal", "remote_address", "192.168.1.1")))
	notCounted("no remote_address", request(domain, desc("internal", "x-user", "a")))
	for reason, want := range map[string]float64{"domain": 4 /* 1 before the config */, "unknown_rule": 3, "not_a_rule": 9} {
		if got := counterValue(s.m.unknown.WithLabelValues(reason)); got != want {
			t.Errorf("unknown_descriptors_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}

	// Inside the CIDRs the rule counts, per distinct entries.
	for _, addr := range []string{"10.1.2.3", "10.9.9.9"} {
		r1 := mustDecide(t, s, request(domain, desc("internal", "remote_address", addr)))
		r2 := mustDecide(t, s, request(domain, desc("internal", "remote_address", addr)))
		if r1.OverallCode != rlsv3.RateLimitResponse_OK || r2.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Errorf("%s: %v then %v, want OK then OVER_LIMIT", addr, r1.OverallCode, r2.OverallCode)
		}
	}
	// Entries are part of the key: the order and each value count.
	for _, d := range [][]string{{"a", "1", "b", "2"}, {"b", "2", "a", "1"}, {"a", "1"}, {"a", "1", "b", "3"}} {
		if resp := mustDecide(t, s, request(domain, desc("api", d...))); resp.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Errorf("entries %v: %v, want a counter of their own", d, resp.OverallCode)
		}
	}
	if got := counterValue(s.m.decisions.WithLabelValues("internal", "over_limit")); got != 2 {
		t.Errorf("decisions_total{rule=internal,code=over_limit} = %v, want 2", got)
	}
	if got := counterValue(s.m.decisions.WithLabelValues("api", "ok")); got != 4 {
		t.Errorf("decisions_total{rule=api,code=ok} = %v, want 4", got)
	}
}

func TestServerCost(t *testing.T) {
	s := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(0), Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 100, Unit: "Hour"},
	}})
	for _, tc := range []struct {
		name      string
		req       *rlsv3.RateLimitRequest
		remaining string
	}{
		{"default 1", request(domain, desc("api", "k", "1")), "99"},
		{"request hits_addend", &rlsv3.RateLimitRequest{Domain: domain, HitsAddend: 7, Descriptors: request(domain, desc("api", "k", "2")).Descriptors}, "93"},
		{"descriptor hits_addend wins", &rlsv3.RateLimitRequest{Domain: domain, HitsAddend: 7, Descriptors: request(domain, withHits(desc("api", "k", "3"), 30)).Descriptors}, "70"},
		{"descriptor hits_addend 0", &rlsv3.RateLimitRequest{Domain: domain, HitsAddend: 7, Descriptors: request(domain, withHits(desc("api", "k", "4"), 0)).Descriptors}, "100"},
		{"huge", request(domain, withHits(desc("api", "k", "5"), 1<<63)), "100"},
	} {
		resp := mustDecide(t, s, tc.req)
		if got := headerMap(resp)[HeaderRemaining]; got != tc.remaining {
			t.Errorf("%s: remaining %s, want %s", tc.name, got, tc.remaining)
		}
	}
}

func TestServerShadowAndMostRestrictive(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := NewServer(Options{Store: NewMemoryStore(MemoryOptions{}), Clock: newFakeClock(0), Logger: quietLog, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfig(Config{Domain: domain, Rules: []Rule{
		{ID: "shadow", Requests: 2, Unit: "Minute", Shadow: true},
		{ID: "hourly", Requests: 5, Unit: "Hour"},
		{ID: "perSecond", Requests: 100, Unit: "Second"},
	}}); err != nil {
		t.Fatal(err)
	}
	// Shadow alone: never denied, still counted, headers show it.
	for i, want := range []string{"1", "0", "0", "0"} {
		resp := mustDecide(t, s, request(domain, desc("shadow", "u", "a")))
		if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OK {
			t.Errorf("shadow call %d: %v", i, resp)
		}
		h := headerMap(resp)
		if h[HeaderRemaining] != want || h[HeaderLimit] != "2" || h[HeaderRetryAfter] != "" {
			t.Errorf("shadow call %d: headers %v, want remaining %s", i, h, want)
		}
	}
	if got := counterValue(s.m.shadowOver.WithLabelValues("shadow")); got != 2 {
		t.Errorf("shadow_over_limit_total = %v, want 2", got)
	}

	// Several descriptors: the headers follow the least remaining.
	both := request(domain, desc("perSecond", "u", "b"), desc("hourly", "u", "b"))
	for i := range 5 {
		resp := mustDecide(t, s, both)
		h := headerMap(resp)
		if resp.OverallCode != rlsv3.RateLimitResponse_OK || h[HeaderLimit] != "5" || h[HeaderRemaining] != string(rune('4'-i)) || h[HeaderPolicy] != "5;w=3600" {
			t.Errorf("call %d: %v %v", i, resp.OverallCode, h)
		}
	}
	resp := mustDecide(t, s, both)
	h := headerMap(resp)
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OK ||
		resp.Statuses[1].Code != rlsv3.RateLimitResponse_OVER_LIMIT || h[HeaderLimit] != "5" || h[HeaderRetryAfter] != "3600" {
		t.Errorf("over the hourly limit: %v %v", resp, h)
	}
	// A denied real rule wins the headers over an exhausted shadow rule.
	resp = mustDecide(t, s, request(domain, desc("shadow", "u", "a"), desc("hourly", "u", "b")))
	if h := headerMap(resp); resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || h[HeaderLimit] != "5" {
		t.Errorf("shadow and denied: %v %v", resp.OverallCode, h)
	}
	// Shadow over its limit next to an admitting rule: OK.
	resp = mustDecide(t, s, request(domain, desc("shadow", "u", "a"), desc("perSecond", "u", "c")))
	if resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("shadow over and an admitting rule: %v", resp.OverallCode)
	}
}

func TestServerSetConfigKeepsLastGood(t *testing.T) {
	s := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(0), Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 2, Unit: "Hour"},
	}})
	mustDecide(t, s, request(domain, desc("api")))
	err := s.SetConfig(Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 1000, Unit: "Hour"},
		{ID: "broken", Requests: 10, Unit: "Fortnight"},
	}})
	if err == nil || !strings.Contains(err.Error(), `rule "broken": unit:`) {
		t.Fatalf("SetConfig with a bad rule: %v", err)
	}
	// Still the old config: 2 per hour.
	if resp := mustDecide(t, s, request(domain, desc("api"))); resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("second call: %v", resp.OverallCode)
	}
	if resp := mustDecide(t, s, request(domain, desc("api"))); resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Errorf("third call under the old config: %v", resp.OverallCode)
	}
	// A good config takes over; the counter carries on.
	if err := s.SetConfig(Config{Domain: domain, Rules: []Rule{{ID: "api", Requests: 3, Unit: "Hour"}}}); err != nil {
		t.Fatal(err)
	}
	if resp := mustDecide(t, s, request(domain, desc("api"))); resp.OverallCode != rlsv3.RateLimitResponse_OK || headerMap(resp)[HeaderRemaining] != "0" {
		t.Errorf("under the new config: %v", resp)
	}
}

// stubStore answers every request with err, after waiting for ctx when
// block is set, or for stuck (whatever ctx says).
type stubStore struct {
	err   error
	block bool
	stuck time.Duration
	calls atomic.Int64
}

func (f *stubStore) Take(ctx context.Context, reqs []Request, out []Result) {
	f.calls.Add(1)
	if f.stuck > 0 {
		time.Sleep(f.stuck)
	}
	if f.block {
		<-ctx.Done()
		for i := range reqs {
			out[i] = Result{Err: ctx.Err()}
		}
		return
	}
	for i := range reqs {
		out[i] = Result{Err: f.err}
	}
}
func (f *stubStore) Ping(ctx context.Context) error { return f.err }
func (f *stubStore) Close() error                   { return nil }

func TestServerFailureModes(t *testing.T) {
	cfg := Config{Domain: domain, Rules: []Rule{
		{ID: "open", Requests: 1, Unit: "Second"},
		{ID: "closed", Requests: 1, Unit: "Second", FailureMode: "Closed"},
	}}
	for _, store := range []*stubStore{
		{err: errors.New("boom")},
		{err: errors.New("boom"), block: true},
		{err: errors.New("boom"), stuck: 3 * time.Second}, // ignores its context
	} {
		block := fmt.Sprintf("%+v", store)
		s, err := NewServer(Options{Store: store, Deadline: 30 * time.Millisecond, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp := mustDecide(t, s, request(domain, desc("open"), desc("open", "u", "x")))
		if resp.OverallCode != rlsv3.RateLimitResponse_OK || len(resp.ResponseHeadersToAdd) != 0 {
			t.Errorf("block=%v: fail open: %v", block, resp)
		}
		if got := counterValue(s.m.failOpen.WithLabelValues("open")); got != 2 {
			t.Errorf("block=%v: fail_open_total = %v, want 2", block, got)
		}
		// A bound that catches a call waiting for the stuck store.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("block=%v: the call took %v", block, d)
		}
		_, err = s.ShouldRateLimit(context.Background(), request(domain, desc("open"), desc("closed")))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `"closed"`) {
			t.Errorf("block=%v: fail closed: %v", block, err)
		}
		if got := counterValue(s.m.storeErrors.WithLabelValues("closed")); got != 1 {
			t.Errorf("block=%v: store_errors_total{rule=closed} = %v, want 1", block, got)
		}
		if err := s.Ready(); (err == nil) == (store.err != nil) {
			t.Errorf("block=%v: Ready() = %v", block, err)
		}
	}

	// The caller going away is not the store's failure.
	s, _ := NewServer(Options{Store: &stubStore{block: true}, Deadline: time.Minute, Logger: quietLog})
	_ = s.SetConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.ShouldRateLimit(ctx, request(domain, desc("closed"))); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("caller deadline: %v", err)
	}
}

func TestNewServerChecksOptions(t *testing.T) {
	if _, err := NewServer(Options{}); err == nil {
		t.Error("NewServer without a store succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewServer(Options{Store: NewMemoryStore(MemoryOptions{}), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(Options{Store: NewMemoryStore(MemoryOptions{}), Registerer: reg}); err == nil {
		t.Error("a second server registering in the same registry succeeded")
	}
}

func TestServerHandler(t *testing.T) {
	store := &stubStore{}
	reg := prometheus.NewRegistry()
	s, err := NewServer(Options{Store: store, Registerer: reg, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetConfig(Config{Domain: domain, Rules: []Rule{{ID: "api", Requests: 1, Unit: "Second"}}})
	_, _ = s.ShouldRateLimit(context.Background(), request(domain, desc("api")))
	hs := httptest.NewServer(s.Handler(nil))
	defer hs.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	store.err = errors.New("redis 127.0.0.1:1: connection refused")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz with a failing store: %d %q", code, body)
	}
	_, body := get("/metrics")
	for _, name := range []string{"sekisho_ratelimit_decisions_total", "sekisho_ratelimit_fail_open_total", "sekisho_ratelimit_store_errors_total",
		"sekisho_ratelimit_decision_duration_seconds", "sekisho_ratelimit_rules 1"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestServerOverGRPC drives the service through a real gRPC server and
// client on loopback, as the proxy does.
// TestServerOverGRPC runs through grpc-go's server with GRPCServerOptions
// and through internal/unarygrpc's with UnaryShouldRateLimit (what
// `sekisho ratelimit` runs).
func TestServerOverGRPC(t *testing.T) {
	for _, server := range []string{"grpc-go", "unarygrpc"} {
		t.Run(server, func(t *testing.T) { testServerOverGRPC(t, server) })
	}
}

func testServerOverGRPC(t *testing.T, server string) {
	s := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(0), Config{Domain: domain, Rules: []Rule{
		{ID: "api", Requests: 1, Unit: "Minute"},
		{ID: "closed", Requests: 1, Unit: "Minute", FailureMode: "Closed"},
	}})
	client := serveOver(t, s, server)
	ctx := context.Background()
	resp, err := client.ShouldRateLimit(ctx, request(domain, desc("api")))
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("first call: %v %v", resp, err)
	}
	resp, err = client.ShouldRateLimit(ctx, request(domain, desc("api")))
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || headerMap(resp)[HeaderRetryAfter] != "60" {
		t.Fatalf("second call: %v %v", resp, err)
	}

	failing, _ := NewServer(Options{Store: &stubStore{err: errors.New("down")}, Logger: quietLog})
	_ = failing.SetConfig(Config{Domain: domain, Rules: []Rule{{ID: "closed", Requests: 1, Unit: "Minute", FailureMode: "Closed"}}})
	if _, err := serveOver(t, failing, server).ShouldRateLimit(ctx, request(domain, desc("closed"))); status.Code(err) != codes.Unavailable {
		t.Errorf("fail closed over gRPC: %v", err)
	}
}

// serveOver serves s on 127.0.0.1 through grpc-go's server ("grpc-go") or
// internal/unarygrpc's ("unarygrpc") and returns a client of it.
func serveOver(t testing.TB, s *Server, server string) rlsv3.RateLimitServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if server == "grpc-go" {
		gs := grpc.NewServer(GRPCServerOptions()...)
		s.Register(gs)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
	} else {
		us := unarygrpc.NewServer(unarygrpc.Options{})
		us.Handle(ShouldRateLimitMethod, s.UnaryShouldRateLimit)
		go func() { _ = us.Serve(lis) }()
		t.Cleanup(us.Stop)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}
