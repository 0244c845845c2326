package xdsclient

import (
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeURLOf is the Any type URL of a message type.
func typeURLOf(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// The resource type URLs the client subscribes to.
var (
	ClusterType  = typeURLOf(&clusterv3.Cluster{})
	EndpointType = typeURLOf(&endpointv3.ClusterLoadAssignment{})
	ListenerType = typeURLOf(&listenerv3.Listener{})
	RouteType    = typeURLOf(&routev3.RouteConfiguration{})
	SecretType   = typeURLOf(&tlsv3.Secret{})

	resourceWrapperType = typeURLOf(&discoveryv3.Resource{})
)

// wildcardTypes are subscribed to as a whole; a response carries every
// resource of the type.
var wildcardTypes = []string{ClusterType, ListenerType}

// namedTypes are subscribed to by the names the accepted clusters and
// listeners reference; a response carries (some of) the named resources.
var namedTypes = []string{EndpointType, RouteType, SecretType}

// isWildcard reports whether typeURL is a wildcard type.
func isWildcard(typeURL string) bool { return slices.Contains(wildcardTypes, typeURL) }

// shortType is the metric label and log value of a type URL.
func shortType(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "cds"
	case EndpointType:
		return "eds"
	case ListenerType:
		return "lds"
	case RouteType:
		return "rds"
	case SecretType:
		return "sds"
	}
	return "unknown"
}

// decoded is one response's resources, by name, as the typed map of the
// Snapshot field the type replaces.
type decoded struct {
	typeURL   string
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	secrets   map[string]*tlsv3.Secret
}

// decodeResponse decodes every resource of a response of typeURL. An
// unknown type, an undecodable or unnamed resource, or two resources with
// the same name are errors naming the resource at fault.
func decodeResponse(typeURL string, anys []*anypb.Any) (*decoded, error) {
	d := &decoded{typeURL: typeURL}
	var err error
	switch typeURL {
	case ClusterType:
		d.clusters, err = decodeAll(typeURL, anys, func() *clusterv3.Cluster { return &clusterv3.Cluster{} },
			(*clusterv3.Cluster).GetName)
	case EndpointType:
		d.endpoints, err = decodeAll(typeURL, anys, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} },
			(*endpointv3.ClusterLoadAssignment).GetClusterName)
	case ListenerType:
		d.listeners, err = decodeAll(typeURL, anys, func() *listenerv3.Listener { return &listenerv3.Listener{} },
			(*listenerv3.Listener).GetName)
	case RouteType:
		d.routes, err = decodeAll(typeURL, anys, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} },
			(*routev3.RouteConfiguration).GetName)
	case SecretType:
		d.secrets, err = decodeAll(typeURL, anys, func() *tlsv3.Secret { return &tlsv3.Secret{} },
			(*tlsv3.Secret).GetName)
	default:
		return nil, fmt.Errorf("unsupported resource type %q", typeURL)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// decodeAll decodes anys into messages of one type, keyed by name.
func decodeAll[M proto.Message](typeURL string, anys []*anypb.Any, newM func() M, nameOf func(M) string) (map[string]M, error) {
	out := make(map[string]M, len(anys))
	for i, a := range anys {
		wrapperName := ""
		if a.GetTypeUrl() == resourceWrapperType {
			w := &discoveryv3.Resource{}
			if err := a.UnmarshalTo(w); err != nil {
				return nil, fmt.Errorf("decoding %s resource #%d (wrapped): %w", shortType(typeURL), i, err)
			}
			wrapperName = w.GetName()
			a = w.GetResource()
		}
		if a.GetTypeUrl() != typeURL {
			what := fmt.Sprintf("#%d", i)
			if wrapperName != "" {
				what = fmt.Sprintf("%q", wrapperName)
			}
			return nil, fmt.Errorf("decoding %s resource %s: type %q in a %s response", shortType(typeURL), what, a.GetTypeUrl(), typeURL)
		}
		m := newM()
		if err := a.UnmarshalTo(m); err != nil {
			what := fmt.Sprintf("#%d", i)
			if wrapperName != "" {
				what = fmt.Sprintf("%q", wrapperName)
			}
			return nil, fmt.Errorf("decoding %s resource %s: %w", shortType(typeURL), what, err)
		}
		name := nameOf(m)
		if name == "" {
			return nil, fmt.Errorf("decoding %s resource #%d: resource has no name", shortType(typeURL), i)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("decoding %s resource %q: duplicate name", shortType(typeURL), name)
		}
		out[name] = m
	}
	return out, nil
}

// filterNames returns the entries of m whose name is in keep. It returns m
// itself when nothing is dropped, so unchanged maps are shared.
func filterNames[M any](m map[string]M, keep []string) map[string]M {
	drop := false
	for name := range m {
		if !slices.Contains(keep, name) {
			drop = true
			break
		}
	}
	if !drop {
		return m
	}
	out := make(map[string]M, len(keep))
	for name, v := range m {
		if slices.Contains(keep, name) {
			out[name] = v
		}
	}
	return out
}

// mergeNamed is the new content of a named type: the resources of the
// previous view still subscribed to, updated by those the response carries.
// Resources the response carries but that are not subscribed to (an answer
// to an older subscription) are dropped.
func mergeNamed[M any](prev, got map[string]M, subscribed []string) map[string]M {
	out := make(map[string]M, len(subscribed))
	for name, v := range prev {
		if slices.Contains(subscribed, name) {
			out[name] = v
		}
	}
	for name, v := range got {
		if slices.Contains(subscribed, name) {
			out[name] = v
		}
	}
	return out
}

// equalMaps reports whether two resource maps hold equal resources.
func equalMaps[M proto.Message](a, b map[string]M) bool {
	if len(a) != len(b) {
		return false
	}
	for name, va := range a {
		vb, ok := b[name]
		if !ok || !proto.Equal(va, vb) {
			return false
		}
	}
	return true
}

// emptySnapshot is the view before anything was applied.
func emptySnapshot() *Snapshot {
	return &Snapshot{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
		Versions:  map[string]string{},
	}
}

// clone returns a shallow copy of s: its maps are shared until replaced.
func (s *Snapshot) clone() *Snapshot {
	c := *s
	c.Versions = maps.Clone(s.Versions)
	if c.Versions == nil {
		c.Versions = map[string]string{}
	}
	return &c
}
