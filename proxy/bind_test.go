package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// bindFixture is a snapshot with two listeners sharing one route table:
// default/eg/http on the port held (taken by the test) and default/eg/other
// on a free port; and a Runtime that retries binds quickly.
func bindFixture(t *testing.T) (s *xdsclient.Snapshot, held net.Listener, rt *Runtime, served chan struct{}, logs *syncLog) {
	t.Helper()
	be := newRecorder(t, nil)
	r := route("web", prefix("/"))
	r.Forward = fwd("default/b:80")
	s = snapshotOf(t, httpGateway([]*ir.Route{r}, cluster("default/b:80", endpointOf(t, be.URL))))
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	port := held.Addr().(*net.TCPAddr).Port
	other := proto.Clone(s.Listeners["default/eg/http"]).(*listenerv3.Listener)
	other.Name = "default/eg/other"
	s.Listeners["default/eg/other"] = other
	s.Listeners["default/eg/http"].Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(port)}
	logs = &syncLog{}
	rt, served = bindRuntime(t, slog.New(slog.NewTextHandler(logs, nil)))
	return s, held, rt, served, logs
}

// bindRuntime is a Runtime that retries binds quickly and tells served each
// time its listeners all serve; it is closed when the test ends.
func bindRuntime(t *testing.T, log *slog.Logger) (*Runtime, chan struct{}) {
	t.Helper()
	served := make(chan struct{}, 4)
	rt := New(Options{
		Registerer: prometheus.NewRegistry(), Gateway: "default/eg", Logger: log,
		BindRetry: 20 * time.Millisecond, OnListenersServe: func() { served <- struct{}{} },
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	return rt, served
}

func wantUnbound(t *testing.T, err error, addr string) {
	t.Helper()
	var pe *xdsclient.PartialError
	if !errors.As(err, &pe) || len(pe.Resources) != 1 {
		t.Fatalf("Apply: %v, want a PartialError naming default/eg/http", err)
	}
	r := pe.Resources[0]
	if r.TypeURL != xdsclient.ListenerType || r.Name != "default/eg/http" || !strings.Contains(r.Err.Error(), addr) || !strings.Contains(r.Err.Error(), "address already in use") {
		t.Fatalf("unbound resource %+v, want listener default/eg/http, address %s, address already in use", r, addr)
	}
}

// A listener whose port is taken does not hold the others back; the runtime
// binds it once the port is free and says so.
func TestUnboundListenerDoesNotHoldTheOthers(t *testing.T) {
	s, held, rt, served, logs := bindFixture(t)
	addr := "127.0.0.1:" + strconv.Itoa(held.Addr().(*net.TCPAddr).Port)
	wantUnbound(t, rt.Apply(s), addr)
	other := rt.Addr("default/eg/other")
	if other == "" {
		t.Fatal("the other listener is not bound")
	}
	if resp, body := get(t, "http://"+other+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("other listener: %d %q, want 200 ok", resp.StatusCode, body)
	}
	if rt.ListenersServe() {
		t.Error("ListenersServe with a listener unbound")
	}
	// The same listener again (a resend): still reported, logged once.
	wantUnbound(t, rt.Apply(s), addr)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines, want 1:\n%s", n, logs)
	}

	held.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener was not bound after its port was freed")
	}
	if got := rt.Addr("default/eg/http"); got != addr {
		t.Fatalf("listener bound at %q, want %s", got, addr)
	}
	if resp, body := get(t, "http://"+addr+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("freed listener: %d %q, want 200 ok", resp.StatusCode, body)
	}
	if !rt.ListenersServe() {
		t.Error("ListenersServe false once every listener is bound")
	}
	if err := rt.Apply(s); err != nil {
		t.Fatalf("Apply once bound: %v", err)
	}
}

// A warming listener holds its port already, as Envoy binds a listener when
// it is added: a taken port is reported with the listeners, before the
// routes arrive.
func TestWarmingListenerReportsATakenPort(t *testing.T) {
	s, held, rt, served, _ := bindFixture(t)
	addr := "127.0.0.1:" + strconv.Itoa(held.Addr().(*net.TCPAddr).Port)
	warming := *s
	warming.Routes = map[string]*routev3.RouteConfiguration{}
	wantUnbound(t, rt.Apply(&warming), addr)

	held.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the warming listener's port was not taken after it was freed")
	}
	// The port is held for the listener: nobody else gets it.
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("%s is free while the warming listener should hold it", addr)
	}
	if err := rt.Apply(s); err != nil {
		t.Fatalf("Apply with routes: %v", err)
	}
	if resp, body := get(t, "http://"+addr+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("listener: %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// A listener that waits for its address keeps what its filters hold (the
// gRPC channel to the authorization service) until it is bound and serves
// with it, even when no listener that serves uses that channel meanwhile.
func TestUnboundListenerKeepsItsFilters(t *testing.T) {
	az := &fakeAuthz{answer: authzAnswers}
	azAddr := serveGRPC(t, func(s *grpc.Server) { authv3.RegisterAuthorizationServer(s, az) })
	be := newRecorder(t, nil)
	c := cluster("default/b:80", endpointOf(t, be.URL))
	r := route("allow", prefix("/"))
	r.Forward = fwd(c.Name)
	s := filterGateway(t, []*ir.Route{r}, azAddr, deadAddr(t), c)
	setHTTPFilters(t, s, httpFilterOf(t, fAuthz, extAuthzConfig(false)))
	setPerRoute(t, s, "allow", fAuthz, authzPolicy("ns/allow"))
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	s.Listeners["default/eg/http"].Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(held.Addr().(*net.TCPAddr).Port)}
	rt, served := bindRuntime(t, slog.New(slog.DiscardHandler))
	wantUnbound(t, rt.Apply(s), addr)
	held.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener was not bound after its port was freed")
	}
	resp, _ := get(t, "http://"+addr+"/")
	if resp.StatusCode != 200 || resp.Header.Get("X-Authz") != "yes" {
		t.Fatalf("bound listener: %d, x-authz %q; want 200 through the authorization service", resp.StatusCode, resp.Header.Get("X-Authz"))
	}
	if n := len(az.taken()); n != 1 {
		t.Fatalf("the authorization service got %d checks, want 1", n)
	}
}
