package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Default reconnect backoff.
const (
	DefaultBackoffInitial = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultBackoffJitter  = 0.2
)

// Backoff is the delay between ADS stream attempts: Initial after the first
// failure, doubling up to Max, each delay shortened by a random fraction of
// up to Jitter. It restarts from Initial once a stream has delivered a
// response.
type Backoff struct {
	Initial time.Duration // DefaultBackoffInitial when zero
	Max     time.Duration // DefaultBackoffMax when zero
	// Jitter in [0, 1]; DefaultBackoffJitter when zero, none when negative.
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultBackoffJitter
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// delay is the wait before attempt n (n >= 1 failures so far).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}

// Options configure a Client.
type Options struct {
	// Address of the control plane's ADS server, host:port.
	Address string
	// Node identifies the proxy: Cluster is the Gateway key "<ns>/<name>"
	// whose configuration it serves, Id the proxy's own id.
	Node *corev3.Node
	// Applier receives every new view.
	Applier Applier
	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger
	// Registerer, when set, receives the client's Prometheus metrics.
	Registerer prometheus.Registerer
	// Backoff between stream attempts.
	Backoff Backoff
	// TransportCredentials secure the connection; plaintext when nil.
	TransportCredentials credentials.TransportCredentials
	// DialOptions are added to the client's gRPC dial options.
	DialOptions []grpc.DialOption
}

// Status is the client's state, for health checks and `sekisho status`.
type Status struct {
	// Connected is true while an ADS stream is open.
	Connected bool
	// LastError is why the last stream ended or could not be opened; nil
	// if none did.
	LastError   error
	LastErrorAt time.Time
	// Types is per resource type URL.
	Types map[string]TypeStatus
}

// TypeStatus is what the client did with one resource type.
type TypeStatus struct {
	// Version is the accepted version_info ("" until one is accepted).
	Version    string
	AcceptedAt time.Time
	// Subscribed lists the resource names subscribed to (named types; nil
	// for the wildcard types CDS and LDS).
	Subscribed []string
	// The last NACK, kept after later ACKs; LastNACKAt is zero if none.
	LastNACKVersion string // version rejected
	LastNACK        string // error_detail message
	LastNACKAt      time.Time
}

// Client is the proxy's ADS client. Current and Status are safe for
// concurrent use; Run is called once.
type Client struct {
	opts    Options
	log     *slog.Logger
	backoff Backoff
	metrics *metrics
	running atomic.Bool

	current atomic.Pointer[Snapshot]

	// stream is the open ADS stream, nil between streams.
	stream atomic.Pointer[adsStream]

	mu     sync.Mutex
	status Status
	// reported is, by type URL, the rejection last logged; cleared by an ACK.
	reported map[string]string
}

// New validates opts and returns a Client. It connects only in Run.
func New(opts Options) (*Client, error) {
	if opts.Address == "" {
		return nil, errors.New("creating xDS client: no control plane address")
	}
	if opts.Node == nil || opts.Node.GetId() == "" {
		return nil, errors.New("creating xDS client: node with an id is required")
	}
	if opts.Applier == nil {
		return nil, errors.New("creating xDS client: no applier")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("creating xDS client for node %q: %w", opts.Node.GetId(), err)
	}
	c := &Client{
		opts:     opts,
		log:      logger.With("component", "xds-client", "node", opts.Node.GetId(), "gateway", opts.Node.GetCluster()),
		backoff:  opts.Backoff.withDefaults(),
		metrics:  m,
		status:   Status{Types: map[string]TypeStatus{}},
		reported: map[string]string{},
	}
	m.setConnected(false)
	return c, nil
}

// Current returns the last applied view, nil before the first.
func (c *Client) Current() *Snapshot { return c.current.Load() }

// Status returns a copy of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Types = make(map[string]TypeStatus, len(c.status.Types))
	for k, v := range c.status.Types {
		v.Subscribed = slices.Clone(v.Subscribed)
		s.Types[k] = v
	}
	return s
}

// Run connects to the control plane, subscribes, applies and ACKs or NACKs
// every response, and reconnects with backoff whenever the stream is lost,
// until ctx is done. The last applied view stays current while
// disconnected. Run returns nil when ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("running xDS client for node %q: already running", c.opts.Node.GetId())
	}
	defer c.running.Store(false)

	failures := 0
	for {
		if failures > 0 {
			c.metrics.reconnect()
		}
		progressed, err := c.runStream(ctx)
		c.setConnected(false)
		if ctx.Err() != nil {
			c.log.Debug("xDS client stopped")
			return nil
		}
		if progressed {
			failures = 0
		}
		failures++
		c.setError(err)
		wait := c.backoff.delay(failures)
		// The first failure in a row is worth a line; the retries are not.
		lvl := slog.LevelDebug
		if failures == 1 {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "the ADS stream to the control plane failed; reconnecting", "address", c.opts.Address,
			"error", err, "attempt", failures, "backoff", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.log.Debug("xDS client stopped")
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) setConnected(up bool) {
	c.mu.Lock()
	c.status.Connected = up
	c.mu.Unlock()
	c.metrics.setConnected(up)
}

func (c *Client) setError(err error) {
	c.mu.Lock()
	c.status.LastError = err
	c.status.LastErrorAt = time.Now()
	c.mu.Unlock()
}

// recordAccepted notes an ACKed version of typeURL.
func (c *Client) recordAccepted(typeURL, version string) {
	c.mu.Lock()
	ts := c.status.Types[typeURL]
	ts.Version = version
	ts.AcceptedAt = time.Now()
	c.status.Types[typeURL] = ts
	delete(c.reported, typeURL)
	c.mu.Unlock()
}

// firstReport reports whether msg is a new rejection of typeURL: not the
// one logged last, with no ACK of the type since.
func (c *Client) firstReport(typeURL, msg string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reported[typeURL] == msg {
		return false
	}
	c.reported[typeURL] = msg
	return true
}

// AckServed tells the client that the resources of typeURL its Applier
// reported as not serving (a PartialError) may all serve now, as when a
// listener's port, taken when it was applied, could be bound later. If no
// newer response of the type has arrived since and servesAll (called while
// no response is being applied) confirms it, the response they came in is
// ACKed, so that the control plane learns it.
func (c *Client) AckServed(typeURL string, servesAll func() bool) {
	if s := c.stream.Load(); s != nil {
		s.ackServed(typeURL, servesAll)
	}
}

// recordNACK notes a rejected version of typeURL.
func (c *Client) recordNACK(typeURL, version, msg string) {
	c.mu.Lock()
	ts := c.status.Types[typeURL]
	ts.LastNACKVersion = version
	ts.LastNACK = msg
	ts.LastNACKAt = time.Now()
	c.status.Types[typeURL] = ts
	c.mu.Unlock()
}

// recordSubscribed notes the names subscribed to for a named type.
func (c *Client) recordSubscribed(typeURL string, names []string) {
	c.mu.Lock()
	ts := c.status.Types[typeURL]
	ts.Subscribed = slices.Clone(names)
	c.status.Types[typeURL] = ts
	c.mu.Unlock()
}

// view is the current snapshot, or an empty one before the first.
func (c *Client) view() *Snapshot {
	if s := c.current.Load(); s != nil {
		return s
	}
	return emptySnapshot()
}

// acceptedVersions returns the accepted version of every type.
func (c *Client) acceptedVersions() map[string]string {
	return maps.Clone(c.view().Versions)
}

func (c *Client) dialOptions() []grpc.DialOption {
	creds := c.opts.TransportCredentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, c.opts.DialOptions...)
}
