// Package contract is the data-plane contract of sekisho's proxy: the registry
// of every xDS resource type, typed config (google.protobuf.Any payload) and
// proto field the proxy honours, and a walk that finds every field set in a
// message that is not in the registry.
//
// The core's own (listeners, the connection manager, routes, clusters,
// endpoints, TLS) are listed here; the HTTP filters' come from the ext
// registry: the typed configs and fields each registered filter declares.
// So what counts is what is linked in: the proxy links every filter
// (proxy/ext/all), and so must a program or test that checks resources
// against the contract. Package contract itself imports only the ext API,
// so it stays light to import.
//
// The proxy refuses (NACKs) a resource in which Unhonoured finds anything, and
// a test feeds every golden output of the xDS translator through the same walk,
// so the translator and the proxy cannot drift apart silently.
//
// Messages of the well-known types google.protobuf.Duration, the wrappers and
// google.protobuf.Struct are leaves: the field that holds them is honoured as
// a whole (route metadata is free-form by design).
package contract

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sekisho/sekisho/proxy/ext"
)

// ResourceTypes are the xDS resource types the proxy subscribes to and serves.
var ResourceTypes = []protoreflect.FullName{
	(&listenerv3.Listener{}).ProtoReflect().Descriptor().FullName(),
	(&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().FullName(),
	(&clusterv3.Cluster{}).ProtoReflect().Descriptor().FullName(),
	(&endpointv3.ClusterLoadAssignment{}).ProtoReflect().Descriptor().FullName(),
	(&tlsv3.Secret{}).ProtoReflect().Descriptor().FullName(),
}

// typedConfigs are the Any payloads the proxy's core decodes, by message;
// those of the registered extensions come from the ext registry.
var typedConfigs = map[protoreflect.FullName]proto.Message{}

func init() {
	for _, m := range []proto.Message{
		&hcmv3.HttpConnectionManager{},
		&routerv3.Router{},
		&routev3.FilterConfig{},
		&tlsinspectorv3.TlsInspector{},
		&tlsv3.DownstreamTlsContext{},
		&httpv3.HttpProtocolOptions{},
	} {
		typedConfigs[m.ProtoReflect().Descriptor().FullName()] = m
	}
}

// TypedConfigs returns the full names of the typed configs the proxy honours
// (the core's and the registered extensions'), sorted.
func TypedConfigs() []string {
	seen := map[string]bool{}
	for n := range typedConfigs {
		seen[string(n)] = true
	}
	for _, f := range ext.HTTPFilters() {
		seen[string(f.Config.ProtoReflect().Descriptor().FullName())] = true
		if f.PerRoute != nil {
			seen[string(f.PerRoute.ProtoReflect().Descriptor().FullName())] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// newTypedConfig returns a new message of a typed config the proxy honours,
// or nil.
func newTypedConfig(name protoreflect.FullName) proto.Message {
	if m := typedConfigs[name]; m != nil {
		return m.ProtoReflect().New().Interface()
	}
	return ext.TypedConfig(name)
}

// fields is every proto field the proxy's core honours, by full name; the
// registered extensions declare theirs (ext.HTTPFilter.Fields).
var fields = map[protoreflect.FullName]bool{}

func init() {
	for _, f := range []string{
		// Listener.
		"envoy.config.listener.v3.Listener.name",
		"envoy.config.listener.v3.Listener.address",
		"envoy.config.listener.v3.Listener.filter_chains",
		"envoy.config.listener.v3.Listener.listener_filters",
		"envoy.config.listener.v3.ListenerFilter.name",
		"envoy.config.listener.v3.ListenerFilter.typed_config",
		"envoy.config.listener.v3.FilterChain.name",
		"envoy.config.listener.v3.FilterChain.filters",
		"envoy.config.listener.v3.FilterChain.filter_chain_match",
		"envoy.config.listener.v3.FilterChain.transport_socket",
		"envoy.config.listener.v3.FilterChainMatch.server_names",
		"envoy.config.listener.v3.Filter.name",
		"envoy.config.listener.v3.Filter.typed_config",
		"envoy.config.core.v3.Address.socket_address",
		"envoy.config.core.v3.SocketAddress.protocol",
		"envoy.config.core.v3.SocketAddress.address",
		"envoy.config.core.v3.SocketAddress.port_value",
		"envoy.config.core.v3.TransportSocket.name",
		"envoy.config.core.v3.TransportSocket.typed_config",
		"envoy.config.core.v3.ConfigSource.ads",
		"envoy.config.core.v3.ConfigSource.resource_api_version",

		// HTTP connection manager and router.
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.codec_type",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.stat_prefix",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.rds",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.http_filters",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.normalize_path",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.merge_slashes",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.path_with_escaped_slashes_action",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.max_request_headers_kb",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.use_remote_address",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.upgrade_configs",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig.upgrade_type",
		"envoy.extensions.filters.network.http_connection_manager.v3.Rds.config_source",
		"envoy.extensions.filters.network.http_connection_manager.v3.Rds.route_config_name",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.name",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config",
		// A per-route filter config wrapped in a FilterConfig.
		"envoy.config.route.v3.FilterConfig.config",
		"envoy.config.route.v3.FilterConfig.is_optional",
		"envoy.config.route.v3.FilterConfig.disabled",

		// TLS.
		"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.common_tls_context",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.alpn_protocols",
		"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificate_sds_secret_configs",
		"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig.name",
		"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig.sds_config",
		"envoy.extensions.transport_sockets.tls.v3.Secret.name",
		"envoy.extensions.transport_sockets.tls.v3.Secret.tls_certificate",
		"envoy.extensions.transport_sockets.tls.v3.TlsCertificate.certificate_chain",
		"envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key",
		"envoy.config.core.v3.DataSource.inline_bytes",
		"envoy.config.core.v3.DataSource.inline_string",

		// Routes.
		"envoy.config.route.v3.RouteConfiguration.name",
		"envoy.config.route.v3.RouteConfiguration.virtual_hosts",
		"envoy.config.route.v3.RouteConfiguration.validate_clusters",
		"envoy.config.route.v3.RouteConfiguration.ignore_port_in_host_matching",
		"envoy.config.route.v3.VirtualHost.name",
		"envoy.config.route.v3.VirtualHost.domains",
		"envoy.config.route.v3.VirtualHost.routes",
		"envoy.config.route.v3.VirtualHost.typed_per_filter_config",
		"envoy.config.route.v3.Route.name",
		"envoy.config.route.v3.Route.match",
		"envoy.config.route.v3.Route.metadata",
		"envoy.config.route.v3.Route.route",
		"envoy.config.route.v3.Route.redirect",
		"envoy.config.route.v3.Route.direct_response",
		"envoy.config.route.v3.Route.request_headers_to_add",
		"envoy.config.route.v3.Route.request_headers_to_remove",
		"envoy.config.route.v3.Route.response_headers_to_add",
		"envoy.config.route.v3.Route.response_headers_to_remove",
		"envoy.config.route.v3.Route.typed_per_filter_config",
		"envoy.config.core.v3.Metadata.filter_metadata",
		"envoy.config.route.v3.RouteMatch.prefix",
		"envoy.config.route.v3.RouteMatch.path",
		"envoy.config.route.v3.RouteMatch.safe_regex",
		"envoy.config.route.v3.RouteMatch.path_separated_prefix",
		"envoy.config.route.v3.RouteMatch.headers",
		"envoy.config.route.v3.RouteMatch.query_parameters",
		"envoy.config.route.v3.HeaderMatcher.name",
		"envoy.config.route.v3.HeaderMatcher.string_match",
		"envoy.config.route.v3.HeaderMatcher.present_match",
		"envoy.config.route.v3.HeaderMatcher.invert_match",
		"envoy.config.route.v3.QueryParameterMatcher.name",
		"envoy.config.route.v3.QueryParameterMatcher.string_match",
		"envoy.config.route.v3.QueryParameterMatcher.present_match",
		"envoy.type.matcher.v3.StringMatcher.exact",
		"envoy.type.matcher.v3.StringMatcher.safe_regex",
		"envoy.type.matcher.v3.RegexMatcher.regex",
		"envoy.type.matcher.v3.RegexMatchAndSubstitute.pattern",
		"envoy.type.matcher.v3.RegexMatchAndSubstitute.substitution",
		"envoy.config.route.v3.RouteAction.cluster",
		"envoy.config.route.v3.RouteAction.weighted_clusters",
		"envoy.config.route.v3.RouteAction.cluster_not_found_response_code",
		"envoy.config.route.v3.RouteAction.host_rewrite_literal",
		"envoy.config.route.v3.RouteAction.prefix_rewrite",
		"envoy.config.route.v3.RouteAction.regex_rewrite",
		"envoy.config.route.v3.RouteAction.request_mirror_policies",
		"envoy.config.route.v3.RouteAction.timeout",
		"envoy.config.route.v3.RouteAction.retry_policy",
		"envoy.config.route.v3.RouteAction.RequestMirrorPolicy.cluster",
		"envoy.config.route.v3.RouteAction.RequestMirrorPolicy.runtime_fraction",
		"envoy.config.core.v3.RuntimeFractionalPercent.default_value",
		"envoy.type.v3.FractionalPercent.numerator",
		"envoy.type.v3.FractionalPercent.denominator",
		"envoy.config.route.v3.WeightedCluster.clusters",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.name",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.weight",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.request_headers_to_add",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.request_headers_to_remove",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.response_headers_to_add",
		"envoy.config.route.v3.WeightedCluster.ClusterWeight.response_headers_to_remove",
		"envoy.config.core.v3.HeaderValueOption.header",
		"envoy.config.core.v3.HeaderValueOption.append_action",
		"envoy.config.core.v3.HeaderValue.key",
		"envoy.config.core.v3.HeaderValue.value",
		"envoy.config.route.v3.RetryPolicy.retry_on",
		"envoy.config.route.v3.RetryPolicy.num_retries",
		"envoy.config.route.v3.RetryPolicy.per_try_timeout",
		"envoy.config.route.v3.RetryPolicy.retriable_status_codes",
		"envoy.config.route.v3.RetryPolicy.retry_back_off",
		"envoy.config.route.v3.RetryPolicy.RetryBackOff.base_interval",
		"envoy.config.route.v3.RetryPolicy.RetryBackOff.max_interval",
		"envoy.config.route.v3.RedirectAction.scheme_redirect",
		"envoy.config.route.v3.RedirectAction.host_redirect",
		"envoy.config.route.v3.RedirectAction.port_redirect",
		"envoy.config.route.v3.RedirectAction.path_redirect",
		"envoy.config.route.v3.RedirectAction.prefix_rewrite",
		"envoy.config.route.v3.RedirectAction.regex_rewrite",
		"envoy.config.route.v3.RedirectAction.response_code",
		"envoy.config.route.v3.DirectResponseAction.status",
		"envoy.config.route.v3.DirectResponseAction.body",

		// Clusters and endpoints.
		"envoy.config.cluster.v3.Cluster.name",
		"envoy.config.cluster.v3.Cluster.type",
		"envoy.config.cluster.v3.Cluster.eds_cluster_config",
		"envoy.config.cluster.v3.Cluster.EdsClusterConfig.eds_config",
		"envoy.config.cluster.v3.Cluster.EdsClusterConfig.service_name",
		"envoy.config.cluster.v3.Cluster.connect_timeout",
		"envoy.config.cluster.v3.Cluster.lb_policy",
		"envoy.config.cluster.v3.Cluster.typed_extension_protocol_options",
		"envoy.config.cluster.v3.Cluster.outlier_detection",
		"envoy.config.cluster.v3.OutlierDetection.consecutive_5xx",
		"envoy.config.cluster.v3.OutlierDetection.enforcing_consecutive_5xx",
		"envoy.config.cluster.v3.OutlierDetection.enforcing_success_rate",
		"envoy.config.cluster.v3.OutlierDetection.interval",
		"envoy.config.cluster.v3.OutlierDetection.base_ejection_time",
		"envoy.config.cluster.v3.OutlierDetection.max_ejection_percent",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig.http_protocol_options",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig.http2_protocol_options",
		"envoy.config.endpoint.v3.ClusterLoadAssignment.cluster_name",
		"envoy.config.endpoint.v3.ClusterLoadAssignment.endpoints",
		"envoy.config.endpoint.v3.LocalityLbEndpoints.locality",
		"envoy.config.endpoint.v3.LocalityLbEndpoints.lb_endpoints",
		"envoy.config.core.v3.Locality.region",
		"envoy.config.core.v3.Locality.zone",
		"envoy.config.core.v3.Locality.sub_zone",
		"envoy.config.endpoint.v3.LbEndpoint.endpoint",
		"envoy.config.endpoint.v3.LbEndpoint.health_status",
		"envoy.config.endpoint.v3.Endpoint.address",
	} {
		fields[protoreflect.FullName(f)] = true
	}
}

// Fields returns the full names of the proto fields the proxy honours (the
// core's and the registered extensions'), sorted.
func Fields() []string {
	out := ext.Fields()
	for n := range fields {
		if !ext.Honours(n) {
			out = append(out, string(n))
		}
	}
	sort.Strings(out)
	return out
}

// Honoured reports whether the proxy honours the field with this full name.
func Honoured(fullName string) bool { return honoured(protoreflect.FullName(fullName)) }

func honoured(n protoreflect.FullName) bool { return fields[n] || ext.Honours(n) }

// leaves are messages whose content is not walked: a field holding one is
// honoured as a whole.
var leaves = map[protoreflect.FullName]bool{
	"google.protobuf.Duration":    true,
	"google.protobuf.BoolValue":   true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value":  true,
	"google.protobuf.Int64Value":  true,
	"google.protobuf.DoubleValue": true,
	"google.protobuf.StringValue": true,
	"google.protobuf.Struct":      true,
	"google.protobuf.Value":       true,
}

// Unhonoured walks m recursively, including the payloads of Any typed configs,
// and returns a description of every set field the proxy does not honour, as
// "<path>: <field full name>" (or, for an Any, "<path>: typed config <type>").
// An empty result means the proxy honours all of m.
func Unhonoured(m proto.Message) []string {
	var out []string
	walk(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), &out)
	return out
}

func walk(m protoreflect.Message, path string, out *[]string) {
	desc := m.Descriptor()
	if leaves[desc.FullName()] {
		return
	}
	if desc.FullName() == "google.protobuf.Any" {
		a, ok := m.Interface().(*anypb.Any)
		if !ok {
			*out = append(*out, path+": unreadable google.protobuf.Any")
			return
		}
		name := a.MessageName()
		if ext.IsTypedStruct(name) {
			// The config it carries, as the proxy decodes it.
			inner, err := ext.TypedStruct(a, newTypedConfig)
			if err != nil {
				*out = append(*out, fmt.Sprintf("%s: typed config %s: %v", path, name, err))
				return
			}
			walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", out)
			return
		}
		inner := newTypedConfig(name)
		if inner == nil {
			*out = append(*out, fmt.Sprintf("%s: typed config %s", path, name))
			return
		}
		if err := a.UnmarshalTo(inner); err != nil {
			*out = append(*out, fmt.Sprintf("%s: typed config %s does not decode: %v", path, name, err))
			return
		}
		walk(inner.ProtoReflect(), path+"<"+string(name.Name())+">", out)
		return
	}
	// Unknown fields are fields this build does not even know.
	if len(m.GetUnknown()) > 0 {
		*out = append(*out, fmt.Sprintf("%s: unknown fields of %s", path, desc.FullName()))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		if !honoured(fd.FullName()) {
			*out = append(*out, fmt.Sprintf("%s: %s", p, fd.FullName()))
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()), out)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walk(v.Message(), p, out)
		}
		return true
	})
}

// Check returns an error naming the resource and every field of it the proxy
// does not honour, or nil.
func Check(kind, name string, m proto.Message) error {
	bad := Unhonoured(m)
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s %q sets fields the proxy does not honour: %v", kind, name, bad)
}
