package ext

import (
	"testing"
	"time"
)

// TestPoolCarriesOverAndCloses: what two leases share survives the release
// of one; an entry no lease holds leaves the pool, closed at once for a
// lease never applied and after the grace for one that served.
func TestPoolCarriesOverAndCloses(t *testing.T) {
	p := NewPool(20 * time.Millisecond)
	closed := map[string]chan struct{}{}
	open := func(key string) func() (*string, func(), error) {
		return func() (*string, func(), error) {
			v := key
			ch := make(chan struct{})
			closed[key] = ch
			return &v, func() { close(ch) }, nil
		}
	}
	isClosed := func(key string) bool {
		select {
		case <-closed[key]:
			return true
		default:
			return false
		}
	}
	old := p.NewLease()
	a1, _ := Acquire(old, "a", open("a"))
	b1, _ := Acquire(old, "b", open("b"))

	next := p.NewLease()
	a2, _ := Acquire(next, "a", open("a"))
	if a2 != a1 {
		t.Fatal("the next lease did not get the shared entry")
	}
	c, _ := Acquire(next, "c", open("c"))
	if c2, _ := Acquire(next, "c", open("c")); c2 != c {
		t.Fatal("a lease got two entries for one key")
	}
	next.Release(false) // never applied: c closes at once, a stays
	if !isClosed("c") || isClosed("a") {
		t.Fatalf("after the release of an unapplied lease: c closed %v, a closed %v", isClosed("c"), isClosed("a"))
	}

	next = p.NewLease()
	Acquire(next, "a", open("a"))
	old.Release(true) // served: b closes after the grace
	if isClosed("b") || isClosed("a") {
		t.Fatal("b closed before the grace, or a closed though held")
	}
	select {
	case <-closed["b"]:
	case <-time.After(5 * time.Second):
		t.Fatal("b not closed after the grace")
	}
	if b2, _ := Acquire(next, "b", open("b")); b2 == b1 {
		t.Fatal("a released entry came back")
	}
	p.Close()
	if !isClosed("a") {
		t.Fatal("Close left an entry open")
	}
	next.Release(true)
}
