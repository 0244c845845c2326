// Package configsub is how sekisho's services (the external authorization and
// rate-limit services) get their configuration from the control plane: over
// the same ADS server the proxies use, as one extension config resource
// (envoy.config.core.v3.TypedExtensionConfig, ECDS) whose typed_config is a
// google.protobuf.Struct holding the service's JSON configuration.
//
// The control plane serves each service's resource under its own snapshot
// key (the node's cluster): "sekisho:authz" and "sekisho:ratelimit", names no
// Gateway can have.
package configsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Snapshot keys and resource names of the services.
const (
	AuthzNode         = "sekisho:authz"
	AuthzResource     = "sekisho.authz"
	RateLimitNode     = "sekisho:ratelimit"
	RateLimitResource = "sekisho.ratelimit"
)

// Resource packs a service's configuration (any value that marshals to a
// JSON object) as the extension config the control plane serves.
func Resource(name string, cfg any) (*corev3.TypedExtensionConfig, error) {
	s, err := toStruct(cfg)
	if err != nil {
		return nil, fmt.Errorf("packing the configuration of %s: %w", name, err)
	}
	a, err := anypb.New(s)
	if err != nil {
		return nil, fmt.Errorf("packing the configuration of %s: %w", name, err)
	}
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: a}, nil
}

// Decode returns the JSON configuration inside an extension config.
func Decode(tec *corev3.TypedExtensionConfig) ([]byte, error) {
	s := &structpb.Struct{}
	if err := tec.GetTypedConfig().UnmarshalTo(s); err != nil {
		return nil, fmt.Errorf("extension config %q: typed_config is not a google.protobuf.Struct: %w", tec.GetName(), err)
	}
	return protojson.Marshal(s)
}

// Options configures a Subscriber.
type Options struct {
	// Address of the control plane's ADS server, host:port.
	Address string
	// Node is the snapshot key (AuthzNode, RateLimitNode); ID identifies
	// this replica in the control plane's logs.
	Node, ID string
	// Resource is the name of the extension config.
	Resource string
	// Apply takes each new configuration (JSON). An error refuses it (NACK):
	// the service keeps the last one it applied.
	Apply  func(json []byte) error
	Logger *slog.Logger
}

// Subscriber keeps a service's configuration up to date. It reconnects with
// backoff; while the control plane is away the service keeps its last
// configuration.
type Subscriber struct {
	opts    Options
	log     *slog.Logger
	applied atomic.Bool
	mu      sync.Mutex
	version string
	lastErr error
}

// New returns a Subscriber; Run starts it.
func New(opts Options) (*Subscriber, error) {
	if opts.Address == "" || opts.Node == "" || opts.Resource == "" || opts.Apply == nil {
		return nil, errors.New("config subscriber: address, node, resource and apply are required")
	}
	if opts.ID == "" {
		opts.ID = opts.Node
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Subscriber{opts: opts, log: log.With("component", "config", "resource", opts.Resource)}, nil
}

// Ready reports nil once a configuration has been applied.
func (s *Subscriber) Ready() error {
	if s.applied.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil {
		return fmt.Errorf("no configuration from the control plane at %s yet: %w", s.opts.Address, s.lastErr)
	}
	return fmt.Errorf("no configuration from the control plane at %s yet", s.opts.Address)
}

// Version is the version of the configuration applied last.
func (s *Subscriber) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Run subscribes until ctx ends.
func (s *Subscriber) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(s.opts.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dialling the control plane at %s: %w", s.opts.Address, err)
	}
	defer conn.Close()
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	delay := 250 * time.Millisecond
	for {
		progressed, err := s.stream(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if progressed {
			delay = 250 * time.Millisecond
		}
		wait := delay - time.Duration(rand.Int64N(int64(delay)/5+1))
		s.log.Warn("configuration stream to the control plane ended, reconnecting", "address", s.opts.Address, "error", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (s *Subscriber) stream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	node := &corev3.Node{Id: s.opts.ID, Cluster: s.opts.Node}
	req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ExtensionConfigType, ResourceNames: []string{s.opts.Resource}, VersionInfo: s.Version()}
	if err := st.Send(req); err != nil {
		return false, err
	}
	progressed := false
	for {
		resp, err := st.Recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		next := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ExtensionConfigType, ResourceNames: []string{s.opts.Resource}, ResponseNonce: resp.GetNonce()}
		if err := s.apply(resp); err != nil {
			s.log.Warn("configuration refused, keeping the previous one", "version", resp.GetVersionInfo(), "error", err)
			next.VersionInfo = s.Version()
			next.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			next.VersionInfo = resp.GetVersionInfo()
		}
		if err := st.Send(next); err != nil {
			return progressed, err
		}
	}
}

func (s *Subscriber) apply(resp *discoveryv3.DiscoveryResponse) error {
	for _, r := range resp.GetResources() {
		tec := &corev3.TypedExtensionConfig{}
		if err := r.UnmarshalTo(tec); err != nil {
			return fmt.Errorf("decoding an extension config: %w", err)
		}
		if tec.GetName() != s.opts.Resource {
			continue
		}
		raw, err := Decode(tec)
		if err != nil {
			return err
		}
		if err := s.opts.Apply(raw); err != nil {
			return err
		}
		s.mu.Lock()
		s.version = resp.GetVersionInfo()
		s.lastErr = nil
		s.mu.Unlock()
		s.applied.Store(true)
		s.log.Debug("configuration applied", "version", resp.GetVersionInfo())
		return nil
	}
	return fmt.Errorf("response version %q has no extension config %q", resp.GetVersionInfo(), s.opts.Resource)
}

func toStruct(cfg any) (*structpb.Struct, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil, err
	}
	return s, nil
}
