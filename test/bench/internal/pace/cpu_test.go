package pace

import (
	"os"
	"testing"
	"time"
)

func TestCPUTimesGrowWithWork(t *testing.T) {
	self0, proc0 := SelfCPU(), ProcCPU(os.Getpid())
	x := 0
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	_ = x
	if d := SelfCPU() - self0; d < 50*time.Millisecond {
		t.Errorf("SelfCPU grew by %v over 100ms of busy work", d)
	}
	// /proc counts in ticks of 10ms.
	if d := ProcCPU(os.Getpid()) - proc0; d < 50*time.Millisecond {
		t.Errorf("ProcCPU grew by %v over 100ms of busy work", d)
	}
	if got := ProcCPU(-1); got != 0 {
		t.Errorf("ProcCPU of no process = %v, want 0", got)
	}
}
