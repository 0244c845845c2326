package server

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// gatewayFixture describes the resources of one test gateway.
type gatewayFixture struct {
	listener     string
	port         uint32
	routeConfig  string // RDS name the listener references
	routeConfigs []string
	clusters     []string // EDS clusters, each with a CLA
	timeout      map[string]time.Duration
	endpointPort map[string]uint32
	secret       string
}

func defaultFixture() gatewayFixture {
	return gatewayFixture{
		listener:     "http-8080",
		port:         8080,
		routeConfig:  "route-a",
		routeConfigs: []string{"route-a"},
		clusters:     []string{"backend-a", "backend-b"},
		timeout:      map[string]time.Duration{},
		endpointPort: map[string]uint32{},
		secret:       "gateway-cert",
	}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func mustAny(tb testing.TB, m proto.Message) *anypb.Any {
	tb.Helper()
	a, err := anypb.New(m)
	if err != nil {
		tb.Fatalf("building test fixture: %v", err)
	}
	return a
}

func (f gatewayFixture) build(tb testing.TB) map[resourcev3.Type][]types.Resource {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "ingress_http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: f.routeConfig,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(tb, &routerv3.Router{})},
		}},
	}
	lis := &listenerv3.Listener{
		Name: f.listener,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: f.port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tb, hcm)},
			}},
		}},
	}
	out := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {lis},
	}
	for _, rc := range f.routeConfigs {
		vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
		for _, c := range f.clusters {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + c}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c},
				}},
			})
		}
		out[resourcev3.RouteType] = append(out[resourcev3.RouteType], &routev3.RouteConfiguration{
			Name: rc, VirtualHosts: []*routev3.VirtualHost{vh},
		})
	}
	for _, c := range f.clusters {
		timeout := f.timeout[c]
		if timeout == 0 {
			timeout = time.Second
		}
		out[resourcev3.ClusterType] = append(out[resourcev3.ClusterType], &clusterv3.Cluster{
			Name:                 c,
			ConnectTimeout:       durationpb.New(timeout),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		})
		port := f.endpointPort[c]
		if port == 0 {
			port = 9000
		}
		out[resourcev3.EndpointType] = append(out[resourcev3.EndpointType], &endpointv3.ClusterLoadAssignment{
			ClusterName: c,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address:       "127.0.0.1",
							PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
						}}},
					}},
				}},
			}},
		})
	}
	if f.secret != "" {
		out[resourcev3.SecretType] = []types.Resource{&tlsv3.Secret{
			Name: f.secret,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}},
			}},
		}}
	}
	return out
}
