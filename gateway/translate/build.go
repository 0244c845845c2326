package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/ir"
)

// compareEntries orders the routes of one virtual host. GRPCRoute entries,
// which only take gRPC requests, come first, in the GRPCRoute spec's order;
// HTTPRoute entries follow in the HTTPRoute spec's order.
func compareEntries(a, b *routeEntry) int {
	if a.grpc != b.grpc {
		return cmpTrueFirst(a.grpc, b.grpc)
	}
	if a.grpc {
		return cmp.Or(
			cmp.Compare(b.grpcService, a.grpcService),
			cmp.Compare(b.grpcMethod, a.grpcMethod),
			cmp.Compare(b.headers, a.headers),
			cmp.Compare(a.created, b.created),
			strings.Compare(a.owner.nsName, b.owner.nsName),
			cmp.Compare(a.rule, b.rule),
			cmp.Compare(a.match, b.match),
		)
	}
	return cmp.Or(
		cmp.Compare(a.pathRank, b.pathRank),
		cmp.Compare(b.pathLen, a.pathLen),
		cmpTrueFirst(a.method, b.method),
		cmp.Compare(b.headers, a.headers),
		cmp.Compare(b.queries, a.queries),
		cmp.Compare(a.created, b.created),
		strings.Compare(a.owner.nsName, b.owner.nsName),
		strings.Compare(a.owner.kind, b.owner.kind),
		cmp.Compare(a.rule, b.rule),
		cmp.Compare(a.match, b.match),
	)
}

func cmpTrueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

type vhostBuilder struct {
	host    string
	entries []*routeEntry
}

type vhostSet map[string]*vhostBuilder

func (s vhostSet) get(h string) *vhostBuilder {
	v := s[h]
	if v == nil {
		v = &vhostBuilder{host: h}
		s[h] = v
	}
	return v
}

