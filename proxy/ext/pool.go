package ext

import (
	"sync"
	"time"
)

// Pool holds the state that outlives a configuration, shared by key: the
// gRPC channel to a cluster, the token bucket of a route. The runtime owns
// it. Compiling a configuration takes references on a Lease; once the
// configuration is swapped in, the previous one's leases are released, so
// that what both use carries over and what only the old one used goes
// (make before break). An entry leaves the pool when no lease holds it.
type Pool struct {
	grace time.Duration

	mu       sync.Mutex
	entries  map[string]*poolEntry
	retiring map[*poolEntry]*time.Timer
}

type poolEntry struct {
	value any
	close func() // nil: nothing to close
	refs  int
	done  bool // closed by Pool.Close
}

// NewPool returns an empty pool. grace is how long an entry that a
// configuration which served requests stops using stays open for the
// requests still running (see Lease.Release).
func NewPool(grace time.Duration) *Pool {
	return &Pool{grace: grace, entries: map[string]*poolEntry{}, retiring: map[*poolEntry]*time.Timer{}}
}

// Lease is the references one configuration (or one route table of it)
// holds on a Pool. It holds at most one reference per key.
type Lease struct {
	pool *Pool
	held map[string]*poolEntry
}

// NewLease returns a lease that holds nothing yet.
func (p *Pool) NewLease() *Lease { return &Lease{pool: p, held: map[string]*poolEntry{}} }

// Acquire returns the value the pool shares under key, opening it when the
// pool has none: open returns the value and how to close it (nil: nothing
// to close).
func Acquire[T any](l *Lease, key string, open func() (T, func(), error)) (T, error) {
	if e := l.held[key]; e != nil {
		return e.value.(T), nil
	}
	p := l.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if e == nil {
		v, closeFn, err := open()
		if err != nil {
			return v, err
		}
		e = &poolEntry{value: v, close: closeFn}
		p.entries[key] = e
	}
	e.refs++
	l.held[key] = e
	return e.value.(T), nil
}

// Release drops the lease's references. An entry no lease holds any more
// leaves the pool (a later Acquire opens a new one) and is closed: after
// the pool's grace when served is true (the configuration served requests,
// some may still run), at once otherwise (a configuration never applied).
func (l *Lease) Release(served bool) {
	if l == nil {
		return
	}
	p := l.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, e := range l.held {
		delete(l.held, key)
		if e.refs--; e.refs > 0 {
			continue
		}
		if p.entries[key] == e {
			delete(p.entries, key)
		}
		switch {
		case e.close == nil || e.done:
		case served:
			p.retiring[e] = time.AfterFunc(p.grace, func() {
				p.mu.Lock()
				_, ok := p.retiring[e]
				delete(p.retiring, e)
				p.mu.Unlock()
				if ok {
					e.close()
				}
			})
		default:
			e.close()
		}
	}
}

// Close closes every entry, those retiring included.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, e := range p.entries {
		delete(p.entries, key)
		e.done = true
		if e.close != nil {
			e.close()
		}
	}
	for e, t := range p.retiring {
		delete(p.retiring, e)
		t.Stop()
		e.close()
	}
}
