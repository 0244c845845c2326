package translate

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Validate checks every resource with its ValidateAll, that names are unique
// per type, and that the set is whole: every route table a listener asks for
// over RDS, every load assignment an EDS cluster needs, every certificate a
// chain asks for over SDS, and every cluster a route sends to (but
// InvalidBackendCluster) is in r.
func (r *Resources) Validate() error {
	var errs []error
	routes := map[string]bool{}
	clusters := map[string]bool{}
	endpoints := map[string]bool{}
	secrets := map[string]bool{}
	listeners := map[string]bool{}

	unique := func(kind, name string, seen map[string]bool) {
		if seen[name] {
			errs = append(errs, fmt.Errorf("%s %q: name is used twice", kind, name))
		}
		seen[name] = true
	}
	for _, x := range r.Secrets {
		if err := x.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("validating secret %q: %w", x.GetName(), err))
		}
		unique("secret", x.GetName(), secrets)
	}
	for _, x := range r.Endpoints {
		if err := x.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("validating load assignment %q: %w", x.GetClusterName(), err))
		}
		unique("load assignment", x.GetClusterName(), endpoints)
	}
	for _, x := range r.Clusters {
		if err := x.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("validating cluster %q: %w", x.GetName(), err))
		}
		unique("cluster", x.GetName(), clusters)
		if x.GetType() == clusterv3.Cluster_EDS {
			name := x.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = x.GetName()
			}
			if !endpoints[name] {
				errs = append(errs, fmt.Errorf("cluster %q: no load assignment %q", x.GetName(), name))
			}
		}
	}
	for _, x := range r.Routes {
		if err := x.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("validating route configuration %q: %w", x.GetName(), err))
		}
		unique("route configuration", x.GetName(), routes)
		for _, vh := range x.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, c := range routeClusters(rt) {
					if c != InvalidBackendCluster && !clusters[c] {
						errs = append(errs, fmt.Errorf("route configuration %q: virtual host %q: route %q: cluster %q does not exist", x.GetName(), vh.GetName(), rt.GetName(), c))
					}
				}
			}
		}
	}
	for _, x := range r.Listeners {
		if err := x.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("validating listener %q: %w", x.GetName(), err))
		}
		unique("listener", x.GetName(), listeners)
		for _, fc := range x.GetFilterChains() {
			if err := checkChainRefs(fc, routes, secrets); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", x.GetName(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// routeClusters is every cluster a route sends requests to.
func routeClusters(rt *routev3.Route) []string {
	ra := rt.GetRoute()
	if ra == nil {
		return nil
	}
	var out []string
	if c := ra.GetCluster(); c != "" {
		out = append(out, c)
	}
	for _, cw := range ra.GetWeightedClusters().GetClusters() {
		out = append(out, cw.GetName())
	}
	for _, m := range ra.GetRequestMirrorPolicies() {
		out = append(out, m.GetCluster())
	}
	return out
}

var (
	hcmTypeURL           = "type.googleapis.com/" + string((&hcmv3.HttpConnectionManager{}).ProtoReflect().Descriptor().FullName())
	downstreamTLSTypeURL = "type.googleapis.com/" + string((&tlsv3.DownstreamTlsContext{}).ProtoReflect().Descriptor().FullName())
)

// checkChainRefs checks the RDS and SDS names one filter chain refers to.
func checkChainRefs(fc *listenerv3.FilterChain, routes, secrets map[string]bool) error {
	var errs []error
	for _, f := range fc.GetFilters() {
		tc := f.GetTypedConfig()
		if tc.GetTypeUrl() != hcmTypeURL {
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := tc.UnmarshalTo(hcm); err != nil {
			errs = append(errs, fmt.Errorf("filter chain %q: reading filter %q: %w", fc.GetName(), f.GetName(), err))
			continue
		}
		if rds := hcm.GetRds(); rds != nil && !routes[rds.GetRouteConfigName()] {
			errs = append(errs, fmt.Errorf("filter chain %q: route configuration %q does not exist", fc.GetName(), rds.GetRouteConfigName()))
		}
	}
	if tc := fc.GetTransportSocket().GetTypedConfig(); tc.GetTypeUrl() == downstreamTLSTypeURL {
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := tc.UnmarshalTo(ctx); err != nil {
			errs = append(errs, fmt.Errorf("filter chain %q: reading transport socket: %w", fc.GetName(), err))
		} else {
			for _, s := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
				if !secrets[s.GetName()] {
					errs = append(errs, fmt.Errorf("filter chain %q: secret %q does not exist", fc.GetName(), s.GetName()))
				}
			}
		}
	}
	return errors.Join(errs...)
}
