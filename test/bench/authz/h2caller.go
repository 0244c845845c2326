package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// h2Caller calls Authorization/Check over HTTP/2 connections of its own
// making, with the request's frames encoded once before the run: a call is
// one write of a HEADERS and a DATA frame, and one reader per connection
// matches answers to calls. It costs the caller a small part of what
// grpc-go's client does, so that at a fixed rate on one core the figures
// are the service's and not the generator's.
type h2Caller struct {
	conns []*h2Conn
	next  atomic.Uint64
}

func newH2Caller(addr string, n int, r *authv3.CheckRequest) (*h2Caller, error) {
	msg, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	c := &h2Caller{}
	for i := 0; i < n; i++ {
		hc, err := dialH2(addr, msg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, hc)
	}
	return c, nil
}

func (c *h2Caller) close() {
	for _, hc := range c.conns {
		hc.close(errors.New("closed"))
	}
}

// call returns a function making one Check; each caller (worker) gets its
// own connection, round robin.
func (c *h2Caller) call() func() func(context.Context) error {
	return func() func(context.Context) error {
		hc := c.conns[c.next.Add(1)%uint64(len(c.conns))]
		done := make(chan error, 1)
		return func(ctx context.Context) error {
			if err := hc.send(done); err != nil {
				return err
			}
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// h2Conn is one connection: its request template and the calls in flight.
type h2Conn struct {
	nc    net.Conn
	tpl   []byte // HEADERS + DATA of one call; stream IDs patched per call
	ids   [2]int // offsets of the two frames' stream IDs in tpl
	first []byte // the first call's header block (tpl's names the table)

	mu      sync.Mutex
	nextID  uint32
	waiting map[uint32]chan<- error
	err     error // once set, the connection is done
	wbuf    []byte
}

func dialH2(addr string, msg []byte) (*h2Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	hc := &h2Conn{nc: nc, nextID: 1, waiting: map[uint32]chan<- error{}}

	// The header block, as grpc-go's client sends it: the first call's
	// literals go into the server's decoder table, and every later call
	// names them by index.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	var first []byte
	for pass := 0; pass < 2; pass++ {
		hb.Reset()
		for _, f := range [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", "/envoy.service.auth.v3.Authorization/Check"},
			{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
		} {
			if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				nc.Close()
				return nil, err
			}
		}
		if pass == 0 {
			first = bytes.Clone(hb.Bytes())
		}
	}
	hc.first = first
	body := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
	copy(body[5:], msg)
	var tpl bytes.Buffer
	fr := http2.NewFramer(&tpl, nil)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		nc.Close()
		return nil, err
	}
	hc.ids[0] = 5
	hc.ids[1] = tpl.Len() + 5
	if err := fr.WriteData(1, true, body); err != nil {
		nc.Close()
		return nil, err
	}
	hc.tpl = tpl.Bytes()

	// Preface, our settings (a large window: answers never wait for one),
	// and the connection's window.
	var pre bytes.Buffer
	pre.WriteString(http2.ClientPreface)
	pf := http2.NewFramer(&pre, nil)
	_ = pf.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	_ = pf.WriteWindowUpdate(0, 1<<20)
	if _, err := nc.Write(pre.Bytes()); err != nil {
		nc.Close()
		return nil, err
	}
	go hc.readLoop()
	return hc, nil
}

// send starts one call; done gets its outcome.
func (hc *h2Conn) send(done chan<- error) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.err != nil {
		return hc.err
	}
	id := hc.nextID
	hc.nextID += 2
	if hc.first != nil {
		// The first call fills the server's table.
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hc.first, EndHeaders: true})
		hc.wbuf = append(append(hc.wbuf[:0], b.Bytes()...), hc.tpl[hc.ids[1]-5:]...)
		binary.BigEndian.PutUint32(hc.wbuf[b.Len()+5:], id)
		hc.first = nil
	} else {
		hc.wbuf = append(hc.wbuf[:0], hc.tpl...)
		for _, off := range hc.ids {
			binary.BigEndian.PutUint32(hc.wbuf[off:], id)
		}
	}
	hc.waiting[id] = done
	if _, err := hc.nc.Write(hc.wbuf); err != nil {
		delete(hc.waiting, id)
		return err
	}
	return nil
}

