// Package upstream holds sekisho's proxy clusters: the healthy endpoints of
// each EDS cluster, load balancing (round robin, least request), pooled
// keep-alive connections (HTTP/1.1, or h2c with prior knowledge), and passive
// outlier detection (consecutive 5xx, connect failures and resets included).
//
// A Cluster is immutable apart from its endpoints' counters; the endpoint
// state and the connection pool carry over to the Cluster compiled from the
// next configuration when its address and settings stay the same.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of the
// upstream HTTP protocol options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// MaxIdleConnsPerEndpoint is how many idle keep-alive connections are kept per
// HTTP/1.1 endpoint.
const MaxIdleConnsPerEndpoint = 1024

// ConnectError is an error in connecting to an endpoint.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return "connecting to " + e.Addr + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Outlier is a cluster's outlier detection.
type Outlier struct {
	Consecutive5xx      uint32 // 0: off
	Enforcing           uint32 // percent
	Interval            time.Duration
	BaseEjectionTime    time.Duration
	MaxEjectionPercent  uint32
	MaxEjectionDuration time.Duration
}

// Endpoint is one address of a cluster, with its counters.
type Endpoint struct {
	Addr string

	active      atomic.Int64
	consecutive atomic.Uint32
	// ejectedUntil is unix nanoseconds; 0: not ejected.
	ejectedUntil atomic.Int64
	// Guarded by the cluster's mu.
	ejections    int
	lastUnejects int64
	total        atomic.Uint64
	failures     atomic.Uint64
}

// Active is the number of requests in flight to the endpoint.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Cluster is a compiled cluster.
type Cluster struct {
	Name           string
	H2C            bool
	ConnectTimeout time.Duration
	LeastRequest   bool
	Outlier        Outlier
	Endpoints      []*Endpoint
	// RT sends requests to the endpoints: sekisho's own HTTP/1.1 Client
	// for plain-HTTP clusters, an http.Transport for h2c ones.
	RT http.RoundTripper

	now func() time.Time
	rr  atomic.Uint64
	mu  *sync.Mutex // ejection decisions; shared with the next compile
}

// Options tune Compile.
type Options struct {
	// Now is the clock (tests give a fake one); nil: time.Now.
	Now func() time.Time
	// Logger is told of endpoints that cannot be connected to; nil: none.
	Logger *slog.Logger
}

// dialReporter logs a backend address that cannot be connected to once at
// ERROR, when it starts failing (not on every request sent to it while it
// does), and once at INFO when it answers again.
type dialReporter struct {
	log     *slog.Logger
	cluster string
	failing sync.Map // address -> struct{}
}

func (d *dialReporter) dialed(addr string, err error) {
	if err == nil {
		if _, was := d.failing.LoadAndDelete(addr); was {
			d.log.Info("a backend answers connections again", "cluster", d.cluster, "address", addr)
		}
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the request went away, not the backend
	}
	if _, already := d.failing.LoadOrStore(addr, struct{}{}); already {
		d.log.Debug("connecting to a backend failed", "cluster", d.cluster, "address", addr, "error", err)
		return
	}
	d.log.Error("a backend cannot be connected to; requests sent to it fail until it answers",
		"cluster", d.cluster, "address", addr, "error", err)
}

