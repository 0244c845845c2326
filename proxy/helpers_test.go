package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy/xdsclient"
	"github.com/sekisho/sekisho/xds/translate"
)

// snapshotOf translates gw into the Snapshot the ADS client would hand the
// proxy, with every listener moved to 127.0.0.1 port 0 (a free port).
func snapshotOf(t testing.TB, gw *ir.Gateway) *xdsclient.Snapshot {
	t.Helper()
	res, err := translate.Translate(gw)
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	s := &xdsclient.Snapshot{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
	for _, l := range res.Listeners {
		l.Address.GetSocketAddress().Address = "127.0.0.1"
		l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
		s.Listeners[l.Name] = l
	}
	for _, x := range res.Routes {
		s.Routes[x.Name] = x
	}
	for _, x := range res.Clusters {
		s.Clusters[x.Name] = x
	}
	for _, x := range res.Endpoints {
		s.Endpoints[x.ClusterName] = x
	}
	for _, x := range res.Secrets {
		s.Secrets[x.Name] = x
	}
	return s
}

// hostPort splits an httptest server's address into the IR endpoint.
func endpointOf(t testing.TB, u string) ir.Endpoint {
	t.Helper()
	u = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	h, p, err := net.SplitHostPort(u)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return ir.Endpoint{Address: h, Port: uint32(n), Ready: true}
}

// httpGateway is one HTTP listener with one catch-all virtual host.
func httpGateway(routes []*ir.Route, clusters ...*ir.Cluster) *ir.Gateway {
	return &ir.Gateway{
		Name: "default/eg", Namespace: "default", GatewayName: "eg",
		Listeners: []*ir.Listener{{
			Name: "default/eg/http", Address: "127.0.0.1", Port: 8080, Protocol: ir.ProtocolHTTP,
			FilterChains: []*ir.FilterChain{{
				Name:         "default/eg/http",
				VirtualHosts: []*ir.VirtualHost{{Name: "default/eg/http/*", Domains: []string{"*"}, Routes: routes}},
			}},
		}},
		Clusters: clusters,
	}
}

func cluster(name string, eps ...ir.Endpoint) *ir.Cluster {
	return &ir.Cluster{Name: name, Protocol: ir.AppProtocolHTTP1, LoadBalancer: ir.LoadBalancerRoundRobin, Endpoints: eps}
}

func route(name string, m ir.Match) *ir.Route {
	return &ir.Route{Name: name, Source: ir.RouteSource{Kind: "HTTPRoute", Namespace: "default", Name: name}, Match: m}
}

func prefix(p string) ir.Match { return ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: p}} }

func fwd(clusters ...string) *ir.Forward {
	f := &ir.Forward{}
	for _, c := range clusters {
		f.Backends = append(f.Backends, ir.WeightedBackend{Cluster: c, Weight: 1})
	}
	return f
}

// startRuntime applies s to a new Runtime and returns it with the address of
// the listener named listener.
func startRuntime(t testing.TB, s *xdsclient.Snapshot, listener string, opts ...func(*Options)) (*Runtime, string) {
	t.Helper()
	o := Options{Registerer: prometheus.NewRegistry(), Gateway: "default/eg"}
	for _, f := range opts {
		f(&o)
	}
	rt := New(o)
	if err := rt.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	addr := rt.Addr(listener)
	if addr == "" {
		t.Fatalf("listener %q is not bound", listener)
	}
	return rt, addr
}

// recorder is a backend that records the last request it got.
type recorder struct {
	*httptest.Server
	got chan *http.Request
}

func newRecorder(t testing.TB, h http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{got: make(chan *http.Request, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case r.got <- req:
		default:
		}
		if h != nil {
			h(w, req)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) last(t testing.TB) *http.Request {
	t.Helper()
	select {
	case req := <-r.got:
		return req
	case <-time.After(5 * time.Second):
		t.Fatal("the backend got no request")
		return nil
	}
}

var client = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, string(b)
}
