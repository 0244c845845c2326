package status

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestWithServing(t *testing.T) {
	programmed := func(ok bool) []metav1.Condition {
		c := metav1.Condition{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", Message: "Listener is programmed"}
		if !ok {
			c = metav1.Condition{Type: "Programmed", Status: metav1.ConditionFalse, Reason: "Invalid", Message: "Listener is invalid"}
		}
		return []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"}, c}
	}
	build := func() *Set {
		s := NewSet()
		s.Gateways[Key("default", "gw")] = &gwv1.GatewayStatus{
			Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", Message: "Gateway is programmed"}},
			Listeners: []gwv1.ListenerStatus{
				{Name: "a", Conditions: programmed(true)},
				{Name: "b", Conditions: programmed(true)},
				{Name: "bad", Conditions: programmed(false)},
			},
		}
		return s
	}
	type want struct{ status, reason, message string }
	for _, tc := range []struct {
		name      string
		served    map[gwv1.SectionName]Serving
		gateway   want
		listeners map[string]want
	}{
		{
			name:    "all served",
			served:  map[gwv1.SectionName]Serving{"a": {State: Served}, "b": {State: Served}},
			gateway: want{"True", "Programmed", "Gateway is programmed"},
			listeners: map[string]want{
				"a": {"True", "Programmed", "Listener is programmed"}, "b": {"True", "Programmed", "Listener is programmed"},
				"bad": {"False", "Invalid", "Listener is invalid"},
			},
		},
		{
			name:    "one not served, one pending: the Gateway says the worst",
			served:  map[gwv1.SectionName]Serving{"a": {State: ServedPending, Message: "waiting on 80"}, "b": {State: NotServed, Message: "port 81 taken"}},
			gateway: want{"False", "Invalid", `Listener "b" not programmed: port 81 taken`},
			listeners: map[string]want{
				"a": {"False", "Pending", "waiting on 80"}, "b": {"False", "Invalid", "port 81 taken"},
				"bad": {"False", "Invalid", "Listener is invalid"},
			},
		},
		{
			name:    "pending",
			served:  map[gwv1.SectionName]Serving{"a": {State: ServedPending, Message: "waiting on 80"}, "b": {State: Served}},
			gateway: want{"False", "Pending", `Listener "a" not programmed yet: waiting on 80`},
			listeners: map[string]want{
				"a": {"False", "Pending", "waiting on 80"}, "b": {"True", "Programmed", "Listener is programmed"},
				"bad": {"False", "Invalid", "Listener is invalid"},
			},
		},
		{
			name:    "unknown (offline)",
			served:  map[gwv1.SectionName]Serving{"a": {State: ServedUnknown, Message: "not known"}, "b": {State: ServedUnknown, Message: "not known"}, "bad": {State: ServedUnknown, Message: "not known"}},
			gateway: want{"Unknown", "Pending", "not known"},
			listeners: map[string]want{
				"a": {"Unknown", "Pending", "not known"}, "b": {"Unknown", "Pending", "not known"},
				"bad": {"False", "Invalid", "Listener is invalid"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := build()
			out := in.WithServing(map[types.NamespacedName]map[gwv1.SectionName]Serving{Key("default", "gw"): tc.served})
			st := out.Gateways[Key("default", "gw")]
			check := func(what string, conds []metav1.Condition, w want) {
				c := meta.FindStatusCondition(conds, "Programmed")
				if c == nil || string(c.Status) != w.status || c.Reason != w.reason || c.Message != w.message {
					t.Errorf("%s Programmed = %+v, want %+v", what, c, w)
				}
			}
			check("Gateway", st.Conditions, tc.gateway)
			for _, l := range st.Listeners {
				check("listener "+string(l.Name), l.Conditions, tc.listeners[string(l.Name)])
			}
			// The input is not modified.
			if c := meta.FindStatusCondition(in.Gateways[Key("default", "gw")].Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
				t.Errorf("input changed: %+v", c)
			}
		})
	}
}