// Compile builds the Cluster of cl with the HEALTHY endpoints of cla (nil:
// no endpoints). prev, the same cluster compiled from the previous
// configuration (or nil), gives its endpoint state and its connection pool
// when they still apply.
func Compile(cl *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment, prev *Cluster, opts Options) (*Cluster, error) {
	c := &Cluster{Name: cl.GetName(), now: opts.Now, ConnectTimeout: 5 * time.Second}
	if c.now == nil {
		c.now = time.Now
	}
	if cl.GetType() != clusterv3.Cluster_EDS {
		return nil, fmt.Errorf("cluster %q: type: %v is not supported (EDS only)", cl.GetName(), cl.GetType())
	}
	if cl.ConnectTimeout != nil {
		c.ConnectTimeout = cl.GetConnectTimeout().AsDuration()
	}
	switch cl.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
	case clusterv3.Cluster_LEAST_REQUEST:
		c.LeastRequest = true
	default:
		return nil, fmt.Errorf("cluster %q: lb_policy: %v is not supported", cl.GetName(), cl.GetLbPolicy())
	}
	for k, a := range cl.GetTypedExtensionProtocolOptions() {
		if k != HTTPProtocolOptionsKey {
			return nil, fmt.Errorf("cluster %q: typed_extension_protocol_options[%q] is not supported", cl.GetName(), k)
		}
		opts := &httpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(opts); err != nil {
			return nil, fmt.Errorf("cluster %q: typed_extension_protocol_options[%q]: %w", cl.GetName(), k, err)
		}
		ex := opts.GetExplicitHttpConfig()
		switch {
		case ex == nil:
			return nil, fmt.Errorf("cluster %q: HttpProtocolOptions: only explicit_http_config is supported", cl.GetName())
		case ex.GetHttp2ProtocolOptions() != nil:
			c.H2C = true
		case ex.GetHttpProtocolOptions() != nil:
		}
	}
	if od := cl.GetOutlierDetection(); od != nil {
		c.Outlier = Outlier{
			Consecutive5xx:      5,
			Enforcing:           100,
			Interval:            10 * time.Second,
			BaseEjectionTime:    30 * time.Second,
			MaxEjectionPercent:  10,
			MaxEjectionDuration: 300 * time.Second,
		}
		if od.Consecutive_5Xx != nil {
			c.Outlier.Consecutive5xx = od.GetConsecutive_5Xx().GetValue()
		}
		if od.EnforcingConsecutive_5Xx != nil {
			c.Outlier.Enforcing = od.GetEnforcingConsecutive_5Xx().GetValue()
		}
		if od.Interval != nil {
			c.Outlier.Interval = od.GetInterval().AsDuration()
		}
		if od.BaseEjectionTime != nil {
			c.Outlier.BaseEjectionTime = od.GetBaseEjectionTime().AsDuration()
		}
		if od.MaxEjectionPercent != nil {
			c.Outlier.MaxEjectionPercent = od.GetMaxEjectionPercent().GetValue()
		}
		if c.Outlier.MaxEjectionDuration < c.Outlier.BaseEjectionTime {
			c.Outlier.MaxEjectionDuration = c.Outlier.BaseEjectionTime
		}
	}

	old := map[string]*Endpoint{}
	if prev != nil {
		for _, e := range prev.Endpoints {
			old[e.Addr] = e
		}
	}
	seen := map[string]bool{}
	for i, loc := range cla.GetEndpoints() {
		for j, lb := range loc.GetLbEndpoints() {
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
			default:
				continue
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil || sa.GetPortValue() == 0 {
				return nil, fmt.Errorf("cluster %q: endpoints[%d].lb_endpoints[%d]: a socket address with a port is required", cl.GetName(), i, j)
			}
			if sa.GetProtocol() != corev3.SocketAddress_TCP {
				return nil, fmt.Errorf("cluster %q: endpoints[%d].lb_endpoints[%d]: protocol %v is not supported", cl.GetName(), i, j, sa.GetProtocol())
			}
			addr := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			e := old[addr]
			if e == nil {
				e = &Endpoint{Addr: addr}
			}
			c.Endpoints = append(c.Endpoints, e)
		}
	}
	if prev != nil && prev.H2C == c.H2C && prev.ConnectTimeout == c.ConnectTimeout {
		c.RT = prev.RT
		c.mu = prev.mu
	} else {
		if c.H2C {
			c.RT = newTransport(true, c.ConnectTimeout, onDial(opts.Logger, c.Name))
		} else {
			cl := NewClient(c.ConnectTimeout)
			cl.OnDial = onDial(opts.Logger, c.Name)
			c.RT = cl
		}
		c.mu = &sync.Mutex{}
	}
	return c, nil
}

// onDial is the dial reporter of a cluster, or nil without a logger.
func onDial(log *slog.Logger, cluster string) func(string, error) {
	if log == nil {
		return nil
	}
	return (&dialReporter{log: log, cluster: cluster}).dialed
}

func newTransport(h2c bool, connectTimeout time.Duration, report func(string, error)) *http.Transport {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if report != nil {
				report(addr, err)
			}
			if err != nil {
				return nil, &ConnectError{Addr: addr, Err: err}
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			return c, nil
		},
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: MaxIdleConnsPerEndpoint,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     16 << 10,
		ReadBufferSize:      16 << 10,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		t.Protocols = &p
	}
	return t
}

// Close drops the cluster's idle connections (when it is not carried over).
func (c *Cluster) Close() {
	switch rt := c.RT.(type) {
	case *Client:
		rt.Close()
	case *http.Transport:
		rt.CloseIdleConnections()
	}
}

// SharesPool reports whether c and o use the same connection pool.
func (c *Cluster) SharesPool(o *Cluster) bool { return o != nil && c.RT == o.RT }

func (c *Cluster) ejected(e *Endpoint, now *int64) bool {
	until := e.ejectedUntil.Load()
	if until == 0 {
		return false
	}
	if *now == 0 {
		*now = c.now().UnixNano()
	}
	return *now < until
}

