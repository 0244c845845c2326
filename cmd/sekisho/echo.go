package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/sekisho/sekisho/internal/echo"
)

func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("echo", stderr)
	listen := fs.String("listen", "127.0.0.1:9001", "address to serve on")
	name := fs.String("name", "echo", "backend name, returned in every answer")
	if err := parse(fs, args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	fmt.Fprintf(stderr, "echo backend %s serving on %s\n", *name, lis.Addr())
	return echo.Serve(ctx, lis, *name)
}
