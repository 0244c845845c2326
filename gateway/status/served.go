package status

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ServedState is what the data plane does with a Gateway listener.
type ServedState int

const (
	// ServedPending: no proxy of the Gateway has accepted a configuration
	// with the listener yet.
	ServedPending ServedState = iota
	// Served: the Gateway's proxies accepted it and bound its port.
	Served
	// NotServed: a proxy of the Gateway rejected it or could not bind it.
	NotServed
	// ServedUnknown: nothing is known of a data plane (`sekisho status -f`
	// reads files only).
	ServedUnknown
)

// Serving is what the data plane does with one Gateway listener.
type Serving struct {
	State ServedState
	// Message says why, for every state but Served; it names the port.
	Message string
}

// WithServing returns s with the Programmed conditions of the Gateways in
// served, and of their listeners, saying what the data plane does: the
// translator's Programmed=True means only that the configuration was built.
// Listeners the translator did not program, and Gateways it did not program
// (not accepted, no address), keep their conditions. s is not modified;
// the result shares what it does not change.
//
// A listener is Programmed=True when served, False with reason Invalid when
// not served, False with reason Pending while no proxy has accepted it, and
// Unknown with reason Pending when nothing is known. The Gateway follows
// its listeners: Programmed=True only when every programmed listener is,
// else the reason of the worst (Invalid, then Pending) with the listeners
// named.
func (s *Set) WithServing(served map[types.NamespacedName]map[gwv1.SectionName]Serving) *Set {
	out := *s
	out.Gateways = maps.Clone(s.Gateways)
	for key, listeners := range served {
		st := out.Gateways[key]
		if st == nil {
			continue
		}
		st = st.DeepCopy()
		out.Gateways[key] = st
		var invalid, pending, unknown []string
		msgs := map[string]string{}
		for i := range st.Listeners {
			l := &st.Listeners[i]
			sv, ok := listeners[l.Name]
			c := meta.FindStatusCondition(l.Conditions, string(gwv1.ListenerConditionProgrammed))
			if !ok || c == nil || c.Status != metav1.ConditionTrue {
				continue
			}
			name := string(l.Name)
			switch sv.State {
			case Served:
				continue
			case NotServed:
				c.Status, c.Reason = metav1.ConditionFalse, string(gwv1.ListenerReasonInvalid)
				invalid = append(invalid, name)
			case ServedPending:
				c.Status, c.Reason = metav1.ConditionFalse, string(gwv1.ListenerReasonPending)
				pending = append(pending, name)
			case ServedUnknown:
				c.Status, c.Reason = metav1.ConditionUnknown, string(gwv1.ListenerReasonPending)
				unknown = append(unknown, name)
			}
			c.Message = sv.Message
			msgs[name] = sv.Message
		}
		gc := meta.FindStatusCondition(st.Conditions, string(gwv1.GatewayConditionProgrammed))
		if gc == nil || gc.Status != metav1.ConditionTrue {
			continue
		}
		switch {
		case len(invalid) > 0:
			gc.Status, gc.Reason = metav1.ConditionFalse, string(gwv1.GatewayReasonInvalid)
			gc.Message = listenersMessage("not programmed", invalid, msgs)
		case len(pending) > 0:
			gc.Status, gc.Reason = metav1.ConditionFalse, string(gwv1.GatewayReasonPending)
			gc.Message = listenersMessage("not programmed yet", pending, msgs)
		case len(unknown) > 0:
			gc.Status, gc.Reason = metav1.ConditionUnknown, string(gwv1.GatewayReasonPending)
			gc.Message = msgs[unknown[0]]
		}
	}
	return &out
}

// listenersMessage names the listeners in a Gateway condition's message,
// with the first one's cause.
func listenersMessage(what string, names []string, msgs map[string]string) string {
	slices.Sort(names)
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	noun := "Listener"
	if len(names) > 1 {
		noun = "Listeners"
	}
	return fmt.Sprintf("%s %s %s: %s", noun, strings.Join(quoted, ", "), what, msgs[names[0]])
}
