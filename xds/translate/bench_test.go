package translate

import (
	"fmt"
	"testing"
	"time"

	"github.com/sekisho/sekisho/ir"
)

// generatedGateway is n routes in virtual hosts of 100 routes, forwarding to
// 50 clusters; the virtual hosts alternate between an HTTP and an HTTPS listener.
func generatedGateway(n int) *ir.Gateway {
	const clusters = 50
	gw := &ir.Gateway{Name: "bench/eg", Namespace: "bench", GatewayName: "eg"}
	for c := range clusters {
		gw.Clusters = append(gw.Clusters, &ir.Cluster{
			Name: fmt.Sprintf("bench/svc-%02d:80", c), Protocol: ir.AppProtocolHTTP1, LoadBalancer: ir.LoadBalancerRoundRobin,
			Endpoints: []ir.Endpoint{
				{Address: fmt.Sprintf("10.0.%d.1", c), Port: 8080, Ready: true},
				{Address: fmt.Sprintf("10.0.%d.2", c), Port: 8080, Ready: true, Zone: "z1"},
			},
		})
	}
	gw.Secrets = []*ir.Secret{{Name: "bench/cert", CertPEM: []byte("cert"), KeyPEM: []byte("key")}}
	http := &ir.FilterChain{Name: "bench/eg/http-80"}
	https := &ir.FilterChain{Name: "bench/eg/https-443", TLS: &ir.TLSConfig{SecretNames: []string{"bench/cert"}, ALPN: []string{"h2", "http/1.1"}}}
	var vh *ir.VirtualHost
	for i := range n {
		if i%100 == 0 {
			host := fmt.Sprintf("host-%d.example.com", i/100)
			vh = &ir.VirtualHost{Name: "bench/eg/" + host, Domains: []string{host}}
			if (i/100)%2 == 0 {
				http.VirtualHosts = append(http.VirtualHosts, vh)
			} else {
				https.VirtualHosts = append(https.VirtualHosts, vh)
			}
		}
		vh.Routes = append(vh.Routes, &ir.Route{
			Name:   fmt.Sprintf("httproute/bench/r%d/rule/0/match/0", i),
			Source: ir.RouteSource{Kind: "HTTPRoute", Namespace: "bench", Name: fmt.Sprintf("r%d", i)},
			Match: ir.Match{
				Path:    ir.PathMatch{Type: ir.MatchPrefix, Value: fmt.Sprintf("/api/%d", i)},
				Headers: []ir.HeaderMatch{{Name: "x-version", Type: ir.MatchExact, Value: "v1"}},
			},
			RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "x-route", Value: "r"}}},
			Forward: &ir.Forward{
				Backends: []ir.WeightedBackend{
					{Cluster: gw.Clusters[i%clusters].Name, Weight: 90},
					{Cluster: gw.Clusters[(i+1)%clusters].Name, Weight: 10},
				},
				Timeout: 10 * time.Second,
				Retry:   &ir.Retry{Attempts: 2, Codes: []int{503}},
			},
		})
	}
	gw.Listeners = []*ir.Listener{
		{Name: "bench/eg/http-80", Address: "0.0.0.0", Port: 80, Protocol: ir.ProtocolHTTP, FilterChains: []*ir.FilterChain{http}},
		{Name: "bench/eg/https-443", Address: "0.0.0.0", Port: 443, Protocol: ir.ProtocolHTTPS, FilterChains: []*ir.FilterChain{https}},
	}
	return gw
}

func TestGeneratedGateway(t *testing.T) {
	res, err := Translate(generatedGateway(250))
	if err != nil {
		t.Fatal(err)
	}
	routes := 0
	for _, rc := range res.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			routes += len(vh.GetRoutes())
		}
	}
	if routes != 250 {
		t.Errorf("got %d routes over both listeners, want 250", routes)
	}
}

// BenchmarkTranslate translates n routes, validation included.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		gw := generatedGateway(n)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Translate(gw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
