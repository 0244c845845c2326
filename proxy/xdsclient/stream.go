package xdsclient

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
)

// adsStream is the state of one state-of-the-world ADS stream. It is used
// by one goroutine, which both sends and receives.
type adsStream struct {
	c      *Client
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	// mu is held while a response is handled and while a late ACK is sent
	// (AckServed, from another goroutine): it serialises every Send.
	mu       sync.Mutex
	sentNode bool
	// nonces is the nonce of the last response received, by type URL.
	nonces map[string]string
	// sent is the resource_names last sent for each named type; a type
	// absent from it was never subscribed to on this stream.
	sent map[string][]string
	// refs is what the current view references.
	refs refs
	// partial is, by type URL, the last response the Applier served all
	// but some resources of (NACKed for them): AckServed ACKs it once they
	// serve.
	partial map[string]*discoveryv3.DiscoveryResponse
}

// runStream opens one ADS stream, subscribes, and handles responses until
// the stream fails or ctx is done. progressed reports whether a response
// was received (the backoff then restarts).
func (c *Client) runStream(ctx context.Context) (progressed bool, err error) {
	conn, err := grpc.NewClient(c.opts.Address, c.dialOptions()...)
	if err != nil {
		return false, fmt.Errorf("connecting to control plane %s: %w", c.opts.Address, err)
	}
	defer func() { _ = conn.Close() }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening ADS stream to %s: %w", c.opts.Address, err)
	}
	s := &adsStream{
		c:       c,
		stream:  stream,
		nonces:  map[string]string{},
		sent:    map[string][]string{},
		partial: map[string]*discoveryv3.DiscoveryResponse{},
	}
	if s.refs, err = referencesOf(c.view()); err != nil {
		// Cannot happen: a view is applied only after its references were read.
		c.log.Error("reading references of the current view", "error", err)
	}

	// Resume from the accepted versions: a server whose content did not
	// change answers with what the proxy already serves.
	versions := c.acceptedVersions()
	for _, t := range wildcardTypes {
		if err := s.send(&discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: versions[t]}); err != nil {
			return false, err
		}
	}
	if err := s.syncSubscriptions(); err != nil {
		return false, err
	}
	c.setConnected(true)
	c.log.Debug("ADS stream to control plane open", "address", c.opts.Address)
	c.stream.Store(s)
	defer c.stream.CompareAndSwap(s, nil)

	for {
		resp, err := stream.Recv()
		if err != nil {
			return progressed, fmt.Errorf("receiving from ADS stream to %s: %w", c.opts.Address, err)
		}
		progressed = true
		s.mu.Lock()
		err = s.handle(resp)
		s.mu.Unlock()
		if err != nil {
			return progressed, err
		}
	}
}

// ackServed ACKs the last response of typeURL that was NACKed for resources
// that did not serve, if it is still the latest of its type.
func (s *adsStream) ackServed(typeURL string, servesAll func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := s.partial[typeURL]
	if resp == nil || s.nonces[typeURL] != resp.GetNonce() || !servesAll() {
		return
	}
	delete(s.partial, typeURL)
	next := s.c.view().clone()
	next.Versions[typeURL] = resp.GetVersionInfo()
	s.c.current.Store(next)
	if err := s.ack(resp); err != nil {
		// The stream is failing; its receive ends it and the client reconnects.
		s.c.log.Debug("late ACK not sent", "type", shortType(typeURL), "error", err)
		return
	}
	s.c.log.Debug("every resource of the configuration now serves; ACKed it", "type", shortType(typeURL), "version", resp.GetVersionInfo())
}

// send sends a request, with the node on the stream's first one only.
func (s *adsStream) send(req *discoveryv3.DiscoveryRequest) error {
	if !s.sentNode {
		req.Node = s.c.opts.Node
	}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("sending %s request (version %q, nonce %q) on ADS stream to %s: %w",
			shortType(req.GetTypeUrl()), req.GetVersionInfo(), req.GetResponseNonce(), s.c.opts.Address, err)
	}
	s.sentNode = true
	return nil
}

