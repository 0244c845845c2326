package ratelimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The scripts take every decision in Redis atomically, one EVALSHA per
// descriptor. All keys of one call share the hash tag {counter key}, so each
// call touches one hash slot and works on Redis Cluster. The arithmetic is
// the one of store.go, operation for operation.

// fixedWindowScript: KEYS[1] the window's counter; ARGV limit, cost, ttl (ms).
// Returns {admitted 0|1, count after}.
const fixedWindowScript = `
local v = redis.call('GET', KEYS[1])
local count = 0
if v then count = tonumber(v) end
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
if cost > limit or count + cost > limit then
  return {0, count}
end
count = redis.call('INCRBY', KEYS[1], ARGV[2])
if not v then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, count}
`

// slidingWindowScript: KEYS[1] the current window's counter, KEYS[2] the
// previous one's; ARGV limit, cost, ms left in the window, window (ms), ttl
// (ms). Returns {admitted 0|1, current count after, previous count}.
const slidingWindowScript = `
local v = redis.call('MGET', KEYS[1], KEYS[2])
local cur = 0
local prev = 0
if v[1] then cur = tonumber(v[1]) end
if v[2] then prev = tonumber(v[2]) end
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local est = prev * tonumber(ARGV[3]) / tonumber(ARGV[4]) + cur
if est + cost > limit then
  return {0, cur, prev}
end
cur = redis.call('INCRBY', KEYS[1], ARGV[2])
if not v[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return {1, cur, prev}
`

// tokenBucketScript: KEYS[1] the bucket (hash: t tokens, ts last refill ms);
// ARGV now (ms), requests per window, window (ms), capacity, cost, grace
// (ms). Returns {admitted 0|1, tokens after as a round-trip decimal}.
const tokenBucketScript = `
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = cap
local ts = now
if v[1] then
  tokens = tonumber(v[1])
  ts = tonumber(v[2])
  if now > ts then
    tokens = tokens + (now - ts) * n / w
    ts = now
  end
  if tokens > cap then tokens = cap end
end
if tokens < cost then
  return {0, string.format('%.17g', tokens)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) * w / n) + tonumber(ARGV[6]))
return {1, string.format('%.17g', tokens)}
`

var (
	fixedWindowLua   = rueidis.NewLuaScript(fixedWindowScript)
	slidingWindowLua = rueidis.NewLuaScript(slidingWindowScript)
	tokenBucketLua   = rueidis.NewLuaScript(tokenBucketScript)
)

// RedisOptions configures NewRedisStore.
type RedisOptions struct {
	// Addrs are host:port of one Redis, or of some nodes of a Redis Cluster
	// (the cluster is discovered from them). Required.
	Addrs    []string
	Username string
	Password string
	DB       int         // not on a cluster
	TLS      *tls.Config // nil for plain TCP
	// KeyPrefix starts every key; default "sekisho:rl:".
	KeyPrefix string
	// DialTimeout bounds connecting; default 2s.
	DialTimeout time.Duration
	// PingTimeout bounds Ping and each background probe; default 500ms.
	PingTimeout time.Duration
	// The store fails fast once at least FailureThreshold calls (default
	// 3) have failed (error or timeout) and none has succeeded for
	// FailFastAfter (default 200ms): a short stall of a loaded machine
	// does not trip it, a Redis that is down or hung does.
	FailureThreshold int
	FailFastAfter    time.Duration
	// ProbeInterval is how often a failing-fast store pings Redis to find
	// out it is back (default 250ms); ProbeTimeout bounds each of those
	// pings (default 2s: the probe is in no request's path).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// PipelineMultiplex sets 2^n connections per Redis node for the
	// auto-pipelined calls (rueidis' default when 0).
	PipelineMultiplex int
	// MaxFlushDelay lets each connection wait up to this long after a
	// write to gather more commands into the next one: fewer system calls
	// on both sides for a little latency. Default 50µs; negative: write at
	// once.
	MaxFlushDelay time.Duration
	Logger        *slog.Logger
}

// RedisStore keeps the counters in Redis (or Redis Cluster), so replicas of
// the service share them: a limit is a mesh-wide quota. Concurrent decisions
// are auto-pipelined onto a few connections.
//
// When calls keep failing (see RedisOptions.FailFastAfter) the store stops
// calling Redis and answers ErrStoreUnavailable at once, while a background
// probe pings Redis every ProbeInterval; the first answered ping lets calls
// through again.
type RedisStore struct {
	client    rueidis.Client
	prefix    string
	log       *slog.Logger
	pingTO    time.Duration
	probeTO   time.Duration
	probeGap  time.Duration
	threshold int32
	openAfter int64 // ns

	fails     atomic.Int32
	failSince atomic.Int64 // unix ns of the first failure since the last success; 0 for none
	open      atomic.Bool
	lastErr   atomic.Pointer[failure]
	done      chan struct{}
	closeMu   sync.Mutex
	closing   bool
	probing   sync.WaitGroup

	scratch sync.Pool
}

