package proxy

import (
	"sort"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/sekisho/sekisho/proxy/upstream"
)

// grpcClientGrace is how long the channel of a cluster no filter uses any
// more stays open for the checks still running on it.
const grpcClientGrace = time.Minute

// grpcClient is the gRPC channel of the filters that call one cluster (the
// authorization or the rate limit service, as envoy_grpc does): h2c, round
// robin over the cluster's ready endpoints, which the runtime feeds to the
// channel's resolver whenever they change. One channel per cluster name
// lives as long as some filter of the configuration names the cluster.
type grpcClient struct {
	cluster string
	res     *manual.Resolver
	conn    *grpc.ClientConn
	authz   authv3.AuthorizationClient
	rls     rlsv3.RateLimitServiceClient

	// fed is the endpoint set last given to the resolver (sorted, joined);
	// guarded by Runtime.mu.
	fed    string
	hasFed bool
}

// grpcFlowWindow is the HTTP/2 flow-control window of the filters' gRPC
// streams and connections.
const grpcFlowWindow = 1 << 20

func newGRPCClient(cluster string, connectTimeout time.Duration) (*grpcClient, error) {
	res := manual.NewBuilderWithScheme("sekisho-cluster")
	if connectTimeout <= 0 {
		connectTimeout = 5 * time.Second
	}
	conn, err := grpc.NewClient(res.Scheme()+":///"+cluster,
		grpc.WithResolvers(res),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// As envoy_grpc does, the authority is the cluster's name.
		grpc.WithAuthority(cluster),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: connectTimeout}),
		// Fixed flow-control windows: grpc-go's dynamic window (BDP
		// estimation) pings the service on almost every check when checks
		// are spread out, a write and a read more on both sides of each.
		// Checks and answers are a few KiB; 1 MiB never holds them up.
		grpc.WithInitialWindowSize(grpcFlowWindow),
		grpc.WithInitialConnWindowSize(grpcFlowWindow),
	)
	if err != nil {
		return nil, err
	}
	// Connect as soon as the endpoints are known rather than on the first
	// check, so the first requests after a start or a new cluster do not
	// wait for the connection (or, past the filter's timeout, fail open).
	conn.Connect()
	return &grpcClient{
		cluster: cluster,
		res:     res,
		conn:    conn,
		authz:   authv3.NewAuthorizationClient(conn),
		rls:     rlsv3.NewRateLimitServiceClient(conn),
	}, nil
}

// setEndpoints gives the resolver the cluster's endpoints when they changed
// (nil cluster: none).
func (g *grpcClient) setEndpoints(cl *upstream.Cluster) {
	var addrs []string
	if cl != nil {
		for _, e := range cl.Endpoints {
			addrs = append(addrs, e.Addr)
		}
	}
	sort.Strings(addrs)
	key := strings.Join(addrs, ",")
	if g.hasFed && key == g.fed {
		return
	}
	g.fed, g.hasFed = key, true
	st := resolver.State{Endpoints: make([]resolver.Endpoint, 0, len(addrs))}
	for _, a := range addrs {
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	g.res.UpdateState(st)
}

func (g *grpcClient) close() { _ = g.conn.Close() }

// grpcClientFor returns the channel to a cluster for the configuration being
// compiled: the one already open, or a new one that the runtime keeps only
// when the configuration is applied.
func (e *compileEnv) grpcClientFor(cluster string, connectTimeout time.Duration) (*grpcClient, error) {
	if c := e.grpc[cluster]; c != nil {
		return c, nil
	}
	c := e.r.grpcClients[cluster]
	if c == nil {
		var err error
		if c, err = newGRPCClient(cluster, connectTimeout); err != nil {
			return nil, err
		}
		e.fresh = append(e.fresh, c)
	}
	e.grpc[cluster] = c
	return c, nil
}

// commitGRPC makes the channels of cfg the runtime's, feeds them their
// clusters' endpoints, and closes the channels cfg does not use: at once
// those its compilation opened (fresh), after a grace period the others.
// Runtime.mu is held.
func (r *Runtime) commitGRPC(cfg *config, fresh []*grpcClient) {
	for name, c := range cfg.grpc {
		r.grpcClients[name] = c
		c.setEndpoints(cfg.clusters[name])
	}
	for _, c := range fresh {
		if cfg.grpc[c.cluster] != c {
			c.close()
		}
	}
	for name, c := range r.grpcClients {
		if cfg.grpc[name] == c {
			continue
		}
		delete(r.grpcClients, name)
		r.grpcRetiring[c] = struct{}{}
		time.AfterFunc(grpcClientGrace, func() {
			r.mu.Lock()
			_, ok := r.grpcRetiring[c]
			delete(r.grpcRetiring, c)
			r.mu.Unlock()
			if ok {
				c.close()
			}
		})
	}
}

// closeGRPC closes every channel. Runtime.mu is held.
func (r *Runtime) closeGRPC() {
	for name, c := range r.grpcClients {
		delete(r.grpcClients, name)
		c.close()
	}
	for c := range r.grpcRetiring {
		delete(r.grpcRetiring, c)
		c.close()
	}
}

// discardGRPC closes the channels a configuration that was not applied
// opened.
func discardGRPC(fresh []*grpcClient) {
	for _, c := range fresh {
		c.close()
	}
}
