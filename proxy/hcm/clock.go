package hcm

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/1.1 fast path reads the clock for what needs its precision (a
// request's start and duration) and takes the rest, the Date field and the
// upkeep of idle deadlines, from a coarse clock: a goroutine that wakes at
// each second stores the time, and reading it is an atomic load.

// coarseTime is the time at a tick of the coarse clock.
type coarseTime struct {
	mono time.Duration // since clockBase, on the monotonic clock
	date []byte        // "Date: <time>\r\n"
}

var (
	clockBase  = time.Now()
	clockOnce  sync.Once
	coarseTick atomic.Pointer[coarseTime]
)

// coarseNow returns the time of the last tick: at most about a second old.
func coarseNow() *coarseTime {
	clockOnce.Do(startCoarseClock)
	return coarseTick.Load()
}

func startCoarseClock() {
	now := tickCoarse()
	go func() {
		for {
			// Just past the next second, so the Date field turns with it.
			time.Sleep(now.Truncate(time.Second).Add(time.Second + time.Millisecond).Sub(now))
			now = tickCoarse()
		}
	}()
}

func tickCoarse() time.Time {
	now := time.Now()
	coarseTick.Store(&coarseTime{
		mono: now.Sub(clockBase),
		date: []byte("Date: " + now.UTC().Format(http.TimeFormat) + "\r\n"),
	})
	return now
}

// dateLine returns "Date: <now>\r\n" (to the second).
func dateLine() []byte { return coarseNow().date }
