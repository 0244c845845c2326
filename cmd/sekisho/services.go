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
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/auth"
	"github.com/sekisho/sekisho/internal/admin"
	"github.com/sekisho/sekisho/internal/configsub"
	"github.com/sekisho/sekisho/internal/unarygrpc"
	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/ratelimit"
)

// service is the authorization or the rate-limit service: a gRPC server and
// the subscription that keeps its configuration up to date. The server is
// internal/unarygrpc's: the services answer one unary method each, at high
// rates; with few calls in flight it lets a core decide a third to a half
// more than grpc-go's server, with many the two are even (test/bench/authz,
// internal/unarygrpc's BenchmarkUnary).
type service struct {
	name  string
	lis   net.Listener
	grpc  *unarygrpc.Server
	sub   *configsub.Subscriber
	ready func() error
	close func() // after the gRPC server has stopped; may be nil
}

// serviceDrainTimeout bounds how long a stopping service waits for the calls
// in flight.
const serviceDrainTimeout = 10 * time.Second

func (s *service) start(g *group) {
	g.Go(s.name+" config", s.sub.Run)
	g.Go(s.name+" server", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			// Calls in flight finish, within a bound: a peer that stopped
			// reading must not hold the shutdown.
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(serviceDrainTimeout):
				s.grpc.Stop()
			}
		}()
		err := s.grpc.Serve(s.lis)
		if s.close != nil {
			s.close()
		}
		if err != nil && !errors.Is(err, unarygrpc.ErrServerStopped) {
			return fmt.Errorf("serving gRPC on %s: %w", s.lis.Addr(), err)
		}
		return nil
	})
}

