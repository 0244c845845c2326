// Package server serves xDS v3 to sekisho proxies (and Envoy) over the
// Aggregated Discovery Service, both state-of-the-world and delta, from a
// snapshot cache holding one snapshot per Gateway.
//
// # Snapshot keys
//
// Snapshots are keyed by Gateway ("<namespace>/<name>"). A proxy is mapped to
// its Gateway by its xDS node: node.cluster when it is non-empty, else
// node.id (see GatewayKey). Several replicas of one Gateway's proxy therefore
// set node.cluster to the Gateway key and share one snapshot while keeping
// distinct node ids, which Nodes reports separately.
//
// # Versions
//
// Each resource type of a snapshot is versioned by a content hash of its
// resources (deterministic proto marshalling, sorted by name), and each
// resource by the hash of its own bytes. A type whose resources did not change
// keeps its version and is not re-sent to state-of-the-world clients; delta
// clients get only the resources whose hash changed and the names removed.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// DefaultShutdownGrace bounds how long Serve waits for streams to end after
// its context is cancelled before closing them.
const DefaultShutdownGrace = 5 * time.Second

// Options configure a Server.
type Options struct {
	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger
	// Registerer, when set, receives the server's Prometheus metrics.
	Registerer prometheus.Registerer
	// ShutdownGrace bounds the graceful stop in Serve; DefaultShutdownGrace when zero.
	ShutdownGrace time.Duration
	// ProxiesLogHere says that the proxies log where the server does
	// (`sekisho run`): a NACK is then logged at DEBUG, since the proxy has
	// logged why at ERROR; otherwise at ERROR, once.
	ProxiesLogHere bool
	// OnDataPlaneChange, when set, is called with a gateway key when what
	// its proxies do with its listeners may have changed (an ACK or NACK of
	// listeners, a proxy that leaves); DataPlane says what they do. It must
	// not block.
	OnDataPlaneChange func(gateway string)
}

// Server is sekisho's ADS server. It is safe for concurrent use.
type Server struct {
	log     *slog.Logger
	grace   time.Duration
	cache   cachev3.SnapshotCache
	xds     serverv3.Server
	metrics *metrics

	setMu    sync.Mutex               // serialises Set
	gateways map[string]*gatewayState // accepted state per gateway key

	streamMu sync.Mutex
	streams  map[streamKey]*streamState
	// reported is the NACK message last logged at ERROR, by gateway and
	// type; an ACK of the type clears it. Guarded by streamMu.
	reported map[string]string

	onDataPlane func(gateway string)
	nackLevel   slog.Level
}

// gatewayState is what was last installed for one gateway.
type gatewayState struct {
	versions map[resourcev3.Type]string
	// tombstone marks a gateway removed from the desired state while proxies
	// were still connected: it serves an empty snapshot until they leave.
	tombstone bool
}

// GatewayKey returns the snapshot key of a proxy: node.cluster when
// non-empty, else node.id.
func GatewayKey(node *core.Node) string {
	if c := node.GetCluster(); c != "" {
		return c
	}
	return node.GetId()
}

// gatewayHash maps xDS nodes to snapshot keys for the cache.
type gatewayHash struct{}

func (gatewayHash) ID(node *core.Node) string { return GatewayKey(node) }

// New creates a Server with an empty snapshot cache.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "xds-server")
	grace := opts.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	s := &Server{
		log:      logger,
		grace:    grace,
		metrics:  newMetrics(),
		gateways: make(map[string]*gatewayState),
		streams:  make(map[streamKey]*streamState),
		reported: make(map[string]string),

		onDataPlane: opts.OnDataPlaneChange,
		nackLevel:   slog.LevelError,
	}
	if opts.ProxiesLogHere {
		s.nackLevel = slog.LevelDebug
	}
	cl := cacheLogger{log: logger.With("subsystem", "cache")}
	s.cache = cachev3.NewSnapshotCache(true, gatewayHash{}, cl)
	s.xds = serverv3.NewServer(context.Background(), s.cache, s,
		sotw.WithOrderedADS(), sotw.WithLogger(cl))
	if opts.Registerer != nil {
		if err := s.metrics.register(opts.Registerer); err != nil {
			logger.Error("xDS metrics not registered", "error", err)
		}
	}
	return s
}

// Snapshot returns the snapshot a Gateway's proxies are served now.
func (s *Server) Snapshot(gateway string) (cachev3.ResourceSnapshot, error) {
	snap, err := s.cache.GetSnapshot(gateway)
	if err != nil {
		return nil, fmt.Errorf("snapshot of gateway %s: %w", gateway, err)
	}
	return snap, nil
}

