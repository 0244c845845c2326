package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultDeadline bounds the store's work in one ShouldRateLimit call.
const DefaultDeadline = 20 * time.Millisecond

// readyTimeout bounds the store ping of Ready.
const readyTimeout = time.Second

// maxCost caps a descriptor's cost. Limits are at most MaxRequests, so any
// larger cost is denied all the same; the cap keeps the arithmetic exact.
const maxCost = 1 << 40

// Options configures NewServer.
type Options struct {
	Store      Store                 // required
	Deadline   time.Duration         // per ShouldRateLimit store deadline; default 20ms
	Clock      Clock                 // default real time
	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // metrics, may be nil
}

// Server answers envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
// from the config in force (SetConfig) and the counters of its Store.
type Server struct {
	store    Store
	local    bool // the store never blocks: no deadline needed
	deadline time.Duration
	clock    Clock
	log      *slog.Logger
	m        *metrics
	reg      prometheus.Registerer

	mu    sync.Mutex // serialises SetConfig
	cfg   atomic.Pointer[compiled]
	calls sync.Pool

	jobs     chan *call // idle store workers receive here
	workers  atomic.Int32
	stop     chan struct{}
	stopOnce sync.Once
}

var _ rlsv3.RateLimitServiceServer = (*Server)(nil)

// NewServer returns a server with no config: until SetConfig, every request
// is for an unknown domain and answered OK.
func NewServer(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("ratelimit: Options.Store is required")
	}
	if opts.Deadline <= 0 {
		opts.Deadline = DefaultDeadline
	}
	if opts.Clock == nil {
		opts.Clock = RealClock
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	_, local := opts.Store.(*MemoryStore)
	s := &Server{
		store:    opts.Store,
		local:    local,
		deadline: opts.Deadline,
		clock:    opts.Clock,
		log:      opts.Logger,
		m:        m,
		reg:      opts.Registerer,
		jobs:     make(chan *call),
		stop:     make(chan struct{}),
	}
	s.calls.New = func() any { return new(call) }
	return s, nil
}

// Register serves the server's RateLimitService on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	rlsv3.RegisterRateLimitServiceServer(g, s)
}

// SetConfig validates c and, when it is valid, makes it the config in force
// at once for every later call. An invalid config returns the reasons and
// leaves the previous config serving.
func (s *Server) SetConfig(c Config) error {
	cc, err := compile(c)
	if err != nil {
		s.log.Error("rate-limit config rejected; the previous one keeps serving", "domain", c.Domain, "error", err)
		return fmt.Errorf("rate-limit config for domain %q rejected, the previous one keeps serving: %w", c.Domain, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range cc.rules {
		r.m = s.m.forRule(id)
	}
	if old := s.cfg.Swap(cc); old != nil {
		for id := range old.rules {
			if _, ok := cc.rules[id]; !ok {
				s.m.forget(id)
			}
		}
	}
	s.m.rules.Set(float64(len(cc.rules)))
	s.log.Info("rate-limit config in force", "domain", cc.domain, "rules", len(cc.rules))
	return nil
}

// Ready returns nil when the store answers a ping within a second, and
// otherwise says why not.
func (s *Server) Ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("rate-limit store does not answer: %w", err)
	}
	return nil
}

// storeGrace is how long after the deadline a store may take to return
// before the call stops waiting for it.
const storeGrace = 5 * time.Millisecond

var errStoreStuck = errors.New("rate-limit store did not return by the deadline")

// maxIdleWorkers is how many store workers stay waiting for calls.
const maxIdleWorkers = 256

// takeBounded runs the store's Take for c under the deadline, on a store
// worker so that a store that does not honour its context cannot hold the
// call: it reports false when the store had not returned storeGrace after
// the deadline. Workers are long-lived goroutines (no goroutine start or
// stack growth per call); a call that finds none idle starts one.
func (s *Server) takeBounded(ctx context.Context, c *call) bool {
	sctx, cancel := context.WithTimeout(ctx, s.deadline)
	defer cancel()
	if c.done == nil {
		c.done = make(chan struct{}, 1)
	}
	c.ctx = sctx
	select {
	case s.jobs <- c:
	default:
		s.workers.Add(1)
		go s.storeWorker(c)
	}
	select {
	case <-c.done:
		return true
	case <-sctx.Done():
	}
	t := time.NewTimer(storeGrace)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// storeWorker takes c, then every call handed to it, until the server
// closes or more than maxIdleWorkers are around.
func (s *Server) storeWorker(c *call) {
	defer s.workers.Add(-1)
	for {
		s.store.Take(c.ctx, c.reqs, c.res)
		c.done <- struct{}{} // c belongs to its caller again
		if s.workers.Load() > maxIdleWorkers {
			return
		}
		select {
		case c = <-s.jobs:
		case <-s.stop:
			return
		}
	}
}

// Close stops the server's store workers once their calls are done. The
// store is not closed: it is the caller's.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
}

