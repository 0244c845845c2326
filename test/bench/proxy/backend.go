package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// backendBody is what the backend answers to every request: a tiny fixed
// JSON document.
var backendBody = []byte(`{"service":"bench","ok":true}` + "\n")

// serveBackend is the benchmark's upstream: the smallest fast net/http
// server (fixed body, Content-Length set, keep-alive on). It runs in a child
// process of its own (the harness re-executed with -backend) so the load
// generator's goroutines and garbage never share its scheduler.
func serveBackend(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("backend: listening on %s: %w", addr, err)
	}
	length := strconv.Itoa(len(backendBody))
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		hdr["Content-Length"] = []string{length}
		_, _ = w.Write(backendBody)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "backend serving on %s\n", lis.Addr())
	if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("backend: %w", err)
	}
	return nil
}
