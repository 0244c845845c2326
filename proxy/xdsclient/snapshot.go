// Package xdsclient is the proxy's side of ADS: it subscribes to every
// resource type, decodes what the control plane sends, hands each complete
// view to the proxy, and ACKs what the proxy applied or NACKs, with the
// proxy's reason, what it could not.
//
// The client speaks state-of-the-world ADS on one stream, as Envoy does: it
// subscribes to all clusters (CDS) and listeners (LDS), and by name to the
// endpoints (EDS) of the accepted EDS clusters, the route configurations
// (RDS) the accepted listeners' HttpConnectionManagers name, and the secrets
// (SDS) their TLS contexts name with an sds_config. Each response becomes a
// new Snapshot that replaces its type and goes to the Applier; the response
// is ACKed only once applied. Subscriptions follow every applied change.
// On reconnect the client resends its accepted versions and subscriptions,
// and a resent view equal to the current one is ACKed without applying it.
//
// Each response is applied as it arrives, without waiting for the resources
// it references: a view may hold a cluster whose endpoints, or a listener
// whose route configuration or secret, have not arrived yet.
package xdsclient

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Snapshot is the proxy's whole view of its configuration: the last accepted
// resources of every type, by name. A Snapshot handed to an Applier is never
// modified afterwards; the next view is a new Snapshot (unchanged maps may be
// shared between the two).
type Snapshot struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Secrets   map[string]*tlsv3.Secret
	// Versions is the accepted version_info of each type URL.
	Versions map[string]string
}

// Applier takes a new view of the configuration. It returns an error, which
// becomes the NACK's error_detail, when it cannot honour the view; the proxy
// then keeps serving the previous one. A *PartialError instead says that it
// serves the view except the resources it names (see PartialError). Apply
// is called from one goroutine at a time.
type Applier interface {
	Apply(s *Snapshot) error
}