// Ready is nil once the service has its configuration and its store answers.
func (s *service) Ready() error {
	if err := s.sub.Ready(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := s.ready(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

func serviceAddress(hostport string) (*ir.ServiceAddress, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("service address %q: %w", hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("service address %q: bad port", hostport)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return &ir.ServiceAddress{Address: host, Port: uint32(p)}, nil
}

// newAuthzService serves on lis and subscribes to the control plane at
// xdsAddr.
func newAuthzService(lis net.Listener, xdsAddr, id string, log *slog.Logger, reg prometheus.Registerer) (*service, error) {
	srv, err := auth.NewServer(auth.Options{Logger: log.With("component", "authz"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	sub, err := configsub.New(configsub.Options{
		Address: xdsAddr, Node: configsub.AuthzNode, ID: id, Resource: configsub.AuthzResource, Logger: log,
		Apply: func(raw []byte) error {
			var c auth.Config
			if err := strictJSON(raw, &c); err != nil {
				return fmt.Errorf("decoding the authorization configuration: %w", err)
			}
			return srv.SetConfig(c)
		},
	})
	if err != nil {
		return nil, err
	}
	gs := unarygrpc.NewServer(unarygrpc.Options{Logger: log.With("component", "authz-grpc")})
	gs.Handle(auth.CheckMethod, srv.UnaryCheck)
	return &service{name: "authz", lis: lis, grpc: gs, sub: sub, ready: srv.Ready}, nil
}

// rateLimitStore is the in-memory store, or Redis when redis names one or
// more addresses (comma-separated: a cluster). A Redis that cannot be
// reached yet is dialled in the background.
func rateLimitStore(ctx context.Context, redis string, log *slog.Logger) ratelimit.Store {
	if redis == "" {
		return ratelimit.NewMemoryStore(ratelimit.MemoryOptions{})
	}
	opts := ratelimit.RedisOptions{Addrs: strings.Split(redis, ","), Logger: log.With("component", "ratelimit-redis")}
	s, err := ratelimit.NewRedisStore(ctx, opts)
	if err != nil {
		log.Warn("Redis cannot be reached; rate-limit rules apply their failure mode until it can", "redis", redis, "err", err)
		return newPendingRedis(ctx, opts, err, log)
	}
	return s
}

// newRateLimitService serves on lis with the counters in store.
func newRateLimitService(lis net.Listener, xdsAddr, id string, store ratelimit.Store, deadline time.Duration, log *slog.Logger, reg prometheus.Registerer) (*service, error) {
	srv, err := ratelimit.NewServer(ratelimit.Options{Store: store, Deadline: deadline, Logger: log.With("component", "ratelimit"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	sub, err := configsub.New(configsub.Options{
		Address: xdsAddr, Node: configsub.RateLimitNode, ID: id, Resource: configsub.RateLimitResource, Logger: log,
		Apply: func(raw []byte) error {
			var c ratelimit.Config
			if err := strictJSON(raw, &c); err != nil {
				return fmt.Errorf("decoding the rate-limit configuration: %w", err)
			}
			return srv.SetConfig(c)
		},
	})
	if err != nil {
		return nil, err
	}
	// Calls wait on Redis: more workers than CPUs keep their stacks warm.
	gs := unarygrpc.NewServer(unarygrpc.Options{Logger: log.With("component", "ratelimit-grpc"), Workers: 128})
	gs.Handle(ratelimit.ShouldRateLimitMethod, srv.UnaryShouldRateLimit)
	return &service{name: "ratelimit", lis: lis, grpc: gs, sub: sub, ready: srv.Ready, close: func() {
		srv.Close()
		if err := store.Close(); err != nil {
			log.Warn("closing the rate-limit store", "err", err)
		}
	}}, nil
}

// strictJSON decodes a service configuration, refusing unknown fields: a
// control plane newer than the service gets a NACK, not a half-applied
// configuration.
func strictJSON(raw []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// serviceFlags are the flags `sekisho authz` and `sekisho ratelimit` share.
type serviceFlags struct {
	xdsAddr, listen, adminAddr, id, logLevel *string
	logJSON                                  *bool
}

func runServiceCommand(ctx context.Context, name string, args []string, stderr io.Writer, listenDefault, adminDefault string,
	extra func(*flag.FlagSet), build func(ctx context.Context, lis net.Listener, f serviceFlags, log *slog.Logger, reg prometheus.Registerer) (*service, error)) error {
	fs := newFlags(name, stderr)
	f := serviceFlags{
		xdsAddr:   fs.String("xds", "127.0.0.1:18000", "the control plane's ADS address, where the service gets its configuration"),
		listen:    fs.String("listen", listenDefault, "address to serve the gRPC API on"),
		adminAddr: fs.String("admin-address", adminDefault, "address to serve /healthz, /readyz and /metrics on"),
		id:        fs.String("id", "", "this replica's id in the control plane's logs (default: the hostname)"),
		logLevel:  fs.String("log-level", "info", "debug, info, warn or error"),
		logJSON:   fs.Bool("log-json", false, "log JSON lines"),
	}
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *f.id == "" {
		*f.id, _ = os.Hostname()
	}
	log, err := newLogger(stderr, *f.logLevel, *f.logJSON)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *f.listen, err)
	}
	adm := admin.New(nil)
	svc, err := build(ctx, lis, f, log, adm.Registry)
	if err != nil {
		lis.Close()
		return err
	}
	adm.SetReady(svc.Ready)
	adminLis, err := net.Listen("tcp", *f.adminAddr)
	if err != nil {
		svc.lis.Close()
		return fmt.Errorf("listening for admin on %s: %w", *f.adminAddr, err)
	}
	log.Info(name+" starting", "listen", svc.lis.Addr().String(), "xds", *f.xdsAddr, "admin", adminLis.Addr().String())
	g := newGroup(ctx)
	svc.start(g)
	g.Go("admin server", func(ctx context.Context) error { return adm.Serve(ctx, adminLis) })
	err = g.Wait()
	log.Info(name + " stopped")
	return err
}

func runAuthz(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runServiceCommand(ctx, "authz", args, stderr, "127.0.0.1:18081", "127.0.0.1:19081", nil,
		func(_ context.Context, lis net.Listener, f serviceFlags, log *slog.Logger, reg prometheus.Registerer) (*service, error) {
			return newAuthzService(lis, *f.xdsAddr, *f.id, log, reg)
		})
}

func runRateLimit(ctx context.Context, args []string, _, stderr io.Writer) error {
	var redis *string
	var deadline *time.Duration
	return runServiceCommand(ctx, "ratelimit", args, stderr, "127.0.0.1:18082", "127.0.0.1:19082",
		func(fs *flag.FlagSet) {
			redis = fs.String("redis", "", "Redis address(es), comma-separated (several: a Redis Cluster); in-memory counters when empty (one replica only)")
			deadline = fs.Duration("deadline", 20*time.Millisecond, "how long a decision may wait for the store before the rule's failure mode applies")
		},
		func(ctx context.Context, lis net.Listener, f serviceFlags, log *slog.Logger, reg prometheus.Registerer) (*service, error) {
			return newRateLimitService(lis, *f.xdsAddr, *f.id, rateLimitStore(ctx, *redis, log), *deadline, log, reg)
		})
}

// pendingRedis is the rate-limit store while Redis cannot be reached at
// start: every decision fails at once with ratelimit.ErrStoreUnavailable (so
// each rule's failure mode applies) while it keeps dialling in the
// background; then it hands over to the Redis store. A controller that runs
// the service keeps serving xDS when Redis is down at start.
type pendingRedis struct {
	opts    ratelimit.RedisOptions
	log     *slog.Logger
	store   atomic.Pointer[ratelimit.Store]
	lastErr atomic.Pointer[error]
	stop    context.CancelFunc
	done    chan struct{}
}

func newPendingRedis(ctx context.Context, opts ratelimit.RedisOptions, first error, log *slog.Logger) *pendingRedis {
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingRedis{opts: opts, log: log, stop: cancel, done: make(chan struct{})}
	p.lastErr.Store(&first)
	go p.dial(ctx)
	return p
}

func (p *pendingRedis) dial(ctx context.Context) {
	defer close(p.done)
	delay := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		s, err := ratelimit.NewRedisStore(ctx, p.opts)
		if err == nil {
			p.store.Store(&s)
			p.log.Info("connected to Redis", "addrs", p.opts.Addrs)
			return
		}
		p.lastErr.Store(&err)
		delay = min(delay*2, 5*time.Second)
	}
}

func (p *pendingRedis) Take(ctx context.Context, reqs []ratelimit.Request, out []ratelimit.Result) {
	if s := p.store.Load(); s != nil {
		(*s).Take(ctx, reqs, out)
		return
	}
	for i := range reqs {
		out[i] = ratelimit.Result{Err: ratelimit.ErrStoreUnavailable}
	}
}

func (p *pendingRedis) Ping(ctx context.Context) error {
	if s := p.store.Load(); s != nil {
		return (*s).Ping(ctx)
	}
	return fmt.Errorf("connecting to Redis at %s: %w", strings.Join(p.opts.Addrs, ","), *p.lastErr.Load())
}

func (p *pendingRedis) Close() error {
	p.stop()
	<-p.done
	if s := p.store.Load(); s != nil {
		return (*s).Close()
	}
	return nil
}

// storeSwitch is the rate-limit store of a controller whose Redis address
// comes from the cluster (GatewayClassConfig spec.rateLimit.redis): Use
// moves the counters to another Redis, or to memory, when it changes.
type storeSwitch struct {
	ctx context.Context
	log *slog.Logger

	mu   sync.Mutex
	addr string
	cur  atomic.Pointer[ratelimit.Store]
}

func newStoreSwitch(ctx context.Context, redis string, log *slog.Logger) *storeSwitch {
	s := &storeSwitch{ctx: ctx, log: log, addr: redis}
	st := rateLimitStore(ctx, redis, log)
	s.cur.Store(&st)
	return s
}

// Use keeps the counters in Redis at addr ("" for memory).
func (s *storeSwitch) Use(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == s.addr {
		return
	}
	s.log.Info("rate-limit counters move", "from", cmpOr(s.addr, "memory"), "to", cmpOr(addr, "memory"))
	next := rateLimitStore(s.ctx, addr, s.log)
	old := s.cur.Swap(&next)
	s.addr = addr
	go func() {
		// Decisions in flight on the old store finish first.
		time.Sleep(time.Second)
		if err := (*old).Close(); err != nil {
			s.log.Warn("closing the previous rate-limit store", "err", err)
		}
	}()
}

func (s *storeSwitch) Take(ctx context.Context, reqs []ratelimit.Request, out []ratelimit.Result) {
	(*s.cur.Load()).Take(ctx, reqs, out)
}

func (s *storeSwitch) Ping(ctx context.Context) error { return (*s.cur.Load()).Ping(ctx) }

func (s *storeSwitch) Close() error { return (*s.cur.Load()).Close() }

func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}
