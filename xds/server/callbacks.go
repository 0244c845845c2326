package server

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/peer"
)

var _ serverv3.Callbacks = (*Server)(nil)

// NodeStatus is one connected xDS stream of a proxy.
type NodeStatus struct {
	NodeID      string
	Gateway     string // snapshot key, see GatewayKey
	StreamID    int64  // unique per mode (sotw, delta)
	Delta       bool   // incremental xDS stream
	TypeURL     string // "" for ADS, else the per-type service's type
	Peer        string
	ConnectedAt time.Time
	Types       map[string]TypeStatus // by resource type URL
}

// TypeStatus is what a proxy did with the responses of one resource type.
type TypeStatus struct {
	// AckedVersion is the last version the proxy accepted (for delta, the
	// type's system version of the response it ACKed).
	AckedVersion string
	AckedAt      time.Time
	// The last NACK, kept after later ACKs; LastNACKAt is zero if none.
	LastNACKVersion string // version the proxy rejected
	LastNACKMessage string // error_detail.message
	LastNACKCode    int32  // error_detail.code
	LastNACKAt      time.Time
	// LastNACKResources is what the NACK's details name (google.rpc.BadRequest
	// field violations): the cause by resource name; nil when it has none.
	LastNACKResources map[string]string
}

// streamKey identifies a stream: sotw and delta number streams separately.
type streamKey struct {
	delta bool
	id    int64
}

type sentResponse struct {
	nonce   string
	version string
}

type streamState struct {
	status NodeStatus
	sent   map[string]sentResponse // by type URL: last response sent
}

// Nodes returns the connected streams sorted by gateway, node id, stream.
func (s *Server) Nodes() []NodeStatus {
	s.streamMu.Lock()
	out := make([]NodeStatus, 0, len(s.streams))
	for _, st := range s.streams {
		ns := st.status
		ns.Types = maps.Clone(st.status.Types)
		out = append(out, ns)
	}
	s.streamMu.Unlock()
	slices.SortFunc(out, func(a, b NodeStatus) int {
		if c := strings.Compare(a.Gateway, b.Gateway); c != 0 {
			return c
		}
		if c := strings.Compare(a.NodeID, b.NodeID); c != 0 {
			return c
		}
		if a.Delta != b.Delta {
			if a.Delta {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.StreamID, b.StreamID)
	})
	return out
}

// connectedGateways counts open streams per gateway key.
func (s *Server) connectedGateways() map[string]int {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	out := make(map[string]int)
	for _, st := range s.streams {
		if st.status.NodeID != "" || st.status.Gateway != "" {
			out[st.status.Gateway]++
		}
	}
	return out
}

func modeName(delta bool) string {
	if delta {
		return "delta"
	}
	return "sotw"
}

func (s *Server) openStream(ctx context.Context, key streamKey, typeURL string) {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	s.streamMu.Lock()
	s.streams[key] = &streamState{
		status: NodeStatus{
			StreamID:    key.id,
			Delta:       key.delta,
			TypeURL:     typeURL,
			Peer:        addr,
			ConnectedAt: time.Now(),
			Types:       make(map[string]TypeStatus),
		},
		sent: make(map[string]sentResponse),
	}
	s.streamMu.Unlock()
	s.metrics.streams.Inc()
	s.log.Debug("xDS stream opened", "mode", modeName(key.delta), "stream_id", key.id,
		"type_url", typeURL, "peer", addr)
}

func (s *Server) closeStream(key streamKey, node *core.Node) {
	s.streamMu.Lock()
	st, ok := s.streams[key]
	delete(s.streams, key)
	s.streamMu.Unlock()
	if !ok {
		return
	}
	s.metrics.streams.Dec()
	nodeID, gw := st.status.NodeID, st.status.Gateway
	if nodeID == "" && node != nil {
		nodeID, gw = node.GetId(), GatewayKey(node)
	}
	s.log.Debug("xDS stream closed", "mode", modeName(key.delta), "stream_id", key.id,
		"node", nodeID, "gateway", gw, "duration", time.Since(st.status.ConnectedAt).Round(time.Millisecond))
	s.dataPlaneChanged(gw, st.status.TypeURL)
}

// request records a request's node and, when it answers a response (has a
// nonce), the ACK or NACK it carries. ackedVersion is the version the client
// says it holds (sotw), or "" to use the version of the answered response.
// For a NACK of the latest response it returns the rejected version.
func (s *Server) request(key streamKey, node *core.Node, typeURL, nonce, ackedVersion string, detail *rpcstatus.Status) (rejected string) {
	now := time.Now()
	s.streamMu.Lock()
	st, ok := s.streams[key]
	if !ok {
		s.streamMu.Unlock()
		return ""
	}
	if st.status.NodeID == "" && st.status.Gateway == "" && node != nil {
		st.status.NodeID = node.GetId()
		st.status.Gateway = GatewayKey(node)
	}
	nodeID, gw := st.status.NodeID, st.status.Gateway
	if nonce == "" {
		s.streamMu.Unlock()
		s.log.Debug("xDS subscription", "mode", modeName(key.delta), "stream_id", key.id,
			"node", nodeID, "gateway", gw, "type_url", typeURL)
		return ""
	}
	sent := st.sent[typeURL]
	answered := ""
	if sent.nonce == nonce {
		answered = sent.version
	}
	ts := st.status.Types[typeURL]
	reportKey := gw + "\x00" + typeURL
	if detail != nil {
		ts.LastNACKVersion = answered
		ts.LastNACKMessage = detail.GetMessage()
		ts.LastNACKCode = detail.GetCode()
		ts.LastNACKAt = now
		ts.LastNACKResources = rejectedResources(detail)
		st.status.Types[typeURL] = ts
		// The same rejection is worth one ERROR line, not one per replica
		// or resend.
		lvl := slog.LevelDebug
		if s.reported[reportKey] != detail.GetMessage() {
			s.reported[reportKey] = detail.GetMessage()
			lvl = s.nackLevel
		}
		s.streamMu.Unlock()
		s.metrics.nacks.WithLabelValues(typeURL).Inc()
		rejected = answered
		s.log.Log(context.Background(), lvl, "a proxy cannot serve the configuration of its gateway and keeps its previous one",
			"gateway", gw, "node", nodeID, "type", shortType(typeURL), "rejected_version", answered,
			"kept_version", ts.AckedVersion, "error", detail.GetMessage(), "stream_id", key.id, "mode", modeName(key.delta))
		s.dataPlaneChanged(gw, typeURL)
		return rejected
	}
	if ackedVersion == "" {
		ackedVersion = answered
	}
	changed := ts.AckedVersion != ackedVersion || ts.LastNACKAt.After(ts.AckedAt)
	ts.AckedVersion = ackedVersion
	ts.AckedAt = now
	st.status.Types[typeURL] = ts
	delete(s.reported, reportKey)
	s.streamMu.Unlock()
	s.log.Debug("xDS ACK", "mode", modeName(key.delta), "stream_id", key.id,
		"node", nodeID, "gateway", gw, "type_url", typeURL, "version", ackedVersion, "nonce", nonce)
	if changed {
		s.dataPlaneChanged(gw, typeURL)
	}
	return ""
}

// dataPlaneChanged tells Options.OnDataPlaneChange that what the proxies of
// gateway do with its listeners may have changed.
func (s *Server) dataPlaneChanged(gateway, typeURL string) {
	if s.onDataPlane != nil && gateway != "" && (typeURL == "" || typeURL == resourcev3.ListenerType) {
		s.onDataPlane(gateway)
	}
}

func (s *Server) response(key streamKey, typeURL, nonce, version string, resources, removed int) {
	s.streamMu.Lock()
	st, ok := s.streams[key]
	nodeID, gw := "", ""
	if ok {
		st.sent[typeURL] = sentResponse{nonce: nonce, version: version}
		nodeID, gw = st.status.NodeID, st.status.Gateway
	}
	s.streamMu.Unlock()
	s.metrics.pushes.WithLabelValues(typeURL).Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("xDS push", "mode", modeName(key.delta), "stream_id", key.id, "node", nodeID,
			"gateway", gw, "type_url", typeURL, "version", version, "nonce", nonce,
			"resources", resources, "removed", removed)
	}
}

