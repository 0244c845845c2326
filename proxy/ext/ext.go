// Package ext is the proxy's extension seam, as Envoy's is: an HTTP filter
// is one package that registers, in its init, an HTTPFilter under the full
// name of its typed-config message. The rest of the proxy knows filters only
// through this registry:
//
//   - the proxy looks each http_filters entry up by the type of its
//     typed_config (FilterFor; DecodeConfig decodes it) and each
//     typed_per_filter_config entry by the type of its config (PerRouteFor;
//     DecodePerRoute sees through envoy.config.route.v3.FilterConfig), both
//     seen through a TypedStruct, keyed by its type_url;
//   - Decode and DecodeRoute check a configuration and compile it. They are
//     pure: they run when a resource arrives, so that a bad one is refused
//     (NACKed) with an error naming the field, and in tests;
//   - Merge combines a virtual host's and a route's per-route configurations;
//   - Build and BuildRoute make what serves requests, taking the state that
//     must outlive a configuration (gRPC channels, token buckets) from a
//     Pool the runtime owns;
//   - Fields are the proto fields the filter honours: proxy/contract, which
//     refuses a resource that sets any other, is the union of the core's and
//     of what the registered filters declare.
//
// A filter runs on the request's goroutine with a Request: the request as
// the connection manager normalised it, local replies, response header
// edits and dynamic metadata. proxy/README.md shows a whole filter.
//
// A filter is linked in by a blank import in proxy/ext/all. Package ext
// imports protobuf and the Envoy protos, never the rest of the proxy.
package ext

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// HTTPFilter is an HTTP filter extension: what the proxy needs to decode,
// check and run one. Config, Decode and Build are required.
type HTTPFilter struct {
	// Name is the filter's canonical name, as Envoy names it
	// ("envoy.filters.http.ext_authz"); errors and metrics use it.
	Name string
	// Config is the message of the filter's typed_config in http_filters
	// (any value of it: only its type counts).
	Config proto.Message
	// PerRoute is the message of its typed_per_filter_config entries in
	// virtual hosts and routes; nil when it has none. It may be Config's.
	PerRoute proto.Message
	// Fields are the full names of the fields of its messages that the
	// filter honours ("envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.grpc_service").
	Fields []string
	// Counters are the counter families the filter reports (see
	// BuildContext.Counter); the runtime registers them once.
	Counters []CounterFamily

	// Decode checks a typed_config and compiles it. It is pure.
	Decode func(proto.Message) (any, error)
	// DecodeRoute checks a per-route configuration and compiles it. It is
	// pure. Required when PerRoute is set.
	DecodeRoute func(proto.Message) (any, error)
	// BuildRoute makes the per-route configuration that requests see from
	// the decoded one, taking its shared state from rb.Lease. nil: the
	// decoded configuration is used as it is.
	BuildRoute func(cfg any, rb RouteBuild) (any, error)
	// Merge returns a route's configuration from its virtual host's and its
	// own (both built). nil: the route's replaces the virtual host's.
	Merge func(vhost, route any) any
	// Build makes the filter of a chain from its decoded configuration.
	Build func(cfg any, b BuildContext) (Filter, error)
}

// Status is what a filter tells the connection manager about a request.
type Status uint8

const (
	// Continue passes the request on to the next filter (the router last).
	Continue Status = iota
	// Stop ends the request: the filter answered it (Request.Reply).
	Stop
)

// Filter is an HTTP filter of one chain and one configuration. It is
// read-only once built and runs synchronously on the request's goroutine:
// what it keeps for a request lives in its locals, and what crosses phases
// (response header edits, dynamic metadata) in the Request.
type Filter interface {
	// OnRequest runs the filter once the route is chosen. route is the
	// route's configuration of the filter (built, merged), nil when
	// neither the route nor its virtual host has one.
	OnRequest(rq *Request, route any) Status
}

// CounterFamily declares a counter the filter reports. The proxy adds the
// labels "gateway" and "filter" (the filter's name in http_filters) before
// Labels.
type CounterFamily struct {
	Name, Help string
	Labels     []string
}

// Counter is a counter of a CounterFamily, labelled.
type Counter interface{ Inc() }

// Cluster is what a filter may know of a cluster it calls.
type Cluster struct {
	Name string
	// HTTP2 is set when the cluster speaks HTTP/2 (h2c), as gRPC needs.
	HTTP2          bool
	ConnectTimeout time.Duration
	// Endpoints are the addresses ("host:port") of its endpoints.
	Endpoints []string
}

