// Package translate turns one ir.Gateway into the Envoy v3 xDS resources its
// proxies are served over ADS: Listeners, RouteConfigurations, Clusters,
// ClusterLoadAssignments and Secrets. Translate is a pure function: the same IR
// always gives the same resources, in the same order, with the IR's names used
// verbatim as resource names.
//
// The output is deliberately small, so that sekisho's own proxy can honour every
// field of it as Envoy does. These are the only typed configs (google.protobuf.Any
// payloads) it emits, and where:
//
//   - envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager:
//     the single network filter of every filter chain
//     (filter name "envoy.filters.network.http_connection_manager").
//   - envoy.extensions.filters.http.router.v3.Router: the single HTTP filter of
//     every connection manager (filter name "envoy.filters.http.router").
//   - envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector: the
//     listener filter of HTTPS listeners (name "envoy.filters.listener.tls_inspector").
//   - envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext: the
//     transport socket of HTTPS filter chains (name "envoy.transport_sockets.tls").
//   - envoy.extensions.upstreams.http.v3.HttpProtocolOptions: in
//     Cluster.typed_extension_protocol_options of h2c clusters, with
//     explicit_http_config.http2_protocol_options.
//
// Enum fields set to their proto default (codec_type AUTO, lb_policy
// ROUND_ROBIN, append_action APPEND_IF_EXISTS_OR_ADD, response_code
// MOVED_PERMANENTLY, denominator HUNDRED) are set on purpose even though they
// do not show in JSON.
//
// Every config source is ADS with resource_api_version V3: RDS for route
// tables, EDS for endpoints and SDS for certificates.
//
// Choices the Gateway API leaves to the implementation, made here:
//
//   - A route with no IR timeout gets timeout 0s (no timeout), not Envoy's
//     default of 15s. The Gateway API leaves an unset request timeout to the
//     implementation and says "0s" disables it; the IR has no way to tell
//     the two apart, and sekisho does not cut long requests (streams, gRPC,
//     websockets) that no one asked it to bound.
//   - A retry policy retries connect failures and resets, plus the IR's
//     status codes (retriable-status-codes) when it lists any. A per-try
//     timeout without retries is a retry policy with num_retries 0.
//   - Clusters connect within 2s unless the IR says otherwise.
//   - Every cluster has passive outlier detection with conservative values: an
//     endpoint is ejected after 5 consecutive 5xx (enforced always), checked
//     every 5s, for 30s times the number of ejections, and never more than 50%
//     of a cluster's endpoints at once. Success-rate ejection is switched off
//     (enforcing_success_rate 0) so that only consecutive 5xx eject.
//   - A redirect that names a scheme but no port gets port_redirect set to the
//     scheme's well-known port (http 80, https 443), as the Gateway API says.
//     A redirect that names neither keeps the request's own port.
//   - Path matches are on the normalised path (normalize_path, merge_slashes,
//     and requests with escaped slashes rejected). A PathPrefix is matched
//     element-wise (path_separated_prefix, with the value's trailing '/'
//     dropped as the spec says), except "/" which is the plain prefix "/".
//   - Route tables are not validated against the cluster set
//     (validate_clusters false): the share of a Forward whose backends are
//     invalid is routed to InvalidBackendCluster, a cluster that is never
//     defined, and answered 500 through cluster_not_found_response_code.
package translate

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sekisho/sekisho/ir"
)

