package server

import (
	"slices"
	"strings"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// ListenerState is what the connected proxies of a Gateway did with one
// listener of the snapshot they are served.
type ListenerState struct {
	Serving  int // proxies that accepted the snapshot's listeners with it
	Rejected int // proxies that could not serve it
	Pending  int // proxies that have not answered that version yet
	// Node and Cause say why the first proxy (by node id) that rejected it
	// did.
	Node  string
	Cause string
}

// DataPlane is what the proxies of one Gateway connected to this server did
// with the listeners (LDS) of its current snapshot.
type DataPlane struct {
	// Version is the snapshot's listener version; "" when the Gateway has
	// no snapshot.
	Version string
	// Proxies counts the connected proxies (ADS or LDS streams).
	Proxies int
	// Listeners has every listener of the snapshot, by name.
	Listeners map[string]ListenerState
}

// envoyLDSPrefix starts the message of Envoy's NACK of listeners; each
// failed listener follows as "NAME: CAUSE\n" (Envoy's LdsApiImpl, in
// source/common/listener_manager/lds_api.cc). sekisho's proxy writes the
// same.
const envoyLDSPrefix = "Error adding/updating listener(s) "

// DataPlane returns what the connected proxies of gateway did with the
// listeners of its current snapshot.
func (s *Server) DataPlane(gateway string) DataPlane {
	snap, err := s.cache.GetSnapshot(gateway)
	if err != nil {
		return DataPlane{}
	}
	names := make([]string, 0)
	for n := range snap.GetResources(resourcev3.ListenerType) {
		names = append(names, n)
	}
	var streams []NodeStatus
	for _, n := range s.Nodes() {
		if n.Gateway == gateway {
			streams = append(streams, n)
		}
	}
	return dataPlane(snap.GetVersion(resourcev3.ListenerType), names, streams)
}

// dataPlane derives the state of each listener of version from the
// streams of one Gateway's proxies.
func dataPlane(version string, listeners []string, streams []NodeStatus) DataPlane {
	dp := DataPlane{Version: version, Listeners: make(map[string]ListenerState, len(listeners))}
	for _, l := range listeners {
		dp.Listeners[l] = ListenerState{}
	}
	slices.SortFunc(streams, func(a, b NodeStatus) int { return strings.Compare(a.NodeID, b.NodeID) })
	for _, st := range streams {
		if st.TypeURL != "" && st.TypeURL != resourcev3.ListenerType {
			continue
		}
		dp.Proxies++
		ts := st.Types[resourcev3.ListenerType]
		nacked := ts.LastNACKVersion == version && !ts.LastNACKAt.IsZero() &&
			(ts.AckedVersion != version || ts.LastNACKAt.After(ts.AckedAt))
		acked := !nacked && ts.AckedVersion == version && version != ""
		var failed map[string]string
		if nacked {
			failed = ts.LastNACKResources
			if failed == nil {
				failed = parseLDSMessage(ts.LastNACKMessage, listeners)
			}
			if len(failed) == 0 {
				// The message names no listener: all of them are refused.
				failed = make(map[string]string, len(listeners))
				for _, l := range listeners {
					failed[l] = ts.LastNACKMessage
				}
			}
		}
		for _, l := range listeners {
			ls := dp.Listeners[l]
			cause, bad := failed[l]
			switch {
			case bad:
				ls.Rejected++
				if ls.Node == "" {
					ls.Node, ls.Cause = st.NodeID, cause
				}
			case acked || nacked:
				ls.Serving++
			default:
				ls.Pending++
			}
			dp.Listeners[l] = ls
		}
	}
	return dp
}

// rejectedResources reads the resources a NACK names from its details: a
// google.rpc.BadRequest with one field violation per resource (field: the
// resource's name). nil when it has none.
func rejectedResources(detail *rpcstatus.Status) map[string]string {
	var out map[string]string
	for _, a := range detail.GetDetails() {
		br := &errdetails.BadRequest{}
		if !a.MessageIs(br) || a.UnmarshalTo(br) != nil {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if out == nil {
				out = map[string]string{}
			}
			out[v.GetField()] = v.GetDescription()
		}
	}
	return out
}

// parseLDSMessage reads the listeners an Envoy-form LDS NACK message names
// and their causes: "Error adding/updating listener(s) " then "NAME: CAUSE"
// per listener, one a line. A cause may span lines; a line that does not
// start with a known listener name continues the cause before it. nil when
// the message does not have that form.
func parseLDSMessage(msg string, listeners []string) map[string]string {
	rest, ok := strings.CutPrefix(msg, envoyLDSPrefix)
	if !ok {
		return nil
	}
	// Longest names first, so that a name that prefixes another does not
	// take its lines.
	names := slices.Clone(listeners)
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	out := map[string]string{}
	cur := ""
	for _, line := range strings.Split(strings.TrimRight(rest, "\n"), "\n") {
		started := false
		for _, n := range names {
			if cause, ok := strings.CutPrefix(line, n+": "); ok {
				cur, out[n], started = n, cause, true
				break
			}
		}
		if !started && cur != "" {
			out[cur] += "\n" + line
		}
	}
	return out
}
