package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/controlplane"
	"github.com/sekisho/sekisho/xds/server"
)

// pushLatency measures, edits times over, the time from a file in the watched
// folder being replaced (as editors and `kubectl`-like tools do: write a
// temporary file, rename it over) to the new route table arriving at a proxy
// subscribed over ADS on 127.0.0.1.
func pushLatency(quickstart string, edits int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "sekisho-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, f := range []string{"gateway.yaml", "route.yaml", "backends.yaml"} {
		b, err := os.ReadFile(filepath.Join(quickstart, f))
		if err != nil {
			return nil, fmt.Errorf("reading the quickstart: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	route, err := os.ReadFile(filepath.Join(dir, "route.yaml"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(route), "weight: 90") {
		return nil, fmt.Errorf("the quickstart route has no 'weight: 90' to edit")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New(server.Options{Logger: log})
	pipe := controlplane.New(srv, controlplane.Options{Logger: log, Translate: gwtranslate.Options{DefaultAddresses: []string{"127.0.0.1"}}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(ctx, lis) }()
	go func() {
		w := &file.Watcher{Dir: dir, Logger: log, OnChange: func(res *resource.Resources, problems []resource.Problem) {
			_, _ = pipe.Apply(ctx, res, problems)
		}}
		_ = w.Run(ctx)
	}()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	node := &corev3.Node{Id: "bench", Cluster: "default/quickstart"}
	name := "default/quickstart/http-8080"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("waiting for the first route table: %w", err)
	}
	var out []time.Duration
	for i := 0; i < edits; i++ {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			return nil, err
		}
		// Let the watcher settle so each edit is measured on its own.
		time.Sleep(200 * time.Millisecond)
		w := 80 - i%50
		edited := strings.Replace(strings.Replace(string(route), "weight: 90", fmt.Sprintf("weight: %d", w), 1), "weight: 10", fmt.Sprintf("weight: %d", 100-w), 1)
		tmp := filepath.Join(dir, ".route.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(edited), 0o644); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := os.Rename(tmp, filepath.Join(dir, "route.yaml")); err != nil {
			return nil, err
		}
		resp, err = recvWithin(stream, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("edit %d: %w", i, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

func recvWithin(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, d time.Duration) (*discoveryv3.DiscoveryResponse, error) {
	type result struct {
		r   *discoveryv3.DiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := stream.Recv()
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		return r.r, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("no route table pushed within %s", d)
	}
}