// OnStreamOpen implements the go-control-plane callbacks.
func (s *Server) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	s.openStream(ctx, streamKey{id: id}, typeURL)
	return nil
}

// OnStreamClosed implements the go-control-plane callbacks.
func (s *Server) OnStreamClosed(id int64, node *core.Node) {
	s.closeStream(streamKey{id: id}, node)
}

// OnStreamRequest implements the go-control-plane callbacks.
//
// A NACK carries the version the proxy kept; the cache would answer it at
// once with the version just rejected, and a proxy that rejects it again
// would loop. The request is rewritten to carry the rejected version, so the
// proxy gets this type again only when its content changes (or it
// subscribes to new names).
func (s *Server) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	rejected := s.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		req.GetVersionInfo(), req.GetErrorDetail())
	if rejected != "" {
		req.VersionInfo = rejected
	}
	return nil
}

// OnStreamResponse implements the go-control-plane callbacks.
func (s *Server) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.response(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo(), len(resp.GetResources()), 0)
}

// OnDeltaStreamOpen implements the go-control-plane callbacks.
func (s *Server) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	s.openStream(ctx, streamKey{delta: true, id: id}, typeURL)
	return nil
}

// OnDeltaStreamClosed implements the go-control-plane callbacks.
func (s *Server) OnDeltaStreamClosed(id int64, node *core.Node) {
	s.closeStream(streamKey{delta: true, id: id}, node)
}

// OnStreamDeltaRequest implements the go-control-plane callbacks.
func (s *Server) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	_ = s.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		"", req.GetErrorDetail())
	return nil
}

// OnStreamDeltaResponse implements the go-control-plane callbacks.
func (s *Server) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	s.response(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo(),
		len(resp.GetResources()), len(resp.GetRemovedResources()))
}

// OnFetchRequest implements the go-control-plane callbacks (REST fetch is
// not registered; nothing to record).
func (s *Server) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error { return nil }

// OnFetchResponse implements the go-control-plane callbacks.
func (s *Server) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// shortType is the last element of a type URL, for log keys.
func shortType(typeURL string) string {
	if i := strings.LastIndexByte(typeURL, '.'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}
