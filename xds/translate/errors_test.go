package translate

import (
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/ir"
)

// validGateway is a small gateway that translates: one HTTP and one HTTPS
// listener, one route each, one cluster and one secret.
func validGateway() *ir.Gateway {
	route := func(name string) *ir.Route {
		return &ir.Route{
			Name:   name,
			Source: ir.RouteSource{Kind: "HTTPRoute", Namespace: "default", Name: "web"},
			Match:  ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}},
			Forward: &ir.Forward{Backends: []ir.WeightedBackend{
				{Cluster: "default/web:80", Weight: 1},
			}},
		}
	}
	return &ir.Gateway{
		Name: "default/eg", Namespace: "default", GatewayName: "eg",
		Listeners: []*ir.Listener{
			{
				Name: "default/eg/http-80", Address: "0.0.0.0", Port: 80, Protocol: ir.ProtocolHTTP,
				FilterChains: []*ir.FilterChain{{
					Name: "default/eg/http-80",
					VirtualHosts: []*ir.VirtualHost{{
						Name: "default/eg/http-80/*", Domains: []string{"*"},
						Routes: []*ir.Route{route("httproute/default/web/rule/0/match/0")},
					}},
				}},
			},
			{
				Name: "default/eg/https-443", Address: "0.0.0.0", Port: 443, Protocol: ir.ProtocolHTTPS,
				FilterChains: []*ir.FilterChain{{
					Name:        "default/eg/https-443/web",
					ServerNames: []string{"example.com"},
					TLS:         &ir.TLSConfig{SecretNames: []string{"default/cert"}},
					VirtualHosts: []*ir.VirtualHost{{
						Name: "default/eg/https-443/web/example.com", Domains: []string{"example.com"},
						Routes: []*ir.Route{route("httproute/default/web/rule/0/match/1")},
					}},
				}},
			},
		},
		Clusters: []*ir.Cluster{{
			Name: "default/web:80", Protocol: ir.AppProtocolHTTP1, LoadBalancer: ir.LoadBalancerRoundRobin,
			Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 8080, Ready: true}},
		}},
		Secrets: []*ir.Secret{{Name: "default/cert", CertPEM: []byte("cert"), KeyPEM: []byte("key")}},
	}
}

func httpRoute(gw *ir.Gateway) *ir.Route {
	return gw.Listeners[0].FilterChains[0].VirtualHosts[0].Routes[0]
}
func httpsChain(gw *ir.Gateway) *ir.FilterChain { return gw.Listeners[1].FilterChains[0] }

func TestValidGateway(t *testing.T) {
	res, err := Translate(validGateway())
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	if len(res.Listeners) != 2 || len(res.Routes) != 2 || len(res.Clusters) != 1 || len(res.Endpoints) != 1 || len(res.Secrets) != 1 {
		t.Fatalf("got %d listeners, %d routes, %d clusters, %d endpoints, %d secrets; want 2, 2, 1, 1, 1",
			len(res.Listeners), len(res.Routes), len(res.Clusters), len(res.Endpoints), len(res.Secrets))
	}
}

func TestTranslateErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(gw *ir.Gateway)
		want   []string // substrings of the error
	}{
		{"unknown cluster", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Backends[0].Cluster = "default/nope:80"
		}, []string{`route "httproute/default/web/rule/0/match/0"`, "backends[0].cluster", `"default/nope:80" is not in the gateway`}},
		{"forward without backends", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Backends = nil
		}, []string{"forward: backends: a forward needs at least one backend"}},
		{"listener without chains", func(gw *ir.Gateway) {
			gw.Listeners[0].FilterChains = nil
		}, []string{`listener "default/eg/http-80"`, "filterChains"}},
		{"HTTP listener with two chains", func(gw *ir.Gateway) {
			l := gw.Listeners[0]
			l.FilterChains = append(l.FilterChains, &ir.FilterChain{Name: "other"})
		}, []string{"exactly one filter chain, not 2"}},
		{"unknown protocol", func(gw *ir.Gateway) {
			gw.Listeners[0].Protocol = "TCP"
		}, []string{`protocol: "TCP" is not supported`}},
		{"port zero", func(gw *ir.Gateway) {
			gw.Listeners[0].Port = 0
		}, []string{"port: 0 is not a TCP port"}},
		{"duplicate listener", func(gw *ir.Gateway) {
			gw.Listeners[1].Name = gw.Listeners[0].Name
		}, []string{"name is used twice"}},
		{"duplicate chain name", func(gw *ir.Gateway) {
			httpsChain(gw).Name = "default/eg/http-80"
		}, []string{`filter chain "default/eg/http-80": name is used twice`}},
		{"HTTPS chain without TLS", func(gw *ir.Gateway) {
			httpsChain(gw).TLS = nil
		}, []string{"tls: an HTTPS chain must terminate TLS"}},
		{"HTTPS chain without secrets", func(gw *ir.Gateway) {
			httpsChain(gw).TLS.SecretNames = nil
		}, []string{"tls.secretNames"}},
		{"HTTPS chain with unknown secret", func(gw *ir.Gateway) {
			httpsChain(gw).TLS.SecretNames = []string{"default/missing"}
		}, []string{`secret "default/missing" is not in the gateway`}},
		{"HTTP chain with TLS", func(gw *ir.Gateway) {
			gw.Listeners[0].FilterChains[0].TLS = &ir.TLSConfig{SecretNames: []string{"default/cert"}}
		}, []string{"an HTTP listener does not terminate TLS"}},
		{"HTTP chain with SNI", func(gw *ir.Gateway) {
			gw.Listeners[0].FilterChains[0].ServerNames = []string{"a.example.com"}
		}, []string{"only HTTPS chains select by SNI"}},
		{"two catch-all HTTPS chains", func(gw *ir.Gateway) {
			l := gw.Listeners[1]
			l.FilterChains[0].ServerNames = nil
			l.FilterChains = append(l.FilterChains, &ir.FilterChain{
				Name: "second", TLS: &ir.TLSConfig{SecretNames: []string{"default/cert"}},
			})
		}, []string{"only one chain may take any SNI"}},
		{"same SNI on two chains", func(gw *ir.Gateway) {
			l := gw.Listeners[1]
			l.FilterChains = append(l.FilterChains, &ir.FilterChain{
				Name: "second", ServerNames: []string{"example.com"}, TLS: &ir.TLSConfig{SecretNames: []string{"default/cert"}},
			})
		}, []string{`"example.com" is also served by filter chain "default/eg/https-443/web"`}},
		{"virtual host without domains", func(gw *ir.Gateway) {
			gw.Listeners[0].FilterChains[0].VirtualHosts[0].Domains = nil
		}, []string{"domains: a virtual host needs at least one domain"}},
		{"domain in two virtual hosts", func(gw *ir.Gateway) {
			fc := gw.Listeners[0].FilterChains[0]
			fc.VirtualHosts = append(fc.VirtualHosts, &ir.VirtualHost{Name: "other", Domains: []string{"*"}})
		}, []string{`"*" is also a domain of virtual host`}},
		{"route with no action", func(gw *ir.Gateway) {
			httpRoute(gw).Forward = nil
		}, []string{"exactly one of forward, redirect and directResponse must be set, not 0"}},
		{"route with two actions", func(gw *ir.Gateway) {
			httpRoute(gw).DirectResponse = &ir.DirectResponse{StatusCode: 200}
		}, []string{"not 2"}},
		{"route without name", func(gw *ir.Gateway) {
			httpRoute(gw).Name = ""
		}, []string{"name is empty"}},
		{"unknown path match type", func(gw *ir.Gateway) {
			httpRoute(gw).Match.Path.Type = "Glob"
		}, []string{`match.path.type: "Glob" is not supported`}},
		{"relative prefix", func(gw *ir.Gateway) {
			httpRoute(gw).Match.Path.Value = "api"
		}, []string{`match.path.value: "api" does not start with '/'`}},
		{"bad regex", func(gw *ir.Gateway) {
			httpRoute(gw).Match.Path = ir.PathMatch{Type: ir.MatchRegex, Value: "/(a"}
		}, []string{"match.path.value", "regular expression"}},
		{"prefix header match", func(gw *ir.Gateway) {
			httpRoute(gw).Match.Headers = []ir.HeaderMatch{{Name: "x", Type: ir.MatchPrefix, Value: "a"}}
		}, []string{"match.headers[0] (x)", `"PathPrefix" is not supported`}},
		{"empty query name", func(gw *ir.Gateway) {
			httpRoute(gw).Match.QueryParams = []ir.HeaderMatch{{Type: ir.MatchExact, Value: "a"}}
		}, []string{"match.queryParams[0].name is empty"}},
		{"empty header to set", func(gw *ir.Gateway) {
			httpRoute(gw).RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Value: "v"}}}
		}, []string{"requestHeaders: set[0]: header name is empty"}},
		{"setting the host header", func(gw *ir.Gateway) {
			httpRoute(gw).RequestHeaders = &ir.HeaderModifier{Add: []ir.Header{{Name: "Host", Value: "v"}}}
		}, []string{`requestHeaders: add[0]: header "Host" may not be modified`}},
		{"removing a pseudo-header", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Backends[0].ResponseHeaders = &ir.HeaderModifier{Remove: []string{":status"}}
		}, []string{`backends[0].responseHeaders: remove[0]: header ":status" may not be modified`}},
		{"prefix rewrite on exact match", func(gw *ir.Gateway) {
			r := httpRoute(gw)
			r.Match.Path = ir.PathMatch{Type: ir.MatchExact, Value: "/a"}
			r.Forward.Rewrite = &ir.URLRewrite{Path: &ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: "/b"}}
		}, []string{"ReplacePrefixMatch needs a PathPrefix match"}},
		{"relative full path rewrite", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Rewrite = &ir.URLRewrite{Path: &ir.PathModifier{Type: ir.ReplaceFullPath, Value: "b"}}
		}, []string{"rewrite.path: value"}},
		{"mirror to unknown cluster", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Mirrors = []ir.Mirror{{Cluster: "default/nope:80", Numerator: 1, Denominator: 1}}
		}, []string{`mirrors[0].cluster: cluster "default/nope:80" is not in the gateway`}},
		{"mirror denominator zero", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Mirrors = []ir.Mirror{{Cluster: "default/web:80", Numerator: 1}}
		}, []string{"mirrors[0]: denominator is 0"}},
		{"mirror more than all", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Mirrors = []ir.Mirror{{Cluster: "default/web:80", Numerator: 3, Denominator: 2}}
		}, []string{"3/2 is more than 1"}},
		{"negative timeout", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Timeout = -time.Second
		}, []string{"timeout: -1s is negative"}},
		{"bad retry code", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Retry = &ir.Retry{Attempts: 1, Codes: []int{99}}
		}, []string{"retry.codes[0]: 99"}},
		{"weights overflow", func(gw *ir.Gateway) {
			httpRoute(gw).Forward.Backends = []ir.WeightedBackend{
				{Cluster: "default/web:80", Weight: 1 << 31}, {Cluster: "default/web:80", Weight: 1 << 31},
			}
		}, []string{"weights add up to 4294967296"}},
		{"redirect code", func(gw *ir.Gateway) {
			r := httpRoute(gw)
			r.Forward, r.Redirect = nil, &ir.Redirect{StatusCode: 200}
		}, []string{"redirect: statusCode: 200 is not a redirect code"}},
		{"redirect scheme", func(gw *ir.Gateway) {
			r := httpRoute(gw)
			r.Forward, r.Redirect = nil, &ir.Redirect{Scheme: "ftp", StatusCode: 302}
		}, []string{`scheme: "ftp" is not supported`}},
		{"direct response status", func(gw *ir.Gateway) {
			r := httpRoute(gw)
			r.Forward, r.DirectResponse = nil, &ir.DirectResponse{StatusCode: 99}
		}, []string{"directResponse: statusCode: 99"}},
		{"duplicate cluster", func(gw *ir.Gateway) {
			gw.Clusters = append(gw.Clusters, gw.Clusters[0])
		}, []string{`cluster "default/web:80": name is used twice`}},
		{"reserved cluster name", func(gw *ir.Gateway) {
			gw.Clusters[0].Name = InvalidBackendCluster
		}, []string{"name is reserved"}},
		{"unknown load balancer", func(gw *ir.Gateway) {
			gw.Clusters[0].LoadBalancer = "Maglev"
		}, []string{`loadBalancer: "Maglev" is not supported`}},
		{"unknown app protocol", func(gw *ir.Gateway) {
			gw.Clusters[0].Protocol = "h3"
		}, []string{`protocol: "h3" is not supported`}},
		{"endpoint without port", func(gw *ir.Gateway) {
			gw.Clusters[0].Endpoints[0].Port = 0
		}, []string{`cluster "default/web:80": endpoints[0]: port 0`}},
		{"secret without key", func(gw *ir.Gateway) {
			gw.Secrets[0].KeyPEM = nil
		}, []string{`secret "default/cert": keyPEM is empty`}},
		{"nil listener", func(gw *ir.Gateway) {
			gw.Listeners[0] = nil
		}, []string{"listeners[0] is nil"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := validGateway()
			tc.modify(gw)
			res, err := Translate(gw)
			if err == nil {
				t.Fatalf("Translate succeeded with %d listeners; want an error", len(res.Listeners))
			}
			msg := err.Error()
			if !strings.Contains(msg, `gateway "default/eg"`) {
				t.Errorf("error %q does not name the gateway", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestTranslateNil(t *testing.T) {
	if _, err := Translate(nil); err == nil {
		t.Fatal("Translate(nil) succeeded")
	}
}

func TestValidateCrossReferences(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *Resources)
		want   string
	}{
		{"missing route configuration", func(r *Resources) { r.Routes = r.Routes[1:] }, `route configuration "default/eg/http-80" does not exist`},
		{"missing load assignment", func(r *Resources) { r.Endpoints = nil }, `cluster "default/web:80": no load assignment "default/web:80"`},
		{"missing secret", func(r *Resources) { r.Secrets = nil }, `secret "default/cert" does not exist`},
		{"missing cluster", func(r *Resources) { r.Clusters = nil }, `cluster "default/web:80" does not exist`},
		{"duplicate listener", func(r *Resources) { r.Listeners = append(r.Listeners, r.Listeners[0]) }, `listener "default/eg/http-80": name is used twice`},
		{"invalid resource", func(r *Resources) { r.Clusters[0].Name = "" }, `validating cluster ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Translate(validGateway())
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Validate(); err != nil {
				t.Fatalf("Validate before the change: %v", err)
			}
			tc.modify(res)
			err = res.Validate()
			if err == nil {
				t.Fatal("Validate succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
