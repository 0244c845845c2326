package translate

import (
	"errors"
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ir"
)

// Outlier detection every cluster gets (see the package comment).
const (
	outlierConsecutive5xx     = 5
	outlierInterval           = 5 * time.Second
	outlierBaseEjectionTime   = 30 * time.Second
	outlierMaxEjectionPercent = 50
)

func translateCluster(c *ir.Cluster) (*clusterv3.Cluster, error) {
	if c.ConnectTimeout < 0 {
		return nil, fmt.Errorf("connectTimeout: %s is negative", c.ConnectTimeout)
	}
	connectTimeout := time.Duration(DefaultConnectTimeoutSeconds) * time.Second
	if c.ConnectTimeout > 0 {
		connectTimeout = c.ConnectTimeout
	}
	var lb clusterv3.Cluster_LbPolicy
	switch c.LoadBalancer {
	case ir.LoadBalancerRoundRobin, "":
		lb = clusterv3.Cluster_ROUND_ROBIN
	case ir.LoadBalancerLeastRequest:
		lb = clusterv3.Cluster_LEAST_REQUEST
	default:
		return nil, fmt.Errorf("loadBalancer: %q is not supported", c.LoadBalancer)
	}
	cl := &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             lb,
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:          wrapperspb.UInt32(outlierConsecutive5xx),
			EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
			EnforcingSuccessRate:     wrapperspb.UInt32(0),
			Interval:                 durationpb.New(outlierInterval),
			BaseEjectionTime:         durationpb.New(outlierBaseEjectionTime),
			MaxEjectionPercent:       wrapperspb.UInt32(outlierMaxEjectionPercent),
		},
	}
	switch c.Protocol {
	case ir.AppProtocolHTTP1, "":
		// HTTP/1.1 is the upstream default; nothing to say.
	case ir.AppProtocolH2C:
		opts, err := toAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		})
		if err != nil {
			return nil, err
		}
		cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: opts}
	default:
		return nil, fmt.Errorf("protocol: %q is not supported", c.Protocol)
	}
	return cl, nil
}

// translateEndpoints builds the cluster's load assignment: one locality per
// zone (sorted by zone; the endpoints with no zone have no locality), ready
// endpoints HEALTHY and the others UNHEALTHY.
func translateEndpoints(c *ir.Cluster) (*endpointv3.ClusterLoadAssignment, error) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
	byZone := map[string]*endpointv3.LocalityLbEndpoints{}
	var zones []string
	for i, ep := range c.Endpoints {
		if ep.Address == "" {
			return nil, fmt.Errorf("endpoints[%d]: address is empty", i)
		}
		if ep.Port == 0 || ep.Port > 65535 {
			return nil, fmt.Errorf("endpoints[%d]: port %d is not a TCP port", i, ep.Port)
		}
		loc, ok := byZone[ep.Zone]
		if !ok {
			loc = &endpointv3.LocalityLbEndpoints{}
			if ep.Zone != "" {
				loc.Locality = &corev3.Locality{Zone: ep.Zone}
			}
			byZone[ep.Zone] = loc
			zones = append(zones, ep.Zone)
		}
		health := corev3.HealthStatus_HEALTHY
		if !ep.Ready {
			health = corev3.HealthStatus_UNHEALTHY
		}
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       ep.Address,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: ep.Port},
				}}},
			}},
			HealthStatus: health,
		})
	}
	sort.Strings(zones)
	for _, z := range zones {
		cla.Endpoints = append(cla.Endpoints, byZone[z])
	}
	return cla, nil
}

func translateSecret(s *ir.Secret) (*tlsv3.Secret, error) {
	if len(s.CertPEM) == 0 {
		return nil, errors.New("certPEM is empty")
	}
	if len(s.KeyPEM) == 0 {
		return nil, errors.New("keyPEM is empty")
	}
	return &tlsv3.Secret{
		Name: s.Name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.CertPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.KeyPEM}},
		}},
	}, nil
}