type failure struct {
	err error
	at  time.Time
}

// NewRedisStore connects to Redis and returns a *RedisStore. It fails when no
// address answers; ctx bounds the first PING. One address may be a single
// Redis or a cluster node; with several, they are taken as cluster nodes.
func NewRedisStore(ctx context.Context, opts RedisOptions) (Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis store: no address")
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "sekisho:rl:"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 500 * time.Millisecond
	}
	if opts.FailureThreshold <= 0 {
		opts.FailureThreshold = 3
	}
	if opts.FailFastAfter <= 0 {
		opts.FailFastAfter = 200 * time.Millisecond
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 250 * time.Millisecond
	}
	if opts.MaxFlushDelay == 0 {
		opts.MaxFlushDelay = 50 * time.Microsecond
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       opts.Addrs,
		Username:          opts.Username,
		Password:          opts.Password,
		SelectDB:          opts.DB,
		TLSConfig:         opts.TLS,
		Dialer:            net.Dialer{Timeout: opts.DialTimeout},
		DisableCache:      true,
		PipelineMultiplex: opts.PipelineMultiplex,
		MaxFlushDelay:     max(opts.MaxFlushDelay, 0),
	})
	if err != nil {
		return nil, fmt.Errorf("redis store: connecting to %v: %w", opts.Addrs, err)
	}
	s := &RedisStore{
		client:    client,
		prefix:    opts.KeyPrefix,
		log:       opts.Logger,
		pingTO:    opts.PingTimeout,
		probeTO:   opts.ProbeTimeout,
		probeGap:  opts.ProbeInterval,
		threshold: int32(opts.FailureThreshold),
		openAfter: int64(opts.FailFastAfter),
		done:      make(chan struct{}),
	}
	s.scratch.New = func() any { return new(redisCall) }
	if err := s.Ping(ctx); err != nil {
		client.Close()
		return nil, err
	}
	if err := s.loadScripts(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

// loadScripts loads the scripts on every node, so the first calls need no
// NOSCRIPT round (Exec still falls back to EVAL when a node has lost them,
// e.g. after a restart).
func (s *RedisStore) loadScripts(ctx context.Context) error {
	for addr, n := range s.client.Nodes() {
		for _, script := range []string{fixedWindowScript, slidingWindowScript, tokenBucketScript} {
			if err := n.Do(ctx, n.B().ScriptLoad().Script(script).Build()).Error(); err != nil {
				return fmt.Errorf("redis %s: SCRIPT LOAD: %w", addr, err)
			}
		}
	}
	return nil
}

// Client is the underlying rueidis client (for tests and tools).
func (s *RedisStore) Client() rueidis.Client { return s.client }

// redisCall is the scratch space of one script call.
type redisCall struct {
	buf  []byte
	ends [8]int
	strs [8]string
}

// Take implements Store. The requests of one call go to Redis together (one
// round trip for all of them).
func (s *RedisStore) Take(ctx context.Context, reqs []Request, out []Result) {
	if s.open.Load() {
		err := s.unavailable()
		for i := range reqs {
			out[i] = Result{Err: err}
		}
		return
	}
	if len(reqs) == 1 {
		out[0] = s.take(ctx, &reqs[0])
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < len(reqs); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.take(ctx, &reqs[i])
		}()
	}
	out[0] = s.take(ctx, &reqs[0])
	wg.Wait()
}