// call is the scratch space of one ShouldRateLimit call.
type call struct {
	ctx    context.Context // the store deadline, for the worker
	done   chan struct{}   // the store's Take has returned
	buf    []byte
	keyEnd []int
	reqs   []Request
	res    []Result
	rules  []*rule
	pos    []int // the descriptor index of reqs[i]
}

func (c *call) reset() {
	c.buf = c.buf[:0]
	c.keyEnd = c.keyEnd[:0]
	clear(c.reqs)
	c.reqs = c.reqs[:0]
	clear(c.res)
	c.res = c.res[:0]
	clear(c.rules)
	c.rules = c.rules[:0]
	c.pos = c.pos[:0]
	c.ctx = nil
}

// ShouldRateLimit implements rlsv3.RateLimitServiceServer.
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	start := time.Now()
	resp, err := s.decide(ctx, req)
	s.m.duration.Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Server) decide(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	descs := req.GetDescriptors()
	resp, parts := newResponse(len(descs))
	cfg := s.cfg.Load()
	if cfg == nil || req.GetDomain() != cfg.domain {
		s.m.unknownDomain.Add(float64(len(descs)))
		return &resp.RateLimitResponse, nil
	}

	c := s.calls.Get().(*call)
	pooled := c
	defer func() {
		if c == pooled {
			c.reset()
			s.calls.Put(c)
		}
	}()
	now := s.clock.Now()
	for i, d := range descs {
		entries := d.GetEntries()
		if len(entries) == 0 || entries[0].GetKey() != RuleEntryKey {
			s.m.notARule.Inc()
			continue
		}
		r := cfg.rules[entries[0].GetValue()]
		if r == nil {
			s.m.unknownRule.Inc()
			continue
		}
		if len(r.cidrs) > 0 && !r.admitsClient(entryValue(entries, RemoteAddressEntryKey)) {
			continue
		}
		c.buf = AppendKey(c.buf, cfg.domain, entries)
		c.keyEnd = append(c.keyEnd, len(c.buf))
		c.reqs = append(c.reqs, Request{Limit: r.limit, Cost: descriptorCost(req, d), Now: now})
		c.rules = append(c.rules, r)
		c.pos = append(c.pos, i)
	}
	if len(c.reqs) == 0 {
		return &resp.RateLimitResponse, nil
	}
	from := 0
	for i := range c.reqs {
		c.reqs[i].Key = c.buf[from:c.keyEnd[i]]
		from = c.keyEnd[i]
	}
	c.res = append(c.res, make([]Result, len(c.reqs))...)
	if s.local {
		s.store.Take(ctx, c.reqs, c.res)
	} else if !s.takeBounded(ctx, c) {
		// The store is still working on c: leave c to it, not to the pool.
		abandoned := c
		c = &call{reqs: abandoned.reqs, rules: abandoned.rules, pos: abandoned.pos, res: make([]Result, len(abandoned.res))}
		for i := range c.res {
			c.res[i].Err = errStoreStuck
		}
	}

	// A failing store: fail-closed rules make the whole call fail, so the
	// proxy applies its own failure policy (deny).
	var closedErr error
	for i := range c.res {
		if err := c.res[i].Err; err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			r := c.rules[i]
			r.m.storeErrors.Inc()
			if r.failClosed && closedErr == nil {
				closedErr = status.Errorf(codes.Unavailable, "rate-limit rule %q: %v", r.id, err)
			}
		}
	}
	if closedErr != nil {
		return nil, closedErr
	}

	best := -1
	for i := range c.reqs {
		r, res := c.rules[i], &c.res[i]
		if res.Err != nil {
			r.m.failOpen.Inc()
			continue
		}
		p := &parts[c.pos[i]]
		st := &p.status
		p.limit.Name = r.id
		p.limit.RequestsPerUnit = uint32(r.limit.Requests)
		p.limit.Unit = r.unit
		st.CurrentLimit = &p.limit
		st.LimitRemaining = uint32(min(res.Remaining, MaxRequests))
		p.reset.Seconds = int64(res.ResetAfter / time.Second)
		p.reset.Nanos = int32(res.ResetAfter % time.Second)
		st.DurationUntilReset = &p.reset
		switch {
		case res.Allowed:
			r.m.ok.Inc()
		case r.shadow:
			r.m.ok.Inc()
			r.m.shadowOver.Inc()
		default:
			r.m.over.Inc()
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		if best < 0 || c.moreRestrictive(i, best) {
			best = i
		}
	}
	if best >= 0 {
		resp.setHeaders(c.rules[best], &c.res[best], resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT)
	}
	return &resp.RateLimitResponse, nil
}

