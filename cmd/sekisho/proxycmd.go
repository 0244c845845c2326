package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/gatewayproxy"
)

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("proxy", stderr)
	xdsAddr := fs.String("xds", "127.0.0.1:18000", "the control plane's ADS address")
	node := fs.String("node", "", "this proxy's node id (default: the gateway)")
	gateway := fs.String("gateway", "", "the Gateway to serve, namespace/name (default: --node)")
	adminAddr := fs.String("admin-address", "127.0.0.1:19000", "address to serve /healthz, /readyz, /metrics, /config_dump and /clusters on")
	accessLog := fs.Bool("access-log", true, "write a JSON access log line per request to stdout")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *gateway == "" {
		*gateway = *node
	}
	if *gateway == "" {
		return fmt.Errorf("%w: --gateway or --node is required", errUsage)
	}
	log, err := newLogger(stderr, *logLevel, *logJSON)
	if err != nil {
		return err
	}
	adm := admin.New(nil)
	opts := gatewayproxy.Options{XDSAddress: *xdsAddr, Gateway: *gateway, NodeID: *node, Logger: log, Registerer: adm.Registry}
	if *accessLog {
		opts.AccessLog = os.Stdout
	}
	p, err := gatewayproxy.New(opts)
	if err != nil {
		return err
	}
	adm.SetReady(p.Ready)
	adm.Mux.HandleFunc("GET /config_dump", p.ServeConfigDump)
	adm.Mux.HandleFunc("GET /clusters", p.ServeClusters)
	adminLis, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		return fmt.Errorf("listening for admin on %s: %w", *adminAddr, err)
	}
	log.Info("proxy starting", "gateway", *gateway, "xds", *xdsAddr, "admin", adminLis.Addr().String())
	g := newGroup(ctx)
	g.Go("proxy", p.Run)
	g.Go("admin server", func(ctx context.Context) error { return adm.Serve(ctx, adminLis) })
	err = g.Wait()
	log.Info("proxy stopped")
	return err
}
