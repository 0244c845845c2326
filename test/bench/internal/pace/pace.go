// Package pace holds what the benchmark programs share to load a service
// at a fixed rate and to account for the CPU it takes: a ticker that hands
// out due times without Go's timer slack, nearest rank percentiles, CPU
// pinning of a whole process (to keep a measured process off the load
// generator's CPU), and the CPU time a process has used.
package pace

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Tick is one call handed out by Schedule: its index in the run and when
// it is due.
type Tick struct {
	At time.Time
	I  int
}

// Schedule hands out total due times, interval apart from start, on due,
// and returns how late each was handed out. Go's own timers wake up to a
// millisecond late on Linux when the process is idle (the netpoller then
// sleeps in whole milliseconds), which would add up to a millisecond of the
// generator's own delay to every latency. So Schedule waits on a periodic
// timerfd through the netpoller instead: the kernel's timer makes the
// descriptor readable on time, and its count says how many calls came due
// since the last read, which are all handed out at once. Latencies measured
// from Tick.At count the time a call waited for a free worker, so a stall
// is not hidden (no coordinated omission).
func Schedule(start time.Time, interval time.Duration, total int, due chan<- Tick) []time.Duration {
	late := make([]time.Duration, 0, total)
	emit := func(i int) {
		at := start.Add(time.Duration(i) * interval)
		late = append(late, time.Since(at))
		due <- Tick{At: at, I: i}
	}
	tf, err := newTimer(time.Until(start), interval)
	if err != nil {
		// No timerfd: Go's own timer, with its slack shown in the lateness.
		for i := 0; i < total; i++ {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			emit(i)
		}
		return late
	}
	defer tf.Close()
	var buf [8]byte
	for i := 0; i < total; {
		if _, err := io.ReadFull(tf, buf[:]); err != nil {
			for ; i < total; i++ { // cannot happen with a timerfd; finish on time anyway
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				emit(i)
			}
			break
		}
		// The count of expirations since the last read; the clock decides
		// which calls are due, so a count lost to a late read is not a
		// call lost.
		_ = binary.NativeEndian.Uint64(buf[:])
		now := time.Now()
		for ; i < total && !start.Add(time.Duration(i)*interval).After(now); i++ {
			emit(i)
		}
	}
	return late
}

// newTimer is a periodic timerfd, first expiring after first (at once when
// it is not positive), read through the netpoller.
func newTimer(first, interval time.Duration) (*os.File, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	first = max(first, time.Microsecond)
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(first)), Interval: unix.NsecToTimespec(int64(interval))}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "timerfd"), nil
}

// Percentile of sorted samples, nearest rank; 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Pin sets the CPU affinity of every thread of this process to cpus (all
// of the machine's CPUs when cpus is empty). Threads the Go runtime starts
// later inherit the mask of the thread that starts them, so the whole
// process stays on cpus.
func Pin(cpus ...int) error {
	var set unix.CPUSet
	if len(cpus) == 0 {
		for c := 0; c < runtime.NumCPU(); c++ {
			set.Set(c)
		}
	}
	for _, c := range cpus {
		if c < 0 || c >= runtime.NumCPU() {
			return fmt.Errorf("pinning to CPU %d: this machine has CPUs 0-%d", c, runtime.NumCPU()-1)
		}
		set.Set(c)
	}
	// Threads can start while the list is read; a second pass catches them.
	for pass := 0; pass < 2; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pinning: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pinning thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
