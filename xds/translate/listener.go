package translate

import (
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/ir"
)

// adsSource is a config source that says "over the same ADS stream, v3".
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// validatable is every generated Envoy message.
type validatable interface {
	proto.Message
	ValidateAll() error
}

// toAny validates m and packs it. ValidateAll of the message that holds an Any
// does not look inside it, so typed configs are validated here.
func toAny(m validatable) (*anypb.Any, error) {
	if err := m.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validating %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a, nil
}

// translateListener builds the Listener for l and one RouteConfiguration per
// filter chain. chainNames holds the chain names already used in the gateway.
func (t *translator) translateListener(l *ir.Listener, chainNames map[string]bool) (*listenerv3.Listener, []*routev3.RouteConfiguration, error) {
	if l.Port == 0 || l.Port > 65535 {
		return nil, nil, fmt.Errorf("port: %d is not a TCP port", l.Port)
	}
	t.listenerPort = l.Port
	if len(l.FilterChains) == 0 {
		return nil, nil, errors.New("filterChains: a listener needs at least one filter chain")
	}
	https := false
	switch l.Protocol {
	case ir.ProtocolHTTP:
		if len(l.FilterChains) != 1 {
			return nil, nil, fmt.Errorf("filterChains: an HTTP listener has exactly one filter chain, not %d", len(l.FilterChains))
		}
	case ir.ProtocolHTTPS:
		https = true
	default:
		return nil, nil, fmt.Errorf("protocol: %q is not supported", l.Protocol)
	}
	address := l.Address
	if address == "" {
		address = "0.0.0.0"
	}

	// Built once per listener and shared by its chains.
	router, err := toAny(&routerv3.Router{})
	if err != nil {
		return nil, nil, err
	}

	lis := &listenerv3.Listener{
		Name: l.Name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       address,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: l.Port},
		}}},
	}
	if https {
		inspector, err := toAny(&tlsinspectorv3.TlsInspector{})
		if err != nil {
			return nil, nil, err
		}
		lis.ListenerFilters = []*listenerv3.ListenerFilter{{
			Name:       TLSInspectorFilter,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: inspector},
		}}
	}

	var routes []*routev3.RouteConfiguration
	serverNames := map[string]string{} // SNI -> chain
	catchAll := ""                     // the chain with no ServerNames, if any
	for i, fc := range l.FilterChains {
		if fc == nil {
			return nil, nil, fmt.Errorf("filterChains[%d] is nil", i)
		}
		if fc.Name == "" {
			return nil, nil, fmt.Errorf("filterChains[%d]: name is empty", i)
		}
		if chainNames[fc.Name] {
			return nil, nil, fmt.Errorf("filter chain %q: name is used twice in the gateway", fc.Name)
		}
		chainNames[fc.Name] = true

		if !https {
			if len(fc.ServerNames) > 0 {
				return nil, nil, fmt.Errorf("filter chain %q: serverNames: only HTTPS chains select by SNI", fc.Name)
			}
			if fc.TLS != nil {
				return nil, nil, fmt.Errorf("filter chain %q: tls: an HTTP listener does not terminate TLS", fc.Name)
			}
		} else {
			if len(fc.ServerNames) == 0 {
				if catchAll != "" {
					return nil, nil, fmt.Errorf("filter chain %q: serverNames: empty, as in filter chain %q; only one chain may take any SNI", fc.Name, catchAll)
				}
				catchAll = fc.Name
			}
			for _, sn := range fc.ServerNames {
				if sn == "" {
					return nil, nil, fmt.Errorf("filter chain %q: serverNames: empty name", fc.Name)
				}
				if other, ok := serverNames[sn]; ok {
					return nil, nil, fmt.Errorf("filter chain %q: serverNames: %q is also served by filter chain %q", fc.Name, sn, other)
				}
				serverNames[sn] = fc.Name
			}
		}

		chain, err := t.translateFilterChain(fc, https, router)
		if err != nil {
			return nil, nil, fmt.Errorf("filter chain %q: %w", fc.Name, err)
		}
		lis.FilterChains = append(lis.FilterChains, chain)

		rc, err := t.translateRouteConfig(fc)
		if err != nil {
			return nil, nil, fmt.Errorf("filter chain %q: %w", fc.Name, err)
		}
		routes = append(routes, rc)
	}
	return lis, routes, nil
}

func (t *translator) translateFilterChain(fc *ir.FilterChain, https bool, router *anypb.Any) (*listenerv3.FilterChain, error) {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: fc.Name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: fc.Name,
		}},
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		MaxRequestHeadersKb:          wrapperspb.UInt32(MaxRequestHeadersKB),
		UseRemoteAddress:             wrapperspb.Bool(true),
		UpgradeConfigs:               []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	filters, err := t.httpFilters(filtersOf(fc), router)
	if err != nil {
		return nil, err
	}
	hcm.HttpFilters = filters
	hcmAny, err := toAny(hcm)
	if err != nil {
		return nil, err
	}
	chain := &listenerv3.FilterChain{
		Name: fc.Name,
		Filters: []*listenerv3.Filter{{
			Name:       HTTPConnectionManagerFilter,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
		}},
	}
	if !https {
		return chain, nil
	}
	if len(fc.ServerNames) > 0 {
		chain.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: append([]string(nil), fc.ServerNames...)}
	}
	if fc.TLS == nil {
		return nil, errors.New("tls: an HTTPS chain must terminate TLS")
	}
	if len(fc.TLS.SecretNames) == 0 {
		return nil, errors.New("tls.secretNames: an HTTPS chain needs at least one certificate")
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: append([]string(nil), fc.TLS.ALPN...),
	}}
	for i, name := range fc.TLS.SecretNames {
		if !t.secrets[name] {
			return nil, fmt.Errorf("tls.secretNames[%d]: secret %q is not in the gateway", i, name)
		}
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = append(ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs,
			&tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()})
	}
	ctxAny, err := toAny(ctx)
	if err != nil {
		return nil, err
	}
	chain.TransportSocket = &corev3.TransportSocket{
		Name:       TLSTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctxAny},
	}
	return chain, nil
}