func (s *RedisStore) take(ctx context.Context, req *Request) Result {
	l := req.Limit
	w := l.Window.Milliseconds()
	now := req.Now.UnixMilli()
	idx := windowIndex(now, w)

	c := s.scratch.Get().(*redisCall)
	defer s.scratch.Put(c)
	b := c.buf[:0]
	n := 0
	mark := func() { c.ends[n] = len(b); n++ }
	appendKey := func(idx int64) {
		b = append(b, s.prefix...)
		b = append(b, '{')
		b = append(b, req.Key...)
		b = append(b, '}')
		b = appendStoreSuffix(b, l)
		if l.Algorithm != TokenBucket {
			b = append(b, ':')
			b = strconv.AppendInt(b, idx, 10)
		}
		mark()
	}
	appendArg := func(v int64) {
		b = strconv.AppendInt(b, v, 10)
		mark()
	}

	var script *rueidis.Lua
	var nkeys int
	switch l.Algorithm {
	case TokenBucket:
		script, nkeys = tokenBucketLua, 1
		appendKey(0)
		appendArg(now)
		appendArg(int64(l.Requests))
		appendArg(w)
		appendArg(int64(l.capacity()))
		appendArg(int64(req.Cost))
		appendArg(grace)
	case SlidingWindow:
		script, nkeys = slidingWindowLua, 2
		appendKey(idx)
		appendKey(idx - 1)
		appendArg(int64(l.Requests))
		appendArg(int64(req.Cost))
		appendArg(w - (now - idx*w))
		appendArg(w)
		appendArg(ttlMillis(l, now, w, 0))
	default:
		script, nkeys = fixedWindowLua, 1
		appendKey(idx)
		appendArg(int64(l.Requests))
		appendArg(int64(req.Cost))
		appendArg(ttlMillis(l, now, w, 0))
	}
	// One allocation holds every key and argument of the call.
	all := string(b)
	c.buf = b
	start := 0
	for i := 0; i < n; i++ {
		c.strs[i] = all[start:c.ends[i]]
		start = c.ends[i]
	}

	resp := script.Exec(ctx, s.client, c.strs[:nkeys], c.strs[nkeys:n])
	clear(c.strs[:n])
	arr, err := resp.ToArray()
	if err != nil {
		s.failed(ctx, resp.NonRedisError())
		return Result{Err: fmt.Errorf("redis %s script: %w", l.Algorithm, err)}
	}
	s.succeeded()
	if len(arr) < 2 {
		return Result{Err: fmt.Errorf("redis %s script: %d values returned", l.Algorithm, len(arr))}
	}
	admitted, err1 := arr[0].AsInt64()
	allowed := admitted == 1
	switch l.Algorithm {
	case TokenBucket:
		ts, err2 := arr[1].ToString()
		tokens, err3 := strconv.ParseFloat(ts, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return Result{Err: fmt.Errorf("redis %s script: %w", l.Algorithm, err)}
		}
		return bucketOutcome(l, w, tokens, allowed, req.Cost)
	case SlidingWindow:
		if len(arr) < 3 {
			return Result{Err: fmt.Errorf("redis %s script: %d values returned", l.Algorithm, len(arr))}
		}
		cur, err2 := arr[1].AsInt64()
		prev, err3 := arr[2].AsInt64()
		if err := errors.Join(err1, err2, err3); err != nil {
			return Result{Err: fmt.Errorf("redis %s script: %w", l.Algorithm, err)}
		}
		return slidingOutcome(l, now, w, uint64(cur), uint64(prev), allowed, req.Cost)
	default:
		count, err2 := arr[1].AsInt64()
		if err := errors.Join(err1, err2); err != nil {
			return Result{Err: fmt.Errorf("redis %s script: %w", l.Algorithm, err)}
		}
		return fixedOutcome(l, now, w, uint64(count), allowed)
	}
}

// failed records a call that did not reach Redis or got no answer in time.
// An error Redis itself returned (err == nil here) says Redis is up.
func (s *RedisStore) failed(ctx context.Context, err error) {
	if err == nil {
		s.succeeded()
		return
	}
	if errors.Is(err, context.Canceled) && ctx.Err() == context.Canceled {
		return // the caller went away; that says nothing about Redis
	}
	now := time.Now()
	s.lastErr.Store(&failure{err: err, at: now})
	s.failSince.CompareAndSwap(0, now.UnixNano())
	n := s.fails.Add(1)
	since := s.failSince.Load()
	if n >= s.threshold && since != 0 && now.UnixNano()-since >= s.openAfter && s.open.CompareAndSwap(false, true) {
		s.log.Warn("redis does not answer; rate-limit decisions fail fast until it does", "error", err, "failures", n)
		s.closeMu.Lock()
		if !s.closing {
			s.probing.Add(1)
			go s.probe()
		}
		s.closeMu.Unlock()
	}
}

func (s *RedisStore) succeeded() {
	if s.fails.Load() != 0 {
		s.fails.Store(0)
		s.failSince.Store(0)
	}
}

func (s *RedisStore) unavailable() error {
	var err error = errors.New("no answer")
	if f := s.lastErr.Load(); f != nil {
		err = f.err
	}
	if since := s.failSince.Load(); since != 0 {
		return fmt.Errorf("%w: redis has failed for %s: %w", ErrStoreUnavailable, time.Since(time.Unix(0, since)).Round(time.Millisecond), err)
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// probe pings Redis until it answers, then lets calls through again.
func (s *RedisStore) probe() {
	defer s.probing.Done()
	t := time.NewTicker(s.probeGap)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.probeTO)
		err := s.ping(ctx)
		cancel()
		if err == nil {
			s.fails.Store(0)
			s.failSince.Store(0)
			s.open.Store(false)
			s.log.Info("redis answers again; rate-limit decisions use it")
			return
		}
		s.lastErr.Store(&failure{err: err, at: time.Now()})
	}
}

// Ping implements Store: PING to every node, within PingTimeout.
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.pingTO)
	defer cancel()
	return s.ping(ctx)
}

func (s *RedisStore) ping(ctx context.Context) error {
	nodes := s.client.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		n := nodes[a]
		if err := n.Do(ctx, n.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("redis %s: PING: %w", a, err)
		}
	}
	if len(addrs) == 0 {
		return errors.New("redis: no node known")
	}
	return nil
}

// Close implements Store.
func (s *RedisStore) Close() error {
	s.closeMu.Lock()
	if s.closing {
		s.closeMu.Unlock()
		return nil
	}
	s.closing = true
	close(s.done)
	s.closeMu.Unlock()
	s.probing.Wait()
	s.client.Close()
	return nil
}
