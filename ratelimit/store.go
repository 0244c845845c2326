package ratelimit

import (
	"context"
	"errors"
	"math"
	"time"
)

// Store keeps the counters and takes the decisions. Every Store implements
// the three algorithms with the same semantics (see Algorithm), with time in
// whole milliseconds.
type Store interface {
	// Take decides every request and writes the outcome of reqs[i] to
	// out[i] (len(out) >= len(reqs)). A request the store could not decide
	// has out[i].Err set. Each request is decided atomically on its own;
	// the requests of one call are not a transaction.
	Take(ctx context.Context, reqs []Request, out []Result)
	// Ping reports whether the store can answer.
	Ping(ctx context.Context) error
	// Close releases the store's connections and goroutines.
	Close() error
}

// Request asks a Store for one decision.
type Request struct {
	// Key is the counter key (see AppendKey); the store adds the algorithm
	// and the window to it, so rules of different shapes never share state.
	Key   []byte
	Limit Limit
	Cost  uint64
	Now   time.Time
}

// Result is a Store's decision about one Request.
type Result struct {
	Allowed bool
	// Remaining is how many requests of cost 1 would still be admitted now.
	Remaining uint64
	// ResetAfter is the time until the current window ends (FixedWindow,
	// SlidingWindow) or until the bucket is full again (TokenBucket).
	ResetAfter time.Duration
	// RetryAfter, when denied, is the time until a request of the same cost
	// could be admitted if nothing else arrived.
	RetryAfter time.Duration
	// Err is set when the store could not decide.
	Err error
}

// ErrStoreUnavailable is returned (wrapped) by a store that is failing fast
// because its backend did not answer recently.
var ErrStoreUnavailable = errors.New("rate-limit store unavailable")

// grace is how long counters outlive the time they are needed for, so that
// replicas whose clocks differ a little still find them.
const grace = 1000 // ms

// The shared arithmetic below is what both stores compute; the Redis scripts
// repeat it operation for operation (IEEE doubles, same order), so a
// sequence of requests gets the same answers from either store.

func windowIndex(now, w int64) int64 {
	if now >= 0 {
		return now / w
	}
	return (now - w + 1) / w
}

// fixedOutcome describes a FixedWindow counter that holds count after the
// request.
func fixedOutcome(l Limit, now, w int64, count uint64, allowed bool) Result {
	reset := millis((windowIndex(now, w)+1)*w - now)
	r := Result{Allowed: allowed, ResetAfter: reset}
	if count < l.Requests {
		r.Remaining = l.Requests - count
	}
	if !allowed {
		r.RetryAfter = reset
	}
	return r
}

// slidingEstimate is the SlidingWindow count: the previous window's count
// weighted by the part of the current window still to run, plus the current
// window's count.
func slidingEstimate(prev, cur uint64, rest, w int64) float64 {
	return float64(prev)*float64(rest)/float64(w) + float64(cur)
}

func slidingAdmits(est float64, cost, limit uint64) bool {
	return est+float64(cost) <= float64(limit)
}

// slidingOutcome describes a SlidingWindow counter that holds cur and prev
// after the request.
func slidingOutcome(l Limit, now, w int64, cur, prev uint64, allowed bool, cost uint64) Result {
	elapsed := now - windowIndex(now, w)*w
	rest := w - elapsed
	est := slidingEstimate(prev, cur, rest, w)
	lim := float64(l.Requests)
	r := Result{Allowed: allowed, ResetAfter: millis(rest)}
	if est < lim {
		r.Remaining = uint64(lim - est)
	}
	if allowed {
		return r
	}
	c, fw := float64(cost), float64(w)
	switch {
	case float64(cur)+c <= lim && prev > 0:
		// Fits in this window once enough of the previous one has slid out.
		t := fw - (lim-float64(cur)-c)*fw/float64(prev)
		r.RetryAfter = ceilMillis(t - float64(elapsed))
	case c > lim:
		r.RetryAfter = r.ResetAfter // never fits; report the window's end
	default:
		// Next window, where this window's count becomes the previous one.
		var t float64
		if cur > 0 {
			t = max(0, fw-(lim-c)*fw/float64(cur))
		}
		r.RetryAfter = r.ResetAfter + ceilMillis(t)
	}
	if r.RetryAfter <= 0 {
		r.RetryAfter = time.Millisecond
	}
	return r
}

// refill is the TokenBucket's content at now, last refilled at last.
func refill(tokens float64, last, now int64, l Limit, w int64) float64 {
	if now > last {
		tokens = tokens + float64(now-last)*float64(l.Requests)/float64(w)
	}
	return min(tokens, float64(l.capacity()))
}

// bucketOutcome describes a TokenBucket that holds tokens after the request.
func bucketOutcome(l Limit, w int64, tokens float64, allowed bool, cost uint64) Result {
	capacity := float64(l.capacity())
	perToken := float64(w) / float64(l.Requests) // ms
	r := Result{Allowed: allowed, ResetAfter: ceilMillis((capacity - tokens) * perToken)}
	if tokens > 0 {
		r.Remaining = uint64(math.Floor(tokens))
	}
	if !allowed {
		if c := float64(cost); c <= capacity {
			r.RetryAfter = ceilMillis((c - tokens) * perToken)
		} else {
			r.RetryAfter = r.ResetAfter
		}
		if r.RetryAfter <= 0 {
			r.RetryAfter = time.Millisecond
		}
	}
	return r
}

func millis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

func ceilMillis(ms float64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(ms)) * time.Millisecond
}

// ttlMillis is how long a counter must be kept after a request at now.
func ttlMillis(l Limit, now, w int64, tokensAfter float64) int64 {
	switch l.Algorithm {
	case SlidingWindow:
		// The current window, then the next one that weighs it as previous.
		return (windowIndex(now, w)+2)*w - now + grace
	case TokenBucket:
		// Until the bucket is full again: then it is the same as no bucket.
		full := (float64(l.capacity()) - tokensAfter) * float64(w) / float64(l.Requests)
		return int64(math.Ceil(full)) + grace
	default:
		return (windowIndex(now, w)+1)*w - now + grace
	}
}