// finish ends call id with err.
func (hc *h2Conn) finish(id uint32, err error) {
	hc.mu.Lock()
	done, ok := hc.waiting[id]
	delete(hc.waiting, id)
	hc.mu.Unlock()
	if ok {
		done <- err
	}
}

// close fails the calls in flight and every later one.
func (hc *h2Conn) close(err error) {
	hc.mu.Lock()
	if hc.err == nil {
		hc.err = err
	}
	w := hc.waiting
	hc.waiting = map[uint32]chan<- error{}
	hc.mu.Unlock()
	hc.nc.Close()
	for _, done := range w {
		done <- err
	}
}

// write sends a control frame (settings or ping acknowledgement, window
// update) under the connection's lock.
func (hc *h2Conn) write(f func(*http2.Framer) error) error {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	var b bytes.Buffer
	if err := f(http2.NewFramer(&b, nil)); err != nil {
		return err
	}
	_, err := hc.nc.Write(b.Bytes())
	return err
}

// readLoop reads the server's frames: an answer's DATA frame holds the
// CheckResponse, its trailers the grpc-status.
func (hc *h2Conn) readLoop() {
	fr := http2.NewFramer(nil, bufio.NewReaderSize(hc.nc, 64<<10))
	fr.SetReuseFrames()
	var status string
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "grpc-status" {
			status = f.Value
		}
	})
	body := map[uint32][]byte{}
	unacked := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			hc.close(fmt.Errorf("reading: %w", err))
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = hc.write(func(w *http2.Framer) error { return w.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = hc.write(func(w *http2.Framer) error { return w.WritePing(true, f.Data) })
			}
		case *http2.DataFrame:
			id := f.StreamID
			body[id] = append(body[id], f.Data()...)
			if unacked += len(f.Data()); unacked >= 256<<10 {
				n := uint32(unacked)
				unacked = 0
				err = hc.write(func(w *http2.Framer) error { return w.WriteWindowUpdate(0, n) })
			}
			if f.StreamEnded() {
				hc.finish(id, errors.New("the answer ended without trailers"))
				delete(body, id)
			}
		case *http2.HeadersFrame:
			status = ""
			if _, derr := dec.Write(f.HeaderBlockFragment()); derr != nil {
				hc.close(fmt.Errorf("decoding headers: %w", derr))
				return
			}
			if !f.HeadersEnded() {
				hc.close(errors.New("CONTINUATION frames are not expected"))
				return
			}
			if f.StreamEnded() {
				id := f.StreamID
				hc.finish(id, answer(status, body[id]))
				delete(body, id)
			}
		case *http2.RSTStreamFrame:
			hc.finish(f.StreamID, fmt.Errorf("stream reset: %v", f.ErrCode))
			delete(body, f.StreamID)
		case *http2.GoAwayFrame:
			hc.close(fmt.Errorf("goaway: %v", f.ErrCode))
			return
		}
		if err != nil {
			hc.close(err)
			return
		}
	}
}

// answer checks one call's outcome: grpc-status 0 and an allowing
// CheckResponse.
func answer(status string, body []byte) error {
	if status != "0" {
		if status == "" {
			return errors.New("no grpc-status")
		}
		return fmt.Errorf("grpc-status %s", strconv.Quote(status))
	}
	if len(body) < 5 {
		return errors.New("no message in the answer")
	}
	var resp authv3.CheckResponse
	if err := proto.Unmarshal(body[5:], &resp); err != nil {
		return err
	}
	return checkOK(&resp)
}
