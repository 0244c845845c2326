package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// largeGateway is one gateway with a RouteConfiguration of 10 000 routes
// spread over 1 000 EDS clusters (each with a ClusterLoadAssignment).
func largeGateway(b *testing.B, timeout time.Duration) map[resourcev3.Type][]types.Resource {
	b.Helper()
	f := defaultFixture()
	f.clusters = make([]string, 1000)
	for i := range f.clusters {
		f.clusters[i] = fmt.Sprintf("backend-%04d", i)
	}
	f.timeout[f.clusters[0]] = timeout
	res := f.build(b)
	vh := res[resourcev3.RouteType][0].(*routev3.RouteConfiguration).VirtualHosts[0]
	vh.Routes = vh.Routes[:0]
	for i := range 10000 {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/svc/%05d", i)}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: f.clusters[i%len(f.clusters)]},
			}},
		})
	}
	return res
}

func BenchmarkSet(b *testing.B) {
	ctx := context.Background()
	variants := []desiredStateB{
		{"ns/big": largeGateway(b, time.Second)},
		{"ns/big": largeGateway(b, 2*time.Second)},
	}

	b.Run("changed", func(b *testing.B) {
		s := New(Options{Logger: quietLogger()})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Set(ctx, variants[i%2]); err != nil {
				b.Fatalf("Set: %v", err)
			}
			i++
		}
	})

	b.Run("unchanged", func(b *testing.B) {
		s := New(Options{Logger: quietLogger()})
		if err := s.Set(ctx, variants[0]); err != nil {
			b.Fatalf("Set: %v", err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Set(ctx, variants[0]); err != nil {
				b.Fatalf("Set: %v", err)
			}
		}
	})
}

type desiredStateB = map[string]map[resourcev3.Type][]types.Resource
