package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/controlplane"
	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/xds/server"
)

// controlPlane is the file provider, the translators and the ADS server.
type controlPlane struct {
	dir     string
	log     *slog.Logger
	srv     *server.Server
	pipe    *controlplane.Pipeline
	xdsLis  net.Listener
	applied func(*gwtranslate.Result) // optional: called after each apply
}

func newControlPlane(dir, xdsAddr string, topts gwtranslate.Options, embedded bool, log *slog.Logger, reg prometheus.Registerer) (*controlPlane, error) {
	lis, err := net.Listen("tcp", xdsAddr)
	if err != nil {
		return nil, fmt.Errorf("listening for xDS on %s: %w", xdsAddr, err)
	}
	srv := server.New(server.Options{Logger: log, Registerer: reg, ProxiesLogHere: embedded})
	pipe := controlplane.New(srv, controlplane.Options{
		Translate:  topts,
		Logger:     log.With("component", "controlplane"),
		Registerer: reg,
	})
	return &controlPlane{dir: dir, log: log, srv: srv, pipe: pipe, xdsLis: lis}, nil
}

func (c *controlPlane) start(g *group) {
	g.Go("xds server", func(ctx context.Context) error { return c.srv.Serve(ctx, c.xdsLis) })
	g.Go("file provider", func(ctx context.Context) error {
		w := &file.Watcher{Dir: c.dir, Logger: c.log.With("component", "file-provider"), OnChange: func(res *resource.Resources, problems []resource.Problem) {
			// Apply logs what it could not do; the last good xDS keeps serving.
			result, _ := c.pipe.Apply(ctx, res, problems)
			if c.applied != nil {
				c.applied(result)
			}
		}}
		return w.Run(ctx)
	})
}

func (c *controlPlane) ready() error { return pipelineReady(c.pipe) }

// pipelineReady is a control plane's readiness: a view has been applied.
func pipelineReady(pipe *controlplane.Pipeline) error {
	if !pipe.Ready() {
		return errors.New("no configuration applied yet")
	}
	return nil
}

// statusHandler serves the status of the last view pipe applied, with
// Programmed saying what the proxies serve: a table, or with ?format=json
// (or Accept: application/json) a JSON array of rows.
func statusHandler(pipe *controlplane.Pipeline) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		set := pipe.ServedStatus()
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			rows := []status.Row{}
			if set != nil {
				rows = set.Rows()
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rows)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if set != nil {
			_ = set.WriteTable(w)
		}
	}
}

// controlPlaneFlags are the flags of the commands that run the control plane.
type controlPlaneFlags struct {
	dir, xdsAddr, adminAddr, gatewayAddr, logLevel *string
	logJSON                                        *bool
	// authzAddr and rateLimitAddr are where proxies reach the services.
	authzAddr, rateLimitAddr *string
	// embedded: the proxies run in this process and log here (sekisho run).
	embedded bool
}

func addControlPlaneFlags(fs *flag.FlagSet, xdsDefault, adminDefault, adminPages string) controlPlaneFlags {
	return controlPlaneFlags{
		dir:         dirFlag(fs),
		xdsAddr:     fs.String("xds-address", xdsDefault, "address to serve xDS (ADS over gRPC) on"),
		adminAddr:   fs.String("admin-address", adminDefault, "address to serve "+adminPages+" on"),
		gatewayAddr: fs.String("gateway-address", "127.0.0.1", "address reported in Gateway status when a Gateway sets none"),
		logLevel:    fs.String("log-level", "info", "debug, info, warn or error"),
		logJSON:     fs.Bool("log-json", false, "log JSON lines"),
	}
}

// addServiceAddressFlags adds the flags that say where proxies reach the
// authorization and rate-limit services (`sekisho controller`); empty: none,
// so policies that need one are not Accepted.
func (f *controlPlaneFlags) addServiceAddressFlags(fs *flag.FlagSet) {
	f.authzAddr = fs.String("authz-address", "", "host:port where proxies reach the authorization service (sekisho authz); comma-separated for several replicas")
	f.rateLimitAddr = fs.String("ratelimit-address", "", "host:port where proxies reach the rate-limit service (sekisho ratelimit); comma-separated for several replicas")
}

// translateOptions are the Gateway API translator's options from the flags.
func (f controlPlaneFlags) translateOptions() (gwtranslate.Options, error) {
	opts := gwtranslate.Options{DefaultAddresses: []string{*f.gatewayAddr}}
	for _, s := range []struct {
		flag *string
		dst  *[]ir.ServiceAddress
	}{{f.authzAddr, &opts.AuthzService}, {f.rateLimitAddr, &opts.RateLimitService}} {
		if s.flag == nil || *s.flag == "" {
			continue
		}
		for _, hp := range strings.Split(*s.flag, ",") {
			a, err := serviceAddress(strings.TrimSpace(hp))
			if err != nil {
				return opts, fmt.Errorf("%w: %v", errUsage, err)
			}
			*s.dst = append(*s.dst, *a)
		}
	}
	return opts, nil
}

// start checks the flags and builds the logger, the admin server (listening)
// and the control plane.
func (f controlPlaneFlags) start(stderr io.Writer) (*slog.Logger, *admin.Server, net.Listener, *controlPlane, error) {
	if *f.dir == "" {
		return nil, nil, nil, nil, fmt.Errorf("%w: -f DIR is required", errUsage)
	}
	log, err := newLogger(stderr, *f.logLevel, *f.logJSON)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	topts, err := f.translateOptions()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	adm := admin.New(nil)
	cp, err := newControlPlane(*f.dir, *f.xdsAddr, topts, f.embedded, log, adm.Registry)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	adminLis, err := net.Listen("tcp", *f.adminAddr)
	if err != nil {
		cp.xdsLis.Close()
		return nil, nil, nil, nil, fmt.Errorf("listening for admin on %s: %w", *f.adminAddr, err)
	}
	adm.Mux.HandleFunc("GET /status", statusHandler(cp.pipe))
	return log, adm, adminLis, cp, nil
}

func runController(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("controller", stderr)
	flags := addControlPlaneFlags(fs, "127.0.0.1:18000", "127.0.0.1:18001", "/healthz, /readyz, /metrics and /status")
	flags.addServiceAddressFlags(fs)
	kf := addKubeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *flags.dir == "" {
		// No folder: Kubernetes mode.
		return runKubeController(ctx, flags, kf, stderr)
	}
	log, adm, adminLis, cp, err := flags.start(stderr)
	if err != nil {
		return err
	}
	adm.SetReady(cp.ready)
	log.Info("controller starting", "dir", *flags.dir, "xds", cp.xdsLis.Addr().String(), "admin", adminLis.Addr().String())
	g := newGroup(ctx)
	cp.start(g)
	g.Go("admin server", func(ctx context.Context) error { return adm.Serve(ctx, adminLis) })
	err = g.Wait()
	log.Info("controller stopped")
	return err
}
