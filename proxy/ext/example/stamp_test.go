// Package example_test adds an HTTP filter to the proxy through the ext
// registry alone, and drives requests through a running proxy with it: its
// config is decoded and checked when the configuration arrives, its
// per-route configurations are merged as it says, and it runs on each
// request. Nothing outside this file knows it.
package example_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sekisho/sekisho/ir"
	"github.com/sekisho/sekisho/proxy"
	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/xdsclient"
	"github.com/sekisho/sekisho/xds/translate"
)

// The stamp filter adds response headers: those of its config, then those
// of the route's configuration, which is its own added to its virtual
// host's. It takes Envoy's header_mutation messages, appends only.
func init() {
	ext.RegisterHTTP(&ext.HTTPFilter{
		Name:     "sekisho.test.stamp",
		Config:   &headermutationv3.HeaderMutation{},
		PerRoute: &headermutationv3.HeaderMutationPerRoute{},
		Fields: []string{
			"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation.mutations",
			"envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute.mutations",
			"envoy.extensions.filters.http.header_mutation.v3.Mutations.response_mutations",
			"envoy.config.common.mutation_rules.v3.HeaderMutation.append",
		},
		Decode: func(m proto.Message) (any, error) {
			return stamps(m.(*headermutationv3.HeaderMutation).GetMutations())
		},
		DecodeRoute: func(m proto.Message) (any, error) {
			return stamps(m.(*headermutationv3.HeaderMutationPerRoute).GetMutations())
		},
		Merge: func(vhost, route any) any {
			return slices.Concat(vhost.([]ext.HeaderOp), route.([]ext.HeaderOp))
		},
		Build: func(cfg any, _ ext.BuildContext) (ext.Filter, error) {
			return stampFilter(cfg.([]ext.HeaderOp)), nil
		},
	})
}

// stamps checks a Mutations: response header appends only.
func stamps(m *headermutationv3.Mutations) ([]ext.HeaderOp, error) {
	var ops []ext.HeaderOp
	for i, rm := range m.GetResponseMutations() {
		hv := rm.GetAppend().GetHeader()
		if hv.GetKey() == "" {
			return nil, fmt.Errorf("mutations.response_mutations[%d]: only append, with a header key, is supported", i)
		}
		ops = append(ops, ext.HeaderOp{Key: http.CanonicalHeaderKey(hv.GetKey()), Value: hv.GetValue(), Action: ext.HeaderAdd})
	}
	return ops, nil
}

type stampFilter []ext.HeaderOp

// OnRequest records the edits; the response takes the last recorded first
// (responses pass the filters in reverse), so the route's go in first.
func (f stampFilter) OnRequest(rq *ext.Request, route any) ext.Status {
	if ops, ok := route.([]ext.HeaderOp); ok {
		rq.EditResponse(ops)
	}
	rq.EditResponse(f)
	return ext.Continue
}