// response is a RateLimitResponse with room for its headers, allocated
// once per call; statusParts are one descriptor's status and what it points
// to. A call with one descriptor (the usual case) allocates them together.
type response struct {
	rlsv3.RateLimitResponse
	headers    [5]corev3.HeaderValue
	headerPtrs [5]*corev3.HeaderValue
}

type statusParts struct {
	status rlsv3.RateLimitResponse_DescriptorStatus
	limit  rlsv3.RateLimitResponse_RateLimit
	reset  durationpb.Duration
}

func newResponse(n int) (*response, []statusParts) {
	var resp *response
	var parts []statusParts
	var ptrs []*rlsv3.RateLimitResponse_DescriptorStatus
	if n == 1 {
		one := new(struct {
			response
			parts [1]statusParts
			ptrs  [1]*rlsv3.RateLimitResponse_DescriptorStatus
		})
		resp, parts, ptrs = &one.response, one.parts[:], one.ptrs[:]
	} else {
		resp = new(response)
		parts = make([]statusParts, n)
		ptrs = make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)
	}
	resp.OverallCode = rlsv3.RateLimitResponse_OK
	for i := range parts {
		parts[i].status.Code = rlsv3.RateLimitResponse_OK
		ptrs[i] = &parts[i].status
	}
	resp.Statuses = ptrs
	return resp, parts
}

// moreRestrictive orders the counted descriptors for the RateLimit headers:
// a denied (non-shadow) one first, then the least remaining, then the
// longest until reset.
func (c *call) moreRestrictive(a, b int) bool {
	ra, rb := &c.res[a], &c.res[b]
	da := !ra.Allowed && !c.rules[a].shadow
	db := !rb.Allowed && !c.rules[b].shadow
	if da != db {
		return da
	}
	if ra.Remaining != rb.Remaining {
		return ra.Remaining < rb.Remaining
	}
	return ra.ResetAfter > rb.ResetAfter
}

// The response headers, after draft-ietf-httpapi-ratelimit-headers.
const (
	HeaderLimit      = "RateLimit-Limit"
	HeaderRemaining  = "RateLimit-Remaining"
	HeaderReset      = "RateLimit-Reset"
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRetryAfter = "Retry-After"
)

func (resp *response) setHeaders(r *rule, res *Result, over bool) {
	hv := &resp.headers
	hv[0].Key, hv[0].Value = HeaderLimit, r.limitText
	hv[1].Key, hv[1].Value = HeaderRemaining, strconv.FormatUint(min(res.Remaining, MaxRequests), 10)
	hv[2].Key, hv[2].Value = HeaderReset, strconv.FormatInt(ceilSeconds(res.ResetAfter), 10)
	hv[3].Key, hv[3].Value = HeaderPolicy, r.policyText
	n := 4
	if over {
		hv[4].Key, hv[4].Value = HeaderRetryAfter, strconv.FormatInt(max(1, ceilSeconds(res.RetryAfter)), 10)
		n = 5
	}
	for i := range n {
		resp.headerPtrs[i] = &hv[i]
	}
	resp.ResponseHeadersToAdd = resp.headerPtrs[:n]
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// descriptorCost is the descriptor's hits_addend if set, else the request's
// if > 0, else 1.
func descriptorCost(req *rlsv3.RateLimitRequest, d *ratelimitv3.RateLimitDescriptor) uint64 {
	if h := d.GetHitsAddend(); h != nil {
		return min(h.GetValue(), maxCost)
	}
	if h := req.GetHitsAddend(); h > 0 {
		return uint64(h)
	}
	return 1
}

func entryValue(entries []*ratelimitv3.RateLimitDescriptor_Entry, key string) string {
	for _, e := range entries[1:] {
		if e.GetKey() == key {
			return e.GetValue()
		}
	}
	return ""
}
