package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout is how long a child gets to exit after SIGTERM before it is
// killed, with its process group.
const stopTimeout = 5 * time.Second

// child is a process the harness started. Each child leads a process group
// of its own, so nothing it forks outlives it and a ^C at the terminal
// reaches the harness alone, which then stops every child in order.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding the child's stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// children is every child still running; stopAll stops them.
var children struct {
	sync.Mutex
	list []*child
}

// startChild starts name with args, its output going to logPath.
func startChild(name, logPath string, argv ...string) (*child, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.done)
	}()
	children.Lock()
	children.list = append(children.list, c)
	children.Unlock()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL to the child's process group if it has
// not exited within stopTimeout.
func (c *child) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		fmt.Fprintf(os.Stderr, "%s (pid %d) did not stop within %s; killing it\n", c.name, c.pid(), stopTimeout)
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	children.Lock()
	for i, o := range children.list {
		if o == c {
			children.list = append(children.list[:i], children.list[i+1:]...)
			break
		}
	}
	children.Unlock()
}

// stopAll stops every running child, the last started first.
func stopAll() {
	children.Lock()
	list := append([]*child(nil), children.list...)
	children.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	b = bytes.TrimSpace(b)
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// failed wraps err with what the child said, and whether it exited.
func (c *child) failed(err error) error {
	state := "still running"
	if c.exited() {
		state = fmt.Sprintf("exited: %v", c.err)
	}
	return fmt.Errorf("%s (%s): %w\n--- end of its log (%s) ---\n%s", c.name, state, err, c.log, c.logTail())
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeAddr is "127.0.0.1:PORT" with a free port.
func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// waitHTTP polls url until it answers 200 or the timeout passes. It gives
// up early when the child exits.
func waitHTTP(c *child, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		if c != nil && c.exited() {
			return fmt.Errorf("waiting for 200 from %s: the process exited (last answer: %s)", url, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s (last answer: %s)", url, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vmRSS reads VmRSS and VmHWM of pid from /proc, in MiB.
func vmRSS(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the status of pid %d: %w", pid, err)
	}
	var gotRSS, gotHWM bool
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, gotRSS = kb/1024, true
		case "VmHWM:":
			hwm, gotHWM = kb/1024, true
		}
	}
	if !gotRSS || !gotHWM {
		return 0, 0, errors.New("no VmRSS/VmHWM in /proc status")
	}
	return rss, hwm, nil
}