// BuildContext is what building a filter may use of the configuration being
// compiled.
type BuildContext interface {
	// Name is the filter's name in http_filters.
	Name() string
	// Lease holds the shared state the filter takes for this configuration.
	Lease() *Lease
	// Cluster returns a cluster the filter calls: the configuration's, or
	// one still serving that the configuration dropped (make before break:
	// the control plane may drop it before the listener that names it). The
	// cluster stays while the filter names it.
	Cluster(name string) (Cluster, bool)
	// WatchCluster gives f the named cluster as it is each time a
	// configuration holding the filter is applied (its endpoints change
	// without the filter being built again).
	WatchCluster(name string, f func(Cluster))
	// Counter returns the counter of a family the filter declared, with the
	// values of its Labels.
	Counter(family string, labels ...string) Counter
	// Log is the proxy's logger; Clock its clock.
	Log() *slog.Logger
	Clock() func() time.Time
}

// RouteBuild is what building a per-route configuration may use.
type RouteBuild struct {
	// Scope names the route configuration, virtual host, route and filter
	// the configuration belongs to; state keyed by it (a token bucket)
	// carries over to the next configuration with the same scope.
	Scope string
	Lease *Lease
}

var registry = struct {
	sync.RWMutex
	config, perRoute map[protoreflect.FullName]*HTTPFilter
	fields           map[protoreflect.FullName]bool
	names            map[string]bool
}{
	config:   map[protoreflect.FullName]*HTTPFilter{},
	perRoute: map[protoreflect.FullName]*HTTPFilter{},
	fields:   map[protoreflect.FullName]bool{},
	names:    map[string]bool{},
}

// RegisterHTTP registers an HTTP filter; call it from an init function. It
// panics when the filter is incomplete, declares a field that does not
// exist, or when its name or one of its messages is registered already.
func RegisterHTTP(f *HTTPFilter) {
	switch {
	case f.Name == "" || f.Config == nil || f.Decode == nil || f.Build == nil:
		panic(fmt.Sprintf("ext: HTTP filter %q: Name, Config, Decode and Build are required", f.Name))
	case f.PerRoute != nil && f.DecodeRoute == nil:
		panic(fmt.Sprintf("ext: HTTP filter %q: PerRoute needs DecodeRoute", f.Name))
	}
	for _, n := range f.Fields {
		if !fieldExists(protoreflect.FullName(n)) {
			panic(fmt.Sprintf("ext: HTTP filter %q honours %s, which is not a known field", f.Name, n))
		}
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.names[f.Name] {
		panic(fmt.Sprintf("ext: HTTP filter %q is registered twice", f.Name))
	}
	cfg := messageName(f.Config)
	if registry.config[cfg] != nil {
		panic(fmt.Sprintf("ext: HTTP filter %q: %s is the config of %q already", f.Name, cfg, registry.config[cfg].Name))
	}
	if f.PerRoute != nil {
		rt := messageName(f.PerRoute)
		if registry.perRoute[rt] != nil {
			panic(fmt.Sprintf("ext: HTTP filter %q: %s is the per-route config of %q already", f.Name, rt, registry.perRoute[rt].Name))
		}
		registry.perRoute[rt] = f
	}
	registry.names[f.Name] = true
	registry.config[cfg] = f
	for _, n := range f.Fields {
		registry.fields[protoreflect.FullName(n)] = true
	}
}

// FilterFor returns the filter whose typed_config is a message of this name.
func FilterFor(name protoreflect.FullName) *HTTPFilter {
	registry.RLock()
	defer registry.RUnlock()
	return registry.config[name]
}

// PerRouteFor returns the filter whose per-route configuration is a message
// of this name.
func PerRouteFor(name protoreflect.FullName) *HTTPFilter {
	registry.RLock()
	defer registry.RUnlock()
	return registry.perRoute[name]
}

// HTTPFilters returns the registered filters, by name.
func HTTPFilters() []*HTTPFilter {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]*HTTPFilter, 0, len(registry.config))
	for _, f := range registry.config {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Honours reports whether a registered filter honours the field.
func Honours(field protoreflect.FullName) bool {
	registry.RLock()
	defer registry.RUnlock()
	return registry.fields[field]
}

// TypedConfig returns a new message of a registered filter's config or
// per-route config of this name, or nil.
func TypedConfig(name protoreflect.FullName) proto.Message {
	if f := FilterFor(name); f != nil {
		return f.Config.ProtoReflect().New().Interface()
	}
	if f := PerRouteFor(name); f != nil {
		return f.PerRoute.ProtoReflect().New().Interface()
	}
	return nil
}

// Fields returns the full names of the fields the registered filters
// honour, sorted.
func Fields() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.fields))
	for n := range registry.fields {
		out = append(out, string(n))
	}
	sort.Strings(out)
	return out
}

func messageName(m proto.Message) protoreflect.FullName {
	return m.ProtoReflect().Descriptor().FullName()
}

// fieldExists reports whether name is the full name of a field of a linked
// message.
func fieldExists(name protoreflect.FullName) bool {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name.Parent())
	if err != nil {
		return false
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	return ok && md.Fields().ByName(name.Name()) != nil
}
