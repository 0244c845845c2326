package auth

import (
	"hash/maphash"
	"sync"
	"time"
)

// verifiedCache remembers the result of verifying a credential (a token or a
// session cookie), keyed by its exact text, for at most its remaining
// lifetime. It is bounded: a full shard drops expired entries, then an
// arbitrary one. Only successful verifications are kept, and every hit
// checks the expiry again, so the cache never extends a credential's life.
// A nil cache (size 0) keeps nothing.
type verifiedCache[V any] struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard[V]
	max    int // per shard
}

const cacheShards = 16

type cacheShard[V any] struct {
	mu sync.RWMutex
	m  map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v       V
	expires int64 // unix nanoseconds; the entry is unusable from then on
}

func newVerifiedCache[V any](size int) *verifiedCache[V] {
	if size <= 0 {
		return nil
	}
	per := size / cacheShards
	if per < 1 {
		per = 1
	}
	c := &verifiedCache[V]{seed: maphash.MakeSeed(), max: per}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry[V])
	}
	return c
}

func (c *verifiedCache[V]) shard(k string) *cacheShard[V] {
	return &c.shards[maphash.String(c.seed, k)%cacheShards]
}

// get returns the value for k if it has not expired at now.
func (c *verifiedCache[V]) get(k string, now time.Time) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
	sh := c.shard(k)
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok || now.UnixNano() >= e.expires {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put keeps v for k until expires.
func (c *verifiedCache[V]) put(k string, v V, expires, now time.Time) {
	if c == nil || !now.Before(expires) {
		return
	}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= c.max {
		n := now.UnixNano()
		for key, e := range sh.m {
			if n >= e.expires {
				delete(sh.m, key)
			}
		}
		for key := range sh.m {
			if len(sh.m) < c.max {
				break
			}
			delete(sh.m, key)
		}
	}
	sh.m[k] = cacheEntry[V]{v: v, expires: expires.UnixNano()}
}

// remove forgets k.
func (c *verifiedCache[V]) remove(k string) {
	if c == nil {
		return
	}
	sh := c.shard(k)
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
}

// len is the number of entries (for tests).
func (c *verifiedCache[V]) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
