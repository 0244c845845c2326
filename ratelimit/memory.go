package ratelimit

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

const memoryShards = 64

// MemoryOptions configures NewMemoryStore.
type MemoryOptions struct {
	// SweepInterval is how often each shard drops its expired counters,
	// measured on the decisions' clock; default 10s.
	SweepInterval time.Duration
}

// MemoryStore keeps the counters in this process: the store of a single
// replica. Counters are spread over 64 shards by key hash, each a map under
// its own mutex; a shard drops its expired counters when it is used and its
// sweep is due, so an idle store costs nothing.
type MemoryStore struct {
	seed   maphash.Seed
	sweep  int64 // ms
	shards [memoryShards]memShard
}

type memShard struct {
	mu        sync.Mutex
	m         map[string]*memEntry
	nextSweep int64
	buf       []byte
	_         [64]byte // keeps neighbouring shards' locks off one cache line
}

// memEntry is one counter. Windows use win, count and prev; TokenBucket
// uses tokens and win as the time (ms) it was last refilled.
type memEntry struct {
	win     int64
	count   uint64
	prev    uint64
	tokens  float64
	expires int64 // ms
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore(opts MemoryOptions) Store {
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Second
	}
	s := &MemoryStore{seed: maphash.MakeSeed(), sweep: opts.SweepInterval.Milliseconds()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*memEntry)
	}
	return s
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, reqs []Request, out []Result) {
	for i := range reqs {
		out[i] = s.take(&reqs[i])
	}
}

func (s *MemoryStore) take(req *Request) Result {
	l := req.Limit
	w := l.Window.Milliseconds()
	now := req.Now.UnixMilli()
	sh := &s.shards[maphash.Bytes(s.seed, req.Key)%memoryShards]

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now >= sh.nextSweep {
		sh.dropExpired(now)
		sh.nextSweep = now + s.sweep
	}
	sh.buf = appendStoreSuffix(append(sh.buf[:0], req.Key...), l)
	e := sh.m[string(sh.buf)]
	if e == nil {
		e = &memEntry{}
		sh.m[string(sh.buf)] = e
	}
	if e.expires <= now {
		*e = memEntry{win: windowIndex(now, w)}
		if l.Algorithm == TokenBucket {
			e.win, e.tokens = now, float64(l.capacity())
		}
	}

	var r Result
	switch l.Algorithm {
	case TokenBucket:
		tokens := refill(e.tokens, e.win, now, l, w)
		allowed := tokens >= float64(req.Cost)
		if allowed {
			tokens -= float64(req.Cost)
			e.tokens = tokens
			e.win = max(e.win, now)
			e.expires = now + ttlMillis(l, now, w, tokens)
		}
		r = bucketOutcome(l, w, tokens, allowed, req.Cost)
	case SlidingWindow:
		e.roll(windowIndex(now, w))
		rest := w - (now - windowIndex(now, w)*w)
		allowed := slidingAdmits(slidingEstimate(e.prev, e.count, rest, w), req.Cost, l.Requests)
		if allowed {
			e.count += req.Cost
			e.expires = max(e.expires, now+ttlMillis(l, now, w, 0))
		}
		r = slidingOutcome(l, now, w, e.count, e.prev, allowed, req.Cost)
	default:
		e.roll(windowIndex(now, w))
		allowed := req.Cost <= l.Requests && e.count <= l.Requests-req.Cost
		if allowed {
			e.count += req.Cost
			e.expires = max(e.expires, now+ttlMillis(l, now, w, 0))
		}
		r = fixedOutcome(l, now, w, e.count, allowed)
	}
	return r
}

// roll moves a window counter to window idx. A clock that went back keeps
// the newer window.
func (e *memEntry) roll(idx int64) {
	switch {
	case idx == e.win:
	case idx == e.win+1:
		e.win, e.prev, e.count = idx, e.count, 0
	case idx > e.win:
		e.win, e.prev, e.count = idx, 0, 0
	}
}

func (sh *memShard) dropExpired(now int64) {
	for k, e := range sh.m {
		if e.expires <= now {
			delete(sh.m, k)
		}
	}
}

// Len returns how many counters the store holds.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Ping implements Store; memory always answers.
func (s *MemoryStore) Ping(context.Context) error { return nil }

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }

// appendStoreSuffix appends what distinguishes counters of different rule
// shapes under one key: the algorithm and the window.
func appendStoreSuffix(b []byte, l Limit) []byte {
	switch l.Algorithm {
	case SlidingWindow:
		b = append(b, ":s"...)
	case TokenBucket:
		b = append(b, ":t"...)
	default:
		b = append(b, ":f"...)
	}
	return strconv.AppendInt(b, l.Window.Milliseconds(), 10)
}
