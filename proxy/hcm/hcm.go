// Package hcm is the network filter envoy.filters.network.http_connection_manager:
// it serves the HTTP requests of a listener's filter chain. Plaintext
// HTTP/1.1 goes through its own server (H1Server, on package h1's strict
// parser); HTTP/2 and HTTP/1.1 over TLS come from net/http. For each
// request the Handler picks the route (package router), runs the chain's
// HTTP filters (extensions, package ext), then the route's action: a direct
// response, a redirect, or the router's forward to a cluster (package
// upstream), with retries, mirrors, upgrades and the fast path that copies
// an HTTP/1.1 head upstream and back without building header maps.
//
// The configuration is the runtime's (package proxy), which compiles it
// and swaps it atomically; the handler reads it once per request through
// the Runtime interface.
package hcm

import (
	"context"
	"log/slog"
	"net"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/router"
	"github.com/sekisho/sekisho/proxy/upstream"
)

// MaxReplayBody is the largest request body buffered so that the request can
// be retried or mirrored.
const MaxReplayBody = 64 << 10

// Runtime is what the connection manager needs of the proxy's runtime.
type Runtime interface {
	// Config is the configuration serving now.
	Config() Config
	Log() *slog.Logger
	// AccessLog receives one line per request; nil: none.
	AccessLog() *slog.Logger
	// TrackHijacked records an upgraded connection (add) or forgets it, so
	// that closing the runtime ends it.
	TrackHijacked(c net.Conn, add bool)
}

// Config is one compiled configuration.
type Config interface {
	// Chain returns the filter chain of a listener for a server name.
	Chain(listener, sni string) (Chain, bool)
	// Cluster returns a cluster (nil: none).
	Cluster(name string) *upstream.Cluster
}

// Chain is a filter chain's connection manager.
type Chain interface {
	// Routes is its route table; its routes' Ext is a *RouteExt.
	Routes() *router.Table
	// HTTPFilters are the HTTP filters before the router (none: only the
	// router, and no filter work).
	HTTPFilters() []*HTTPFilter
	// WebSocket: upgrade_configs allows WebSocket upgrades.
	WebSocket() bool
}

// HTTPFilter is an HTTP filter of a chain.
type HTTPFilter struct {
	Name string // in http_filters: the key of its per-route configuration
	Ext  *ext.HTTPFilter
	Run  ext.Filter
}

// RouteFilter is a route's configuration of one filter: its
// typed_per_filter_config entry, else its virtual host's, merged as the
// filter merges them.
type RouteFilter struct {
	Ext      *ext.HTTPFilter // nil when Disabled without a config
	Config   any
	Disabled bool // the filter does not run on the route
}

// RouteExt is what the connection manager hangs on each compiled route.
type RouteExt struct {
	// Stats are the route's metrics, by backend cluster; NoBackend those
	// of requests that reached none.
	Stats     map[string]*RouteStats
	NoBackend *RouteStats
	// Filters is the route's configuration of HTTP filters, by filter name.
	Filters map[string]*RouteFilter
}

// ConnInfo is what a request needs to know about its connection.
type ConnInfo struct {
	TLS bool
	SNI string
}

type connInfoKey struct{}

// PlainConn is the ConnInfo of a plaintext connection.
var PlainConn = &ConnInfo{}

// WithConnInfo returns ctx carrying the connection's ConnInfo.
func WithConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// connInfoOf returns the request context's ConnInfo (PlainConn: none).
func connInfoOf(ctx context.Context) *ConnInfo {
	if ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo); ci != nil {
		return ci
	}
	return PlainConn
}
