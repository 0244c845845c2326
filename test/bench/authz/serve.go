package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sekisho/sekisho/auth"
	"github.com/sekisho/sekisho/internal/unarygrpc"
	"github.com/sekisho/sekisho/test/bench/internal/pace"
)

// serverOpts says how the child serves.
type serverOpts struct {
	profile string // CPU profile file; "" for none
	server  string // "unarygrpc" (what `sekisho authz` runs; the default), "grpc-go" (auth.GRPCServerOptions) or "plain" (grpc.NewServer())
	cpu     int    // >= 0: GOMAXPROCS 1 and every thread pinned to this CPU
	noCache bool   // no verified-token cache: every Check verifies a signature
}

// serve is the child: Check over gRPC on 127.0.0.1 until its standard
// input closes (the parent stopped or died).
func serve(cfgPath string, o serverOpts) error {
	if o.cpu >= 0 {
		runtime.GOMAXPROCS(1)
		if err := pace.Pin(o.cpu); err != nil {
			return err
		}
	}
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg auth.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	ao := auth.Options{}
	if o.noCache {
		ao.TokenCacheSize = -1
	}
	s, err := auth.NewServer(ao)
	if err != nil {
		return err
	}
	if err := s.SetConfig(cfg); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if o.server == "grpc-go" || o.server == "plain" {
		var opts []grpc.ServerOption
		if o.server == "grpc-go" {
			opts = auth.GRPCServerOptions()
		}
		gs := grpc.NewServer(opts...)
		authv3.RegisterAuthorizationServer(gs, s)
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			gs.Stop()
		}()
		fmt.Printf("listening %s\n", lis.Addr())
		if err := gs.Serve(lis); !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
	us := unarygrpc.NewServer(unarygrpc.Options{})
	us.Handle(auth.CheckMethod, s.UnaryCheck)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		us.Stop()
	}()
	fmt.Printf("listening %s\n", lis.Addr())
	if err := us.Serve(lis); !errors.Is(err, unarygrpc.ErrServerStopped) {
		return err
	}
	return nil
}

// serverProc is the running child.
type serverProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
	done  chan struct{}
}

func startServer(cfgPath string, o serverOpts) (*serverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program's binary: %w", err)
	}
	args := []string{"-serve", cfgPath, "-serve-cpu", strconv.Itoa(o.cpu)}
	if o.profile != "" {
		args = append(args, "-cpuprofile", o.profile)
	}
	if o.server != "" {
		args = append(args, "-server", o.server)
	}
	if o.noCache {
		args = append(args, "-no-token-cache")
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sp := &serverProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(sp.done) }()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !ok || !found {
			sp.stop()
			return nil, errors.New("the server child did not start")
		}
		sp.addr = addr
	case <-time.After(30 * time.Second):
		sp.stop()
		return nil, errors.New("the server child did not start within 30s")
	}
	return sp, nil
}

func (sp *serverProc) pid() int { return sp.cmd.Process.Pid }

// stop closes the child's standard input, then kills it if it has not
// exited within 5s.
func (sp *serverProc) stop() {
	_ = sp.stdin.Close()
	select {
	case <-sp.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = sp.cmd.Process.Signal(syscall.SIGKILL)
	<-sp.done
}

// grpcCaller spreads calls over a few connections.
type grpcCaller struct {
	conns   []*grpc.ClientConn
	clients []authv3.AuthorizationClient
	next    atomic.Uint64
}

func newGRPCCaller(addr string, n int) (*grpcCaller, error) {
	g := &grpcCaller{}
	for i := 0; i < n; i++ {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			// As the proxy's client: fixed windows, no BDP pings.
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20))
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, c)
		g.clients = append(g.clients, authv3.NewAuthorizationClient(c))
	}
	return g, nil
}

func (g *grpcCaller) close() {
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// call returns a function making one Check of r; each caller (worker)
// gets its own connection, round robin.
func (g *grpcCaller) call(r *authv3.CheckRequest) func() func(context.Context) error {
	return func() func(context.Context) error {
		c := g.clients[g.next.Add(1)%uint64(len(g.clients))]
		return func(ctx context.Context) error {
			resp, err := c.Check(ctx, r)
			if err != nil {
				return err
			}
			return checkOK(resp)
		}
	}
}

// inProcessCaller calls Server.Check directly.
type inProcessCaller struct{ s *auth.Server }

func newInProcessCaller(fx *fixture) (*inProcessCaller, error) {
	s, err := auth.NewServer(auth.Options{})
	if err != nil {
		return nil, err
	}
	if err := s.SetConfig(fx.cfg); err != nil {
		return nil, err
	}
	return &inProcessCaller{s: s}, nil
}

func (p *inProcessCaller) call(r *authv3.CheckRequest) func() func(context.Context) error {
	return func() func(context.Context) error {
		return func(ctx context.Context) error {
			resp, err := p.s.Check(ctx, r)
			if err != nil {
				return err
			}
			return checkOK(resp)
		}
	}
}