// syncSubscriptions sends a request for every named type whose referenced
// names differ from those last sent. A type is first subscribed to with a
// non-empty list only: an empty first request would subscribe to all.
func (s *adsStream) syncSubscriptions() error {
	versions := s.c.acceptedVersions()
	for _, t := range namedTypes {
		want := s.refs.names(t)
		have, subscribed := s.sent[t]
		if !subscribed && len(want) == 0 {
			continue
		}
		if subscribed && slices.Equal(have, want) {
			continue
		}
		if want == nil {
			want = []string{}
		}
		s.sent[t] = want
		s.c.recordSubscribed(t, want)
		s.c.log.Debug("xDS subscription", "type", shortType(t), "names", want)
		err := s.send(&discoveryv3.DiscoveryRequest{
			TypeUrl:       t,
			VersionInfo:   versions[t],
			ResponseNonce: s.nonces[t],
			ResourceNames: want,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// handle decodes, applies and answers one response.
func (s *adsStream) handle(resp *discoveryv3.DiscoveryResponse) error {
	c := s.c
	typeURL := resp.GetTypeUrl()
	s.nonces[typeURL] = resp.GetNonce()
	cur := c.view()
	prevVersion := cur.Versions[typeURL]

	delete(s.partial, typeURL)
	next, nextRefs, changed, err := s.build(cur, resp)
	if err != nil {
		return s.nack(resp, prevVersion, err)
	}
	if !changed && resp.GetVersionInfo() == prevVersion {
		// Nothing new (a resent view after a reconnect): it is already applied.
		c.log.Debug("xDS response unchanged", "type", shortType(typeURL), "version", resp.GetVersionInfo())
		return s.ack(resp)
	}
	var failed []ResourceError
	if err := c.opts.Applier.Apply(next); err != nil {
		pe := asPartial(err)
		if pe == nil {
			return s.nack(resp, prevVersion, fmt.Errorf("applying %s version %q: %w", shortType(typeURL), resp.GetVersionInfo(), err))
		}
		// The view serves except pe's resources. Those of another type
		// were reported with the response that brought them.
		failed = pe.of(typeURL)
	}
	if len(failed) > 0 {
		// Served in part: the view is current (what serves follows it),
		// but the accepted version stays the one kept, as Envoy keeps it,
		// so that a reconnect asks for this version again. (next belongs
		// to the Applier now: the current view is a copy.)
		kept := next.clone()
		kept.Versions[typeURL] = prevVersion
		c.current.Store(kept)
	} else {
		c.current.Store(next)
	}
	s.refs = nextRefs
	c.log.Debug("xDS update applied", "type", shortType(typeURL), "version", resp.GetVersionInfo(),
		"previous_version", prevVersion, "resources", len(resp.GetResources()))
	if len(failed) > 0 {
		s.partial[typeURL] = resp
		// The Applier logged each resource that does not serve.
		msg, details := nackDetail(typeURL, failed)
		if err := s.sendNACK(resp, prevVersion, msg, details, slog.LevelDebug); err != nil {
			return err
		}
	} else if err := s.ack(resp); err != nil {
		return err
	}
	return s.syncSubscriptions()
}

// build decodes resp and returns the view with its type replaced, the
// references of that view, and whether the content of any type changed.
func (s *adsStream) build(cur *Snapshot, resp *discoveryv3.DiscoveryResponse) (*Snapshot, refs, bool, error) {
	typeURL := resp.GetTypeUrl()
	d, err := decodeResponse(typeURL, resp.GetResources())
	if err != nil {
		return nil, refs{}, false, fmt.Errorf("decoding response version %q: %w", resp.GetVersionInfo(), err)
	}
	next := cur.clone()
	next.Versions[typeURL] = resp.GetVersionInfo()
	changed := false
	switch typeURL {
	case ClusterType:
		changed = !equalMaps(cur.Clusters, d.clusters)
		next.Clusters = d.clusters
	case ListenerType:
		changed = !equalMaps(cur.Listeners, d.listeners)
		next.Listeners = d.listeners
	case EndpointType:
		next.Endpoints = mergeNamed(cur.Endpoints, d.endpoints, s.sent[typeURL])
		changed = !equalMaps(cur.Endpoints, next.Endpoints)
	case RouteType:
		next.Routes = mergeNamed(cur.Routes, d.routes, s.sent[typeURL])
		changed = !equalMaps(cur.Routes, next.Routes)
	case SecretType:
		next.Secrets = mergeNamed(cur.Secrets, d.secrets, s.sent[typeURL])
		changed = !equalMaps(cur.Secrets, next.Secrets)
	}
	if !isWildcard(typeURL) {
		return next, s.refs, changed, nil
	}
	r, err := referencesOf(next)
	if err != nil {
		return nil, refs{}, false, fmt.Errorf("response version %q: %w", resp.GetVersionInfo(), err)
	}
	// Resources no longer referenced leave the view with their references.
	next.Endpoints = filterNames(next.Endpoints, r.endpoints)
	next.Routes = filterNames(next.Routes, r.routes)
	next.Secrets = filterNames(next.Secrets, r.secrets)
	return next, r, changed, nil
}

func (s *adsStream) ack(resp *discoveryv3.DiscoveryResponse) error {
	typeURL := resp.GetTypeUrl()
	err := s.send(&discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(),
		ResourceNames: s.sent[typeURL],
	})
	if err != nil {
		return fmt.Errorf("ACKing: %w", err)
	}
	s.c.recordAccepted(typeURL, resp.GetVersionInfo())
	s.c.metrics.update(typeURL, "ack")
	return nil
}

// nack rejects resp, keeping kept as the accepted version.
func (s *adsStream) nack(resp *discoveryv3.DiscoveryResponse, kept string, cause error) error {
	return s.sendNACK(resp, kept, cause.Error(), nil, slog.LevelError)
}

// sendNACK rejects resp (all of it, or the resources msg names), keeping
// kept as the accepted version. The rejection is logged at level once, and
// at DEBUG each time the control plane resends it.
func (s *adsStream) sendNACK(resp *discoveryv3.DiscoveryResponse, kept, msg string, details []*anypb.Any, level slog.Level) error {
	typeURL := resp.GetTypeUrl()
	lvl := slog.LevelDebug
	if s.c.firstReport(typeURL, msg) {
		lvl = level
	}
	s.c.log.Log(context.Background(), lvl, "the proxy cannot serve configuration from the control plane and keeps the previous one",
		"type", shortType(typeURL), "rejected_version", resp.GetVersionInfo(), "kept_version", kept, "error", msg)
	err := s.send(&discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   kept,
		ResponseNonce: resp.GetNonce(),
		ResourceNames: s.sent[typeURL],
		ErrorDetail:   &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg, Details: details},
	})
	if err != nil {
		return fmt.Errorf("NACKing: %w", err)
	}
	s.c.recordNACK(typeURL, resp.GetVersionInfo(), msg)
	s.c.metrics.update(typeURL, "nack")
	return nil
}
