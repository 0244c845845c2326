//go:build !linux || race

package h1

import "net"

// Sock is only implemented on Linux, and not under the race detector (which
// learns of the ordering that socket I/O gives only through net.Conn's own
// calls); elsewhere NewSock returns nil and the connection is used as it is.
type Sock struct{}

// NewSock returns nil: see the Linux version.
func NewSock(net.Conn) *Sock { return nil }

func (*Sock) Read([]byte) (int, error)  { panic("h1.Sock: not implemented") }
func (*Sock) Write([]byte) (int, error) { panic("h1.Sock: not implemented") }

// WriteThenRead is not implemented.
func (*Sock) WriteThenRead(_, _ []byte) (int, error) { panic("h1.Sock: not implemented") }
