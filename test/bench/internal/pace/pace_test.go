package pace

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestScheduleHandsOutEveryCallInOrderAndOnTime(t *testing.T) {
	const total = 300
	interval := 200 * time.Microsecond
	due := make(chan Tick, total)
	start := time.Now().Add(2 * time.Millisecond)
	late := Schedule(start, interval, total, due)
	close(due)
	if len(late) != total {
		t.Fatalf("%d lateness samples, want %d", len(late), total)
	}
	i := 0
	for tk := range due {
		if tk.I != i {
			t.Fatalf("tick %d has index %d", i, tk.I)
		}
		if want := start.Add(time.Duration(i) * interval); !tk.At.Equal(want) {
			t.Fatalf("tick %d due at %v, want %v", i, tk.At, want)
		}
		i++
	}
	if i != total {
		t.Fatalf("handed out %d ticks, want %d", i, total)
	}
	for i, l := range late {
		if l < 0 {
			t.Fatalf("tick %d handed out %v before it was due", i, -l)
		}
	}
	// The run cannot end before its last call is due.
	if end := start.Add((total - 1) * interval); time.Now().Before(end) {
		t.Fatalf("Schedule returned before the last call was due")
	}
}

func TestPinAndUnpin(t *testing.T) {
	if err := Pin(0); err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(0) {
		t.Fatalf("after Pin(0) this thread may run on %d CPUs", set.Count())
	}
	if err := Pin(); err != nil {
		t.Fatal(err)
	}
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != runtime.NumCPU() {
		t.Fatalf("after Pin() this thread may run on %d CPUs, want %d", set.Count(), runtime.NumCPU())
	}
	if err := Pin(runtime.NumCPU()); err == nil {
		t.Fatal("pinning to a CPU the machine does not have succeeded")
	}
}

func TestPercentile(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}} {
		if got := Percentile(s, c.q); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("Percentile of no samples is not 0")
	}
}