// Pick chooses an endpoint that is not ejected (all of them when every one
// is), or returns nil when the cluster has none. The caller must call Done.
func (c *Cluster) Pick() *Endpoint {
	n := len(c.Endpoints)
	if n == 0 {
		return nil
	}
	var now int64
	var e *Endpoint
	if c.LeastRequest && n > 1 {
		a, b := c.Endpoints[rand.IntN(n)], c.Endpoints[rand.IntN(n)]
		switch ae, be := c.ejected(a, &now), c.ejected(b, &now); {
		case ae && !be:
			e = b
		case be && !ae:
			e = a
		case !ae && !be:
			e = a
			if b.active.Load() < a.active.Load() {
				e = b
			}
		}
		if e == nil {
			e = c.scan(rand.IntN(n), &now)
		}
	} else {
		e = c.scan(int(c.rr.Add(1)%uint64(n)), &now)
	}
	e.active.Add(1)
	e.total.Add(1)
	return e
}

// scan returns the first endpoint from start on that is not ejected, or the
// one at start when all are (panic routing).
func (c *Cluster) scan(start int, now *int64) *Endpoint {
	n := len(c.Endpoints)
	for i := 0; i < n; i++ {
		e := c.Endpoints[(start+i)%n]
		if !c.ejected(e, now) {
			return e
		}
	}
	return c.Endpoints[start]
}

// Done reports the outcome of a request to e: failed is true for a 5xx
// response and for a connect failure, reset or timeout.
func (c *Cluster) Done(e *Endpoint, failed bool) {
	e.active.Add(-1)
	if !failed {
		if e.consecutive.Load() != 0 {
			e.consecutive.Store(0)
		}
		return
	}
	e.failures.Add(1)
	o := &c.Outlier
	if o.Consecutive5xx == 0 {
		return
	}
	if e.consecutive.Add(1) < o.Consecutive5xx {
		return
	}
	c.eject(e)
}

func (c *Cluster) eject(e *Endpoint) {
	o := &c.Outlier
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.consecutive.Load() < o.Consecutive5xx {
		return // another request ejected it meanwhile
	}
	e.consecutive.Store(0)
	if o.Enforcing < 100 && rand.Uint32N(100) >= o.Enforcing {
		return
	}
	now := c.now().UnixNano()
	if e.ejectedUntil.Load() > now {
		return
	}
	ejected := 0
	for _, x := range c.Endpoints {
		if x.ejectedUntil.Load() > now {
			ejected++
		}
	}
	// At least one endpoint may always be ejected; beyond that, no more than
	// MaxEjectionPercent of them.
	if ejected > 0 && uint64(ejected+1)*100 > uint64(o.MaxEjectionPercent)*uint64(len(c.Endpoints)) {
		return
	}
	// The ejection multiplier falls by one for every interval the endpoint
	// stayed healthy since its last ejection ended.
	if e.ejections > 0 && o.Interval > 0 && e.lastUnejects > 0 {
		healthy := now - e.lastUnejects
		if healthy > 0 {
			e.ejections -= int(healthy / int64(o.Interval))
			if e.ejections < 0 {
				e.ejections = 0
			}
		}
	}
	e.ejections++
	d := time.Duration(e.ejections) * o.BaseEjectionTime
	if d > o.MaxEjectionDuration {
		d = o.MaxEjectionDuration
	}
	until := now + int64(d)
	e.lastUnejects = until
	e.ejectedUntil.Store(until)
}

// Ejected reports whether e is ejected now.
func (c *Cluster) Ejected(e *Endpoint) bool {
	var now int64
	return c.ejected(e, &now)
}

// WriteStatus writes one line per endpoint and counter, as an admin
// /clusters page shows them.
func (c *Cluster) WriteStatus(w io.Writer) {
	proto := "http1"
	if c.H2C {
		proto = "h2c"
	}
	lb := "round_robin"
	if c.LeastRequest {
		lb = "least_request"
	}
	fmt.Fprintf(w, "%s::protocol::%s\n%s::lb_policy::%s\n", c.Name, proto, c.Name, lb)
	eps := append([]*Endpoint(nil), c.Endpoints...)
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr < eps[j].Addr })
	for _, e := range eps {
		health := "healthy"
		if c.Ejected(e) {
			health = "/failed_outlier_check"
		}
		fmt.Fprintf(w, "%s::%s::health_flags::%s\n", c.Name, e.Addr, health)
		fmt.Fprintf(w, "%s::%s::rq_active::%d\n", c.Name, e.Addr, e.active.Load())
		fmt.Fprintf(w, "%s::%s::rq_total::%d\n", c.Name, e.Addr, e.total.Load())
		fmt.Fprintf(w, "%s::%s::rq_error::%d\n", c.Name, e.Addr, e.failures.Load())
		fmt.Fprintf(w, "%s::%s::consecutive_5xx::%d\n", c.Name, e.Addr, e.consecutive.Load())
		c.mu.Lock()
		n := e.ejections
		c.mu.Unlock()
		fmt.Fprintf(w, "%s::%s::ejections::%d\n", c.Name, e.Addr, n)
	}
}

// IsConnectError reports whether err is a failure to connect.
func IsConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}