// Names of the filters and extensions sekisho emits.
const (
	HTTPConnectionManagerFilter = "envoy.filters.network.http_connection_manager"
	RouterFilter                = "envoy.filters.http.router"
	TLSInspectorFilter          = "envoy.filters.listener.tls_inspector"
	TLSTransportSocket          = "envoy.transport_sockets.tls"
	HTTPProtocolOptionsKey      = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// InvalidBackendCluster is the cluster name the invalid share of a Forward is
// routed to. It is never defined, so that share is answered 500
// (cluster_not_found_response_code INTERNAL_SERVER_ERROR). It cannot clash
// with an IR cluster name ("<namespace>/<service>:<port>"), and Translate
// rejects an IR cluster that uses it.
const InvalidBackendCluster = "sekisho.invalid-backend"

// MetadataNamespace is the filter_metadata key under which every route carries
// where it came from: "route" (the IR route name), "kind", "namespace",
// "name", "rule", "match", "ruleName" (when the rule has one) and "grpc" (true
// for GRPCRoute forwards).
const MetadataNamespace = "sekisho.dev"

// Defaults applied when the IR leaves a value unset.
const (
	DefaultConnectTimeoutSeconds = 2
	MaxRequestHeadersKB          = 60
)

// Resources is the xDS snapshot of one Gateway. Each slice is in a stable
// order: listeners in IR order, one route table per filter chain in listener
// then chain order, clusters and their load assignments in IR order, secrets
// in IR order.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// Translate turns gw into xDS resources. Every resource it returns passes
// ValidateAll, and the set passes Validate. An error names the IR object and
// field that could not be translated.
func Translate(gw *ir.Gateway) (*Resources, error) {
	if gw == nil {
		return nil, errors.New("translating gateway: gateway is nil")
	}
	t := &translator{
		gw:       gw,
		clusters: make(map[string]bool, len(gw.Clusters)),
		secrets:  make(map[string]bool, len(gw.Secrets)),
	}
	res, err := t.translate()
	if err != nil {
		return nil, fmt.Errorf("translating gateway %q: %w", gw.Name, err)
	}
	if err := res.Validate(); err != nil {
		return nil, fmt.Errorf("translating gateway %q: %w", gw.Name, err)
	}
	return res, nil
}

type translator struct {
	gw       *ir.Gateway
	clusters map[string]bool // IR cluster names
	secrets  map[string]bool // IR secret names
	// listenerPort is the port of the listener being translated.
	listenerPort uint32
}

func (t *translator) translate() (*Resources, error) {
	res := &Resources{}
	// Clusters and secrets first: routes and chains refer to them.
	for i, c := range t.gw.Clusters {
		if c == nil {
			return nil, fmt.Errorf("clusters[%d] is nil", i)
		}
		if c.Name == "" {
			return nil, fmt.Errorf("clusters[%d]: name is empty", i)
		}
		if c.Name == InvalidBackendCluster {
			return nil, fmt.Errorf("cluster %q: name is reserved", c.Name)
		}
		if t.clusters[c.Name] {
			return nil, fmt.Errorf("cluster %q: name is used twice", c.Name)
		}
		t.clusters[c.Name] = true
		cl, err := translateCluster(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		res.Clusters = append(res.Clusters, cl)
		cla, err := translateEndpoints(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		res.Endpoints = append(res.Endpoints, cla)
	}
	for _, svc := range []struct {
		name, field string
		addrs       []ir.ServiceAddress
	}{{AuthzCluster, "authzService", t.gw.AuthzService}, {RateLimitCluster, "rateLimitService", t.gw.RateLimitService}} {
		if len(svc.addrs) == 0 {
			continue
		}
		c, err := serviceCluster(svc.name, svc.addrs)
		if err != nil {
			return nil, fmt.Errorf("%s%w", svc.field, err)
		}
		t.clusters[c.Name] = true
		cl, err := translateCluster(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		res.Clusters = append(res.Clusters, cl)
		cla, err := translateEndpoints(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		res.Endpoints = append(res.Endpoints, cla)
	}
	for i, s := range t.gw.Secrets {
		if s == nil {
			return nil, fmt.Errorf("secrets[%d] is nil", i)
		}
		if s.Name == "" {
			return nil, fmt.Errorf("secrets[%d]: name is empty", i)
		}
		if t.secrets[s.Name] {
			return nil, fmt.Errorf("secret %q: name is used twice", s.Name)
		}
		t.secrets[s.Name] = true
		sec, err := translateSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", s.Name, err)
		}
		res.Secrets = append(res.Secrets, sec)
	}

	listenerNames := make(map[string]bool, len(t.gw.Listeners))
	chainNames := make(map[string]bool)
	for i, l := range t.gw.Listeners {
		if l == nil {
			return nil, fmt.Errorf("listeners[%d] is nil", i)
		}
		if l.Name == "" {
			return nil, fmt.Errorf("listeners[%d]: name is empty", i)
		}
		if listenerNames[l.Name] {
			return nil, fmt.Errorf("listener %q: name is used twice", l.Name)
		}
		listenerNames[l.Name] = true
		lis, routes, err := t.translateListener(l, chainNames)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		res.Listeners = append(res.Listeners, lis)
		res.Routes = append(res.Routes, routes...)
	}
	return res, nil
}

// ByType returns the resources keyed by type URL, as the snapshot cache takes them.
func (r *Resources) ByType() map[resourcev3.Type][]types.Resource {
	out := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: make([]types.Resource, 0, len(r.Listeners)),
		resourcev3.RouteType:    make([]types.Resource, 0, len(r.Routes)),
		resourcev3.ClusterType:  make([]types.Resource, 0, len(r.Clusters)),
		resourcev3.EndpointType: make([]types.Resource, 0, len(r.Endpoints)),
		resourcev3.SecretType:   make([]types.Resource, 0, len(r.Secrets)),
	}
	for _, x := range r.Listeners {
		out[resourcev3.ListenerType] = append(out[resourcev3.ListenerType], x)
	}
	for _, x := range r.Routes {
		out[resourcev3.RouteType] = append(out[resourcev3.RouteType], x)
	}
	for _, x := range r.Clusters {
		out[resourcev3.ClusterType] = append(out[resourcev3.ClusterType], x)
	}
	for _, x := range r.Endpoints {
		out[resourcev3.EndpointType] = append(out[resourcev3.EndpointType], x)
	}
	for _, x := range r.Secrets {
		out[resourcev3.SecretType] = append(out[resourcev3.SecretType], x)
	}
	return out
}