// build returns the virtual hosts, each with its own routes first and then,
// as the spec's hostname precedence asks, the routes of every less specific
// hostname of the same listener that covers it (most specific first): a
// request for bar.example.com that no bar.example.com route takes falls
// through to the *.example.com routes, then to the routes for any hostname.
// sameOwner says whether two hostnames are served by the same Gateway
// listener; requests never fall through to another listener's routes.
func (s vhostSet) build(sameOwner func(a, b string) bool) []*ir.VirtualHost {
	for _, b := range s {
		slices.SortFunc(b.entries, compareEntries)
	}
	out := make([]*ir.VirtualHost, 0, len(s))
	for _, b := range s {
		vh := &ir.VirtualHost{Name: b.host, Domains: []string{b.host}}
		for _, e := range b.entries {
			vh.Routes = append(vh.Routes, e.route)
		}
		for _, w := range coveringHosts(b.host) {
			if c := s[w]; c != nil && len(c.entries) > 0 && sameOwner(w, b.host) {
				for _, e := range c.entries {
					vh.Routes = append(vh.Routes, e.route)
				}
			}
		}
		out = append(out, vh)
	}
	slices.SortFunc(out, func(a, b *ir.VirtualHost) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// coveringHosts lists the wildcard hostnames that cover h, most specific
// first, ending with "*": for "a.b.example.com", "*.b.example.com",
// "*.example.com", "*.com", "*".
func coveringHosts(h string) []string {
	if h == "*" {
		return nil
	}
	var out []string
	rest := strings.TrimPrefix(h, "*.")
	for {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		out = append(out, "*."+rest)
	}
	return append(out, "*")
}

// build assembles the IR of every programmed Gateway.
func (t *translator) build() *ir.Config {
	cfg := &ir.Config{}
	for _, g := range t.gwOrder {
		if g.irGateway == nil {
			continue
		}
		out := g.irGateway
		byPort := map[int32][]*listenerCtx{}
		var ports []int32
		for _, l := range g.listeners {
			if !l.programmed() {
				continue
			}
			if byPort[l.port] == nil {
				ports = append(ports, l.port)
			}
			byPort[l.port] = append(byPort[l.port], l)
		}
		slices.Sort(ports)
		secrets := map[string]*ir.Secret{}
		for _, port := range ports {
			ls := byPort[port]
			proto := ir.ProtocolHTTP
			if ls[0].protocol == gwv1.HTTPSProtocolType {
				proto = ir.ProtocolHTTPS
			}
			name := fmt.Sprintf("%s/%s/%s-%d", g.gw.Namespace, g.gw.Name, strings.ToLower(string(proto)), port)
			il := &ir.Listener{Name: name, Address: "0.0.0.0", Port: uint32(port), Protocol: proto}
			if proto == ir.ProtocolHTTP {
				vs := vhostSet{}
				for _, l := range ls {
					for _, a := range l.attachments {
						if len(a.route.entries) == 0 {
							continue
						}
						for _, h := range a.hosts {
							if bestListener(ls, h) != l {
								continue // a more specific listener owns this hostname
							}
							vb := vs.get(h)
							vb.entries = append(vb.entries, a.route.entries...)
						}
					}
					if l.hostname != "" {
						vs.get(l.hostname)
					}
				}
				sameOwner := func(a, b string) bool { return bestListener(ls, a) == bestListener(ls, b) }
				il.FilterChains = []*ir.FilterChain{{Name: name, VirtualHosts: vs.build(sameOwner)}}
			} else {
				for _, l := range ls {
					vs := vhostSet{}
					for _, a := range l.attachments {
						if len(a.route.entries) == 0 {
							continue
						}
						for _, h := range a.hosts {
							vb := vs.get(h)
							vb.entries = append(vb.entries, a.route.entries...)
						}
					}
					if l.hostname != "" {
						vs.get(l.hostname)
					}
					fc := &ir.FilterChain{Name: name + "/" + l.name, VirtualHosts: vs.build(func(_, _ string) bool { return true }), TLS: &ir.TLSConfig{ALPN: []string{"h2", "http/1.1"}}}
					if l.hostname != "" {
						fc.ServerNames = []string{l.hostname}
					}
					for _, s := range l.secrets {
						fc.TLS.SecretNames = append(fc.TLS.SecretNames, s.Name)
						secrets[s.Name] = s
					}
					slices.Sort(fc.TLS.SecretNames)
					fc.TLS.SecretNames = slices.Compact(fc.TLS.SecretNames)
					il.FilterChains = append(il.FilterChains, fc)
				}
				slices.SortFunc(il.FilterChains, func(a, b *ir.FilterChain) int { return strings.Compare(a.Name, b.Name) })
			}
			out.Listeners = append(out.Listeners, il)
		}
		used := map[string]bool{}
		for _, il := range out.Listeners {
			for _, fc := range il.FilterChains {
				for _, vh := range fc.VirtualHosts {
					for _, r := range vh.Routes {
						if r.Forward == nil {
							continue
						}
						for _, b := range r.Forward.Backends {
							used[b.Cluster] = true
						}
						for _, m := range r.Forward.Mirrors {
							used[m.Cluster] = true
						}
					}
				}
			}
		}
		for name := range used {
			if c := t.clusters[name]; c != nil {
				out.Clusters = append(out.Clusters, c)
			}
		}
		slices.SortFunc(out.Clusters, func(a, b *ir.Cluster) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range secrets {
			out.Secrets = append(out.Secrets, s)
		}
		slices.SortFunc(out.Secrets, func(a, b *ir.Secret) int { return strings.Compare(a.Name, b.Name) })
		cfg.Gateways = append(cfg.Gateways, out)
	}
	slices.SortFunc(cfg.Gateways, func(a, b *ir.Gateway) int { return strings.Compare(a.Name, b.Name) })
	return cfg
}

// bestListener returns the listener with the most specific hostname that
// covers h, the one that owns requests for h.
func bestListener(ls []*listenerCtx, h string) *listenerCtx {
	var best *listenerCtx
	for _, l := range ls {
		if !hostMatches(l.hostname, h) {
			continue
		}
		if best == nil || specificity(l.hostname) > specificity(best.hostname) {
			best = l
		}
	}
	return best
}
