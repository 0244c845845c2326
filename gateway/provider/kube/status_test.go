package kube

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func cond(typ string, st metav1.ConditionStatus, reason string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: reason, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(at)}
}

func TestMergeConditionsKeepsTransitionTimeWhileStatusHolds(t *testing.T) {
	t0, now := time.Unix(1000, 0), metav1.NewTime(time.Unix(2000, 0))
	prev := []metav1.Condition{cond("Accepted", "True", "Accepted", t0), cond("ResolvedRefs", "True", "ResolvedRefs", t0)}
	desired := []metav1.Condition{
		{Type: "Accepted", Status: "True", Reason: "Accepted", Message: "new words", ObservedGeneration: 2},
		{Type: "ResolvedRefs", Status: "False", Reason: "BackendNotFound", ObservedGeneration: 2},
		{Type: "Programmed", Status: "True", Reason: "Programmed", ObservedGeneration: 2},
	}
	got := mergeConditions(prev, desired, now)
	want := map[string]time.Time{"Accepted": t0, "ResolvedRefs": now.Time, "Programmed": now.Time}
	for _, c := range got {
		if !c.LastTransitionTime.Time.Equal(want[c.Type]) {
			t.Errorf("%s: lastTransitionTime %v, want %v", c.Type, c.LastTransitionTime.Time, want[c.Type])
		}
		if c.ObservedGeneration != 2 {
			t.Errorf("%s: observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d conditions, want 3", len(got))
	}
}

func TestMergeParentsLeavesOtherControllersAlone(t *testing.T) {
	ours, theirs := gwv1.GatewayController("sekisho.dev/gateway-controller"), gwv1.GatewayController("example.com/other")
	t0, now := time.Unix(1000, 0), metav1.NewTime(time.Unix(2000, 0))
	ref := func(name string) gwv1.ParentReference { return gwv1.ParentReference{Name: gwv1.ObjectName(name)} }
	parent := func(name string, c gwv1.GatewayController, st metav1.ConditionStatus) gwv1.RouteParentStatus {
		return gwv1.RouteParentStatus{ParentRef: ref(name), ControllerName: c, Conditions: []metav1.Condition{cond("Accepted", st, "x", t0)}}
	}
	prev := []gwv1.RouteParentStatus{parent("other-gw", theirs, "True"), parent("gw-a", ours, "True"), parent("gw-gone", ours, "True")}

	// Unchanged: nothing to write.
	same := []gwv1.RouteParentStatus{parent("gw-a", ours, "True"), parent("gw-gone", ours, "True")}
	if _, changed := mergeParents(prev, same, ours, now); changed {
		t.Error("an unchanged status was reported changed (it would churn resourceVersions)")
	}

	desired := []gwv1.RouteParentStatus{parent("gw-a", ours, "False"), parent("gw-new", ours, "True")}
	got, changed := mergeParents(prev, desired, ours, now)
	if !changed {
		t.Fatal("a changed status was not reported changed")
	}
	var names []string
	for _, p := range got {
		names = append(names, string(p.ParentRef.Name))
	}
	if len(names) != 3 || names[0] != "other-gw" || names[1] != "gw-a" || names[2] != "gw-new" {
		t.Fatalf("parents = %v, want [other-gw gw-a gw-new]", names)
	}
	if got[0].Conditions[0].LastTransitionTime.Time != t0 {
		t.Error("another controller's entry was modified")
	}
	if !got[1].Conditions[0].LastTransitionTime.Time.Equal(now.Time) {
		t.Error("gw-a's Accepted changed status but kept its old lastTransitionTime")
	}
}