// Register registers ADS (state-of-the-world and delta) and the per-type
// discovery services (CDS, EDS, LDS, RDS, SDS) on g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
}

// Serve serves xDS on lis until ctx is cancelled, then stops gracefully,
// closing streams still open after the shutdown grace. It returns nil after a
// cancel, or the error that made serving fail.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.MaxConcurrentStreams(1<<20),
	)
	s.Register(g)

	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	s.log.Info("serving xDS", "address", lis.Addr().String())

	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}

	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Info("xDS streams still open after shutdown grace, closing them", "grace", s.grace)
		g.Stop()
		<-done
	}
	<-errc
	s.log.Info("stopped serving xDS", "address", lis.Addr().String())
	return nil
}

// Set replaces the whole desired state: one entry per Gateway key, each the
// xDS resources by type URL. Keys absent from desired have their snapshot
// cleared (proxies still connected to a removed gateway get an empty
// snapshot instead, so their watches stay live, until they disconnect).
//
// A gateway whose resources did not change is not touched. A gateway whose
// snapshot fails validation (ValidateAll of each resource, unique names,
// snapshot consistency) is refused: its previous snapshot keeps serving, the
// other gateways are still updated, and the returned error names every
// refused gateway and the resource at fault.
func (s *Server) Set(ctx context.Context, desired map[string]map[resourcev3.Type][]types.Resource) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()

	keys := make([]string, 0, len(desired))
	for k := range desired {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var errs []error
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("setting xDS snapshots: %w", err))
			break
		}
		if err := s.setGateway(ctx, key, desired[key]); err != nil {
			s.metrics.rejected.Inc()
			s.log.Error("gateway snapshot refused, previous snapshot kept", "gateway", key, "error", err)
			errs = append(errs, fmt.Errorf("setting xDS snapshot of gateway %q: %w", key, err))
		}
	}

	connected := s.connectedGateways()
	for key, st := range s.gateways {
		if _, ok := desired[key]; ok {
			continue
		}
		if connected[key] > 0 {
			if st.tombstone {
				continue
			}
			if err := s.setGateway(ctx, key, nil); err != nil {
				errs = append(errs, fmt.Errorf("emptying xDS snapshot of removed gateway %q: %w", key, err))
				continue
			}
			s.gateways[key].tombstone = true
			s.log.Info("gateway removed, serving an empty snapshot to its connected proxies", "gateway", key, "streams", connected[key])
			continue
		}
		s.cache.ClearSnapshot(key)
		delete(s.gateways, key)
		s.log.Info("gateway removed, snapshot cleared", "gateway", key)
	}
	return errors.Join(errs...)
}

// setGateway hashes, validates and installs one gateway's snapshot, unless
// its content is unchanged.
func (s *Server) setGateway(ctx context.Context, key string, byType map[resourcev3.Type][]types.Resource) error {
	sets, err := hashGateway(byType)
	if err != nil {
		return err
	}
	versions := versionsOf(sets)
	prev := s.gateways[key]
	var prevVersions map[resourcev3.Type]string
	if prev != nil {
		if !prev.tombstone && sameVersions(prev.versions, versions) {
			return nil
		}
		prevVersions = prev.versions
	}
	if err := validateTypes(sets, prevVersions); err != nil {
		return err
	}
	snap, err := buildSnapshot(sets)
	if err != nil {
		return err
	}
	if err := s.cache.SetSnapshot(ctx, key, snap); err != nil {
		return fmt.Errorf("installing snapshot in cache: %w", err)
	}
	s.gateways[key] = &gatewayState{versions: versions}
	s.metrics.snapshots.Inc()
	attrs := []any{"gateway", key}
	for _, t := range typeURLs {
		if prevVersions[t] != versions[t] && (len(sets[t].items) > 0 || prevVersions != nil) {
			attrs = append(attrs, shortType(t), versions[t])
		}
	}
	s.log.Debug("gateway snapshot updated", attrs...)
	return nil
}

// cacheLogger adapts go-control-plane's logger interface to slog. Its
// info-level messages are per-watch chatter, so they go to Debug.
type cacheLogger struct{ log *slog.Logger }

func (l cacheLogger) logf(level slog.Level, format string, args []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (l cacheLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args) }
func (l cacheLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args) }
func (l cacheLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args) }