func stampOf(values ...string) *headermutationv3.Mutations {
	m := &headermutationv3.Mutations{}
	for _, v := range values {
		m.ResponseMutations = append(m.ResponseMutations, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{
			Append: &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-stamp", Value: v}}}})
	}
	return m
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFilterThroughTheRegistry(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(be.Close)
	u, _ := url.Parse(be.URL)
	port, _ := strconv.Atoi(u.Port())
	c := &ir.Cluster{Name: "default/b:80", Protocol: ir.AppProtocolHTTP1, LoadBalancer: ir.LoadBalancerRoundRobin,
		Endpoints: []ir.Endpoint{{Address: u.Hostname(), Port: uint32(port), Ready: true}}}
	var routes []*ir.Route
	for _, name := range []string{"plain", "own", "off"} {
		routes = append(routes, &ir.Route{Name: name, Source: ir.RouteSource{Kind: "HTTPRoute", Namespace: "default", Name: name},
			Match:   ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/" + name}},
			Forward: &ir.Forward{Backends: []ir.WeightedBackend{{Cluster: c.Name, Weight: 1}}}})
	}
	res, err := translate.Translate(&ir.Gateway{
		Name: "default/eg", Namespace: "default", GatewayName: "eg",
		Listeners: []*ir.Listener{{
			Name: "default/eg/http", Address: "127.0.0.1", Port: 8080, Protocol: ir.ProtocolHTTP,
			FilterChains: []*ir.FilterChain{{Name: "default/eg/http",
				VirtualHosts: []*ir.VirtualHost{{Name: "default/eg/http/*", Domains: []string{"*"}, Routes: routes}}}},
		}},
		Clusters: []*ir.Cluster{c},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &xdsclient.Snapshot{
		Listeners: map[string]*listenerv3.Listener{}, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets: map[string]*tlsv3.Secret{},
	}
	for _, l := range res.Listeners {
		l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
		s.Listeners[l.Name] = l
	}
	for _, x := range res.Routes {
		s.Routes[x.Name] = x
	}
	for _, x := range res.Clusters {
		s.Clusters[x.Name] = x
	}
	for _, x := range res.Endpoints {
		s.Endpoints[x.ClusterName] = x
	}

	// The chain: stamp, then the router. The virtual host stamps "vh";
	// route "own" adds "route", route "off" disables the filter.
	setFilter := func(cfg *headermutationv3.HeaderMutation) {
		for _, l := range s.Listeners {
			f := l.GetFilterChains()[0].GetFilters()[0]
			h := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				t.Fatal(err)
			}
			h.HttpFilters = []*hcmv3.HttpFilter{
				{Name: "stamp", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, cfg)}},
				{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, h)}
		}
	}
	setFilter(&headermutationv3.HeaderMutation{Mutations: stampOf("chain")})
	for _, rc := range s.Routes {
		vh := rc.GetVirtualHosts()[0]
		vh.TypedPerFilterConfig = map[string]*anypb.Any{"stamp": anyOf(t, &headermutationv3.HeaderMutationPerRoute{Mutations: stampOf("vh")})}
		for _, r := range vh.GetRoutes() {
			switch r.GetName() {
			case "own":
				r.TypedPerFilterConfig = map[string]*anypb.Any{"stamp": anyOf(t, &headermutationv3.HeaderMutationPerRoute{Mutations: stampOf("route")})}
			case "off":
				r.TypedPerFilterConfig = map[string]*anypb.Any{"stamp": anyOf(t, &routev3.FilterConfig{Disabled: true})}
			}
		}
	}

	rt := proxy.New(proxy.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	if err := rt.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	addr := rt.Addr("default/eg/http")
	for path, want := range map[string][]string{
		"/plain": {"chain", "vh"},
		"/own":   {"chain", "vh", "route"},
		"/off":   nil,
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !slices.Equal(resp.Header["X-Stamp"], want) {
			t.Errorf("GET %s: %d, X-Stamp %q; want 200, %q", path, resp.StatusCode, resp.Header["X-Stamp"], want)
		}
	}

	// A config the filter refuses is NACKed, naming the filter and field;
	// the previous configuration keeps serving.
	setFilter(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{ResponseMutations: []*mutationv3.HeaderMutation{
		{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Value: "no key"}}}}}}})
	err = rt.Apply(s)
	if err == nil || !strings.Contains(err.Error(), `http_filters[0] "stamp": mutations.response_mutations[0]: only append`) {
		t.Errorf("Apply of a bad stamp config: %v", err)
	}
	// A field the filter does not declare is refused by the contract.
	setFilter(&headermutationv3.HeaderMutation{MostSpecificHeaderMutationsWins: true})
	if err := rt.Apply(s); err == nil || !strings.Contains(err.Error(), "most_specific_header_mutations_wins") {
		t.Errorf("Apply of an undeclared field: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/own")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header["X-Stamp"]; len(got) != 3 {
		t.Errorf("after the NACKs: X-Stamp %q, want the previous configuration's", got)
	}
}
