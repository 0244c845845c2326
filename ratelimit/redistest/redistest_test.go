package redistest

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	r := Start(t)
	if err := r.Ping(time.Second); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if _, err := Do(r.Addr(), time.Second, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := Do(r.Addr(), time.Second, "CONFIG", "GET", "save"); err != nil || got != "save\n" {
		t.Errorf("CONFIG GET save = %q %v, want persistence off", got, err)
	}
	pid := r.PID()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("redis-server %d is in process group %d (%v), want its own", pid, pgid, err)
	}

	r.Stop()
	if err := r.Ping(200 * time.Millisecond); err == nil {
		t.Fatal("PING answered after Stop")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still exists after Stop", pid)
	}
	r.Stop() // again: nothing to do

	port := r.Port()
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if r.Port() != port || r.Ping(time.Second) != nil {
		t.Fatalf("after Restart: port %d (was %d), ping %v", r.Port(), port, r.Ping(time.Second))
	}
	if got, err := Do(r.Addr(), time.Second, "EXISTS", "k"); err != nil || got != "0" {
		t.Errorf("EXISTS k after Restart = %q %v, want an empty server", got, err)
	}

	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(200 * time.Millisecond); err == nil {
		t.Error("PING answered while paused")
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(time.Second); err != nil {
		t.Errorf("PING after Resume: %v", err)
	}
}

func TestMissingBinarySaysHowToInstall(t *testing.T) {
	saved := Binary
	Binary = "/nonexistent/redis-server"
	defer func() { Binary = saved }()
	_, err := Launch(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y redis-server") {
		t.Errorf("Launch without the binary: %v", err)
	}
}
