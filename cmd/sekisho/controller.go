package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/controlplane"
	"github.com/sekisho/sekisho/xds/server"
)

func runController(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("controller", stderr)
	dir := dirFlag(fs)
	xdsAddr := fs.String("xds-address", "127.0.0.1:18000", "address to serve xDS (ADS over gRPC) on")
	adminAddr := fs.String("admin-address", "127.0.0.1:18001", "address to serve /healthz, /readyz, /metrics and /status on")
	gatewayAddr := fs.String("gateway-address", "127.0.0.1", "address reported in Gateway status when a Gateway sets none")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: -f DIR is required (the Kubernetes provider is not built yet)", errUsage)
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}

	adm := admin.New(nil)
	srv := server.New(server.Options{Logger: log, Registerer: adm.Registry})
	pipe := controlplane.New(srv, controlplane.Options{
		Translate:  gwtranslate.Options{DefaultAddresses: []string{*gatewayAddr}},
		Logger:     log,
		Registerer: adm.Registry,
	})
	adm.SetReady(func() error {
		if !pipe.Ready() {
			return errors.New("no configuration applied yet")
		}
		return nil
	})
	adm.Mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		if r := pipe.Result(); r != nil {
			r.Status.WriteTable(w)
		}
	})

	xdsLis, err := net.Listen("tcp", *xdsAddr)
	if err != nil {
		return fmt.Errorf("listening for xDS: %w", err)
	}
	adminLis, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("listening for admin: %w", err)
	}
	log.Info("controller starting", "dir", *dir, "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	start := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	start("xds server", func() error { return srv.Serve(ctx, xdsLis) })
	start("admin server", func() error { return adm.Serve(ctx, adminLis) })
	start("file provider", func() error {
		w := &file.Watcher{Dir: *dir, Logger: log.With("component", "file-provider"), OnChange: func(res *resource.Resources, problems []resource.Problem) {
			// Apply logs what it could not do; the last good xDS keeps serving.
			_, _ = pipe.Apply(ctx, res, problems)
		}}
		return w.Run(ctx)
	})
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	log.Info("controller stopped")
	return errors.Join(errs...)
}
