// Package grpcclient is the gRPC channel of the HTTP filters that call a
// service in a cluster (ext_authz, ratelimit), as Envoy's envoy_grpc is:
// h2c, round robin over the cluster's endpoints, which the runtime feeds to
// the channel's resolver whenever a configuration is applied. The channel to
// a cluster is shared by every filter that names it and outlives
// configuration swaps through the runtime's ext.Pool.
package grpcclient

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/sekisho/sekisho/proxy/ext"
)

// Fields are the fields of a GrpcService the channel honours.
var Fields = []string{
	"envoy.config.core.v3.GrpcService.envoy_grpc",
	"envoy.config.core.v3.GrpcService.timeout",
	"envoy.config.core.v3.GrpcService.EnvoyGrpc.cluster_name",
}

// Client is the channel to one cluster.
type Client struct {
	cluster string
	res     *manual.Resolver
	conn    *grpc.ClientConn

	// fed is the endpoint set last given to the resolver (sorted, joined);
	// guarded by the runtime's lock (see ext.BuildContext.Cluster).
	fed    string
	hasFed bool
}

// flowWindow is the HTTP/2 flow-control window of the channels' streams
// and connections.
const flowWindow = 1 << 20

// New opens a channel to a cluster; it resolves nothing until SetEndpoints.
func New(cluster string, connectTimeout time.Duration) (*Client, error) {
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
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
	)
	if err != nil {
		return nil, err
	}
	// Connect as soon as the endpoints are known rather than on the first
	// call, so the first requests after a start or a new cluster do not
	// wait for the connection (or, past the filter's timeout, fail open).
	conn.Connect()
	return &Client{cluster: cluster, res: res, conn: conn}, nil
}

// Conn is the channel, for the generated service clients.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// SetEndpoints gives the resolver the cluster's endpoint addresses when
// they changed.
func (c *Client) SetEndpoints(addrs []string) {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	key := strings.Join(addrs, ",")
	if c.hasFed && key == c.fed {
		return
	}
	c.fed, c.hasFed = key, true
	st := resolver.State{Endpoints: make([]resolver.Endpoint, 0, len(addrs))}
	for _, a := range addrs {
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	c.res.UpdateState(st)
}

// Close closes the channel.
func (c *Client) Close() { _ = c.conn.Close() }

// Service checks an envoy_grpc GrpcService and returns the channel to its
// cluster, taken from the pool on b's lease, and its timeout (def when it
// sets none). An error starts with the field it is about.
func Service(b ext.BuildContext, gs *corev3.GrpcService, def time.Duration) (*Client, time.Duration, error) {
	eg := gs.GetEnvoyGrpc()
	if eg == nil {
		return nil, 0, errors.New("envoy_grpc is required")
	}
	c, err := forCluster(b, eg.GetClusterName())
	if err != nil {
		return nil, 0, fmt.Errorf("envoy_grpc.cluster_name: %w", err)
	}
	timeout := def
	if gs.Timeout != nil {
		if err := gs.GetTimeout().CheckValid(); err != nil || gs.GetTimeout().AsDuration() < 0 {
			return nil, 0, fmt.Errorf("timeout: %v is not a duration", gs.GetTimeout())
		}
		timeout = gs.GetTimeout().AsDuration()
	}
	return c, timeout, nil
}

// forCluster checks the cluster a service names and returns the channel to
// it; the channel is fed the cluster's endpoints whenever a configuration
// holding the filter is applied.
func forCluster(b ext.BuildContext, name string) (*Client, error) {
	cl, ok := b.Cluster(name)
	if !ok {
		return nil, fmt.Errorf("cluster %q does not exist", name)
	}
	if !cl.HTTP2 {
		return nil, fmt.Errorf("cluster %q does not speak HTTP/2 (it needs http2_protocol_options for gRPC)", name)
	}
	c, err := ext.Acquire(b.Lease(), "grpc\x00"+name, func() (*Client, func(), error) {
		c, err := New(name, cl.ConnectTimeout)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	})
	if err != nil {
		return nil, err
	}
	b.WatchCluster(name, func(cl ext.Cluster) { c.SetEndpoints(cl.Endpoints) })
	return c, nil
}

// Outcomes are the counters of a filter that calls a service: its calls by
// result (allowed, denied, error) in a family labelled "result", and the
// requests it let through because the call failed.
type Outcomes struct {
	Allowed, Denied, Errored, FailedOpen ext.Counter
}

// NewOutcomes takes a filter's Outcomes from the families it declared:
// calls (labelled "result") and failedOpen.
func NewOutcomes(b ext.BuildContext, calls, failedOpen string) Outcomes {
	return Outcomes{
		Allowed:    b.Counter(calls, "allowed"),
		Denied:     b.Counter(calls, "denied"),
		Errored:    b.Counter(calls, "error"),
		FailedOpen: b.Counter(failedOpen),
	}
}
