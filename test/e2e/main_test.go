// Package e2e runs the real sekisho binary as separate processes on
// 127.0.0.1 and talks to it the way proxies and users do.
package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sekishoBin is the binary built once for the whole package.
var sekishoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sekisho-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sekishoBin = filepath.Join(dir, "sekisho")
	build := exec.Command("go", "build", "-o", sekishoBin, "github.com/sekisho/sekisho/cmd/sekisho")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sekisho:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
