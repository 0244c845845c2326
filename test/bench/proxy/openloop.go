package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sekisho/sekisho/test/bench/internal/pace"
)

// openLoopResult is what one fixed-rate run measured.
type openLoopResult struct {
	Scheduled int
	OK        int
	Failed    int // transport errors and answers other than 200
	FirstErr  string
	P50, P99  time.Duration
	Max       time.Duration
	Elapsed   time.Duration // first scheduled send to last answer
	LateP99   time.Duration // p99 of the generator's own lateness in handing out requests
}

// openLoop sends rate requests per second to addr for d, over a pool of
// conns keep-alive connections. Request i is due at start + i/rate whatever
// happened to earlier requests (a ticker hands out each request when it
// comes due), and its latency is measured from
// that due time, not from when a connection was free to send it: time spent
// waiting behind a slow answer counts, so a stall is not hidden (no
// coordinated omission).
func openLoop(addr string, rate int, d time.Duration, conns int) (openLoopResult, error) {
	return openLoopRequests(addr, rate, d, conns, [][]byte{olRequest(addr, "/")})
}

// olRequest is the open loop's GET of path, with extra header lines
// ("Name: value") after the usual ones.
func olRequest(addr, path string, headers ...string) []byte {
	b := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: sekisho-bench-openloop\r\nAccept: */*\r\n")
	for _, h := range headers {
		b = append(b, h...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// openLoopRequests is openLoop with the requests given: request i of the
// run sends reqs[i%len(reqs)] (each a whole HTTP/1.1 request, built before
// the run so that building it is not measured).
func openLoopRequests(addr string, rate int, d time.Duration, conns int, reqs [][]byte) (openLoopResult, error) {
	var res openLoopResult
	if rate <= 0 || d <= 0 || conns <= 0 {
		return res, fmt.Errorf("open loop: rate, duration and connections must be positive")
	}
	if len(reqs) == 0 {
		return res, fmt.Errorf("open loop: no request to send")
	}
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)

	pool := make([]*olConn, conns)
	for i := range pool {
		c, err := dialOL(addr)
		if err != nil {
			for _, p := range pool[:i] {
				p.conn.Close()
			}
			return res, fmt.Errorf("open loop: connecting to %s: %w", addr, err)
		}
		pool[i] = c
	}

	due := make(chan pace.Tick, total) // never blocks the scheduler
	type workerResult struct {
		lat      []time.Duration
		failed   int
		firstErr string
		last     time.Time
	}
	results := make([]workerResult, conns)
	var wg sync.WaitGroup
	for i := range pool {
		wg.Add(1)
		go func(w *workerResult, c *olConn) {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, total/conns+16)
			for t := range due {
				err := c.do(addr, reqs[t.I%len(reqs)])
				now := time.Now()
				w.last = now
				if err != nil {
					w.failed++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					continue
				}
				w.lat = append(w.lat, now.Sub(t.At))
			}
			if c.conn != nil {
				c.conn.Close()
			}
		}(&results[i], pool[i])
	}

	start := time.Now().Add(5 * time.Millisecond)
	lateness := pace.Schedule(start, interval, total, due)
	close(due)
	wg.Wait()

	var all []time.Duration
	var last time.Time
	for _, w := range results {
		all = append(all, w.lat...)
		res.Failed += w.failed
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	res.Scheduled = total
	slices.Sort(lateness)
	res.LateP99 = pace.Percentile(lateness, 0.99)
	res.OK = len(all)
	res.Elapsed = last.Sub(start)
	if len(all) == 0 {
		return res, fmt.Errorf("open loop: no request to %s succeeded (%d failed, first: %s)", addr, res.Failed, res.FirstErr)
	}
	slices.Sort(all)
	res.P50 = pace.Percentile(all, 0.50)
	res.P99 = pace.Percentile(all, 0.99)
	res.Max = all[len(all)-1]
	return res, nil
}

// olConn is one keep-alive connection of the pool. When a request fails the
// connection is replaced before the next one.
type olConn struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialOL(addr string) (*olConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &olConn{conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// do sends one request and reads its whole answer.
func (c *olConn) do(addr string, req []byte) error {
	if c.conn == nil {
		n, err := dialOL(addr)
		if err != nil {
			return fmt.Errorf("reconnecting: %w", err)
		}
		*c = *n
	}
	closeAfter, err := c.roundTrip(req)
	if err != nil || closeAfter {
		c.conn.Close()
		c.conn = nil
	}
	return err
}

// roundTrip sends req and reads the answer; closeAfter says the server
// will not keep the connection open.
func (c *olConn) roundTrip(req []byte) (closeAfter bool, err error) {
	if err := c.conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return false, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return false, fmt.Errorf("sending: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Close, fmt.Errorf("status %s", resp.Status)
	}
	return resp.Close, nil
}
