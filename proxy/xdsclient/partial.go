package xdsclient

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/anypb"
)

// ResourceError is one resource an Applier could not serve.
type ResourceError struct {
	TypeURL string
	Name    string
	Err     error
}

// PartialError is what an Applier returns when it serves a view except some
// of its resources, as Envoy applies the listeners of one LDS update one by
// one: the good ones serve, the bad ones are reported together. The client
// then keeps the view (the resources that serve stay), NACKs each response
// whose type has a resource in Resources, and ACKs the others.
//
// Resources lists every resource of the view that does not serve, including
// those that failed on an earlier view and still do.
type PartialError struct {
	Resources []ResourceError
}

func (e *PartialError) Error() string {
	var b strings.Builder
	for i, r := range e.Resources {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %q: %v", shortType(r.TypeURL), r.Name, r.Err)
	}
	return b.String()
}

// of returns the resources of typeURL, sorted by name.
func (e *PartialError) of(typeURL string) []ResourceError {
	var out []ResourceError
	for _, r := range e.Resources {
		if r.TypeURL == typeURL {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// asPartial returns err as a *PartialError, or nil.
func asPartial(err error) *PartialError {
	var pe *PartialError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// nackDetail is the error_detail of a NACK for resources of one type that
// could not be served. The message has Envoy's form, so a control plane
// reads sekisho's proxy and Envoy alike: for listeners, Envoy's LDS
// (listener_manager/lds_api.cc) writes "Error adding/updating listener(s) "
// followed by "NAME: CAUSE\n" for each listener. The details carry the same
// as a google.rpc.BadRequest, one field violation per resource (field: its
// name), for a control plane that reads them.
func nackDetail(typeURL string, failed []ResourceError) (string, []*anypb.Any) {
	var b strings.Builder
	if typeURL == ListenerType {
		b.WriteString("Error adding/updating listener(s) ")
	} else {
		fmt.Fprintf(&b, "Error adding/updating %s resource(s) ", shortType(typeURL))
	}
	br := &errdetails.BadRequest{}
	for _, r := range failed {
		cause := r.Err.Error()
		fmt.Fprintf(&b, "%s: %s\n", r.Name, cause)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: r.Name, Description: cause})
	}
	detail, err := anypb.New(br)
	if err != nil {
		// Cannot happen: BadRequest always marshals. The message says it all.
		return b.String(), nil
	}
	return b.String(), []*anypb.Any{detail}
}
