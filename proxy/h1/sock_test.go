package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if string(buf[:n]) == "quit" {
					return
				}
				_, _ = c.Write([]byte(strings.ToUpper(string(buf[:n]))))
			}
			if err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := NewSock(c)
	if s == nil {
		t.Skip("no raw socket I/O on this platform or build")
	}
	p := make([]byte, 64)
	if n, err := s.WriteThenRead([]byte("ping"), p); err != nil || string(p[:n]) != "PING" {
		t.Fatalf("WriteThenRead: %q %v", p[:n], err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadAtLeast(s, p, 4); err != nil || string(p[:n]) != "PONG" {
		t.Fatalf("Read: %q %v", p[:n], err)
	}
	// A read that times out.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	// The peer closes: EOF.
	if n, err := s.WriteThenRead([]byte("quit"), p); err != io.EOF || n != 0 {
		t.Fatalf("after the peer closed: %d %v", n, err)
	}
}
