package xdsclient

import (
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

var (
	hcmType        = typeURLOf(&hcmv3.HttpConnectionManager{})
	downstreamType = typeURLOf(&tlsv3.DownstreamTlsContext{})
	upstreamType   = typeURLOf(&tlsv3.UpstreamTlsContext{})
)

// refs are the resource names of the named types a view references: what
// the client subscribes to. Each list is sorted and free of duplicates.
type refs struct {
	endpoints []string // EDS: service_name, else name, of every EDS cluster
	routes    []string // RDS: route_config_name of every HttpConnectionManager using rds
	secrets   []string // SDS: secrets named with an sds_config in TLS contexts
}

// names returns the names referenced for a named type.
func (r refs) names(typeURL string) []string {
	switch typeURL {
	case EndpointType:
		return r.endpoints
	case RouteType:
		return r.routes
	case SecretType:
		return r.secrets
	}
	return nil
}

// referencesOf computes what s references. A typed_config it must read (an
// HttpConnectionManager, a TLS context) that does not decode is an error
// naming the listener or cluster.
func referencesOf(s *Snapshot) (refs, error) {
	var r refs
	for _, name := range sortedKeys(s.Clusters) {
		c := s.Clusters[name]
		if c.GetType() == clusterv3.Cluster_EDS {
			eds := c.GetEdsClusterConfig().GetServiceName()
			if eds == "" {
				eds = c.GetName()
			}
			r.endpoints = append(r.endpoints, eds)
		}
		sockets := []*corev3.TransportSocket{c.GetTransportSocket()}
		for _, m := range c.GetTransportSocketMatches() {
			sockets = append(sockets, m.GetTransportSocket())
		}
		for _, ts := range sockets {
			names, err := socketSecrets(ts)
			if err != nil {
				return refs{}, fmt.Errorf("reading cluster %q: %w", name, err)
			}
			r.secrets = append(r.secrets, names...)
		}
	}
	for _, name := range sortedKeys(s.Listeners) {
		l := s.Listeners[name]
		chains := slices.Clone(l.GetFilterChains())
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(chains, dc)
		}
		for i, fc := range chains {
			routes, err := chainRoutes(fc)
			if err != nil {
				return refs{}, fmt.Errorf("reading listener %q filter chain #%d %q: %w", name, i, fc.GetName(), err)
			}
			r.routes = append(r.routes, routes...)
			secrets, err := socketSecrets(fc.GetTransportSocket())
			if err != nil {
				return refs{}, fmt.Errorf("reading listener %q filter chain #%d %q: %w", name, i, fc.GetName(), err)
			}
			r.secrets = append(r.secrets, secrets...)
		}
	}
	r.endpoints = sortUnique(r.endpoints)
	r.routes = sortUnique(r.routes)
	r.secrets = sortUnique(r.secrets)
	return r, nil
}

// chainRoutes returns the RDS names of a filter chain's connection managers.
func chainRoutes(fc *listenerv3.FilterChain) ([]string, error) {
	var out []string
	for _, f := range fc.GetFilters() {
		tc := f.GetTypedConfig()
		if tc.GetTypeUrl() != hcmType {
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := tc.UnmarshalTo(hcm); err != nil {
			return nil, fmt.Errorf("decoding filter %q HttpConnectionManager: %w", f.GetName(), err)
		}
		if rds := hcm.GetRds(); rds != nil {
			if rds.GetRouteConfigName() == "" {
				return nil, fmt.Errorf("filter %q: rds has no route_config_name", f.GetName())
			}
			out = append(out, rds.GetRouteConfigName())
		}
	}
	return out, nil
}

// socketSecrets returns the SDS secret names a TLS transport socket
// references through an sds_config (a name without one is a static secret,
// which is not fetched).
func socketSecrets(ts *corev3.TransportSocket) ([]string, error) {
	tc := ts.GetTypedConfig()
	var common *tlsv3.CommonTlsContext
	switch tc.GetTypeUrl() {
	case downstreamType:
		d := &tlsv3.DownstreamTlsContext{}
		if err := tc.UnmarshalTo(d); err != nil {
			return nil, fmt.Errorf("decoding transport socket %q DownstreamTlsContext: %w", ts.GetName(), err)
		}
		common = d.GetCommonTlsContext()
	case upstreamType:
		u := &tlsv3.UpstreamTlsContext{}
		if err := tc.UnmarshalTo(u); err != nil {
			return nil, fmt.Errorf("decoding transport socket %q UpstreamTlsContext: %w", ts.GetName(), err)
		}
		common = u.GetCommonTlsContext()
	default:
		return nil, nil
	}
	var out []string
	add := func(c *tlsv3.SdsSecretConfig) {
		if c != nil && c.GetSdsConfig() != nil && c.GetName() != "" {
			out = append(out, c.GetName())
		}
	}
	for _, c := range common.GetTlsCertificateSdsSecretConfigs() {
		add(c)
	}
	add(common.GetValidationContextSdsSecretConfig())
	add(common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	return out, nil
}

func sortedKeys[M any](m map[string]M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
