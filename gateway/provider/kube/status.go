package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
)

// StatusWriter records the translator's status on the API server. It writes
// an object only when what sekisho says of it changed, keeps each
// condition's lastTransitionTime while its status holds, and leaves other
// controllers' route parent entries alone.
type StatusWriter struct {
	Client         client.Client
	ControllerName string           // default resource.ControllerName
	Now            func() time.Time // default time.Now
}

// Write writes set for the objects of res. It returns how many objects it
// updated and every error (it goes on past one object's failure).
func (w *StatusWriter) Write(ctx context.Context, res *resource.Resources, set *status.Set) (int, error) {
	controller := gwv1.GatewayController(w.ControllerName)
	if controller == "" {
		controller = resource.ControllerName
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	if w.Now != nil {
		now = metav1.NewTime(w.Now().Truncate(time.Second))
	}
	var errs []error
	updated := 0
	update := func(obj client.Object, kind string) {
		if err := w.Client.Status().Update(ctx, obj); err != nil {
			errs = append(errs, fmt.Errorf("writing the status of %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err))
			return
		}
		updated++
	}

	for _, gc := range res.GatewayClasses {
		desired := set.GatewayClasses[status.Key("", gc.Name)]
		if desired == nil {
			continue
		}
		next := gc.Status.DeepCopy()
		next.Conditions = mergeConditions(gc.Status.Conditions, desired.Conditions, now)
		next.SupportedFeatures = desired.SupportedFeatures
		if !equality.Semantic.DeepEqual(&gc.Status, next) {
			obj := gc.DeepCopy()
			obj.Status = *next
			update(obj, "GatewayClass")
		}
	}
	for _, gw := range res.Gateways {
		desired := set.Gateways[status.Key(gw.Namespace, gw.Name)]
		if desired == nil {
			continue
		}
		next := desired.DeepCopy()
		next.Conditions = mergeConditions(gw.Status.Conditions, desired.Conditions, now)
		for i := range next.Listeners {
			var prev []metav1.Condition
			for _, l := range gw.Status.Listeners {
				if l.Name == next.Listeners[i].Name {
					prev = l.Conditions
				}
			}
			next.Listeners[i].Conditions = mergeConditions(prev, next.Listeners[i].Conditions, now)
		}
		if !equality.Semantic.DeepEqual(&gw.Status, next) {
			obj := gw.DeepCopy()
			obj.Status = *next
			update(obj, "Gateway")
		}
	}
	for _, r := range res.HTTPRoutes {
		var desired []gwv1.RouteParentStatus
		if st := set.HTTPRoutes[status.Key(r.Namespace, r.Name)]; st != nil {
			desired = st.Parents
		}
		if next, changed := mergeParents(r.Status.Parents, desired, controller, now); changed {
			obj := r.DeepCopy()
			obj.Status.Parents = next
			update(obj, "HTTPRoute")
		}
	}
	for _, r := range res.GRPCRoutes {
		var desired []gwv1.RouteParentStatus
		if st := set.GRPCRoutes[status.Key(r.Namespace, r.Name)]; st != nil {
			desired = st.Parents
		}
		if next, changed := mergeParents(r.Status.Parents, desired, controller, now); changed {
			obj := r.DeepCopy()
			obj.Status.Parents = next
			update(obj, "GRPCRoute")
		}
	}
	for _, pol := range res.RateLimitPolicies {
		desired := set.Policies[status.PolicyKey{Kind: policyv1alpha1.RateLimitPolicyKind, Namespace: pol.Namespace, Name: pol.Name}]
		if next, changed := mergeAncestors(pol.Status.Ancestors, desired, controller, now); changed {
			obj := pol.DeepCopy()
			obj.Status.Ancestors = next
			update(obj, policyv1alpha1.RateLimitPolicyKind)
		}
	}
	for _, pol := range res.SecurityPolicies {
		desired := set.Policies[status.PolicyKey{Kind: policyv1alpha1.SecurityPolicyKind, Namespace: pol.Namespace, Name: pol.Name}]
		if next, changed := mergeAncestors(pol.Status.Ancestors, desired, controller, now); changed {
			obj := pol.DeepCopy()
			obj.Status.Ancestors = next
			update(obj, policyv1alpha1.SecurityPolicyKind)
		}
	}
	return updated, errors.Join(errs...)
}

// mergeAncestors is mergeParents for a policy's ancestors, which have the
// same shape as a route's parents.
func mergeAncestors(prev []gwv1.PolicyAncestorStatus, desired *gwv1.PolicyStatus, controller gwv1.GatewayController, now metav1.Time) ([]gwv1.PolicyAncestorStatus, bool) {
	toParents := func(in []gwv1.PolicyAncestorStatus) []gwv1.RouteParentStatus {
		out := make([]gwv1.RouteParentStatus, len(in))
		for i, a := range in {
			out[i] = gwv1.RouteParentStatus{ParentRef: a.AncestorRef, ControllerName: a.ControllerName, Conditions: a.Conditions}
		}
		return out
	}
	var want []gwv1.RouteParentStatus
	if desired != nil {
		want = toParents(desired.Ancestors)
	}
	merged, changed := mergeParents(toParents(prev), want, controller, now)
	if !changed {
		return nil, false
	}
	out := make([]gwv1.PolicyAncestorStatus, len(merged))
	for i, p := range merged {
		out[i] = gwv1.PolicyAncestorStatus{AncestorRef: p.ParentRef, ControllerName: p.ControllerName, Conditions: p.Conditions}
	}
	return out, true
}

// mergeConditions returns desired, each condition keeping the
// lastTransitionTime of the same type in prev while its status is unchanged,
// and now otherwise.
func mergeConditions(prev, desired []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(desired))
	for _, d := range desired {
		d.LastTransitionTime = now
		if p := meta.FindStatusCondition(prev, d.Type); p != nil && p.Status == d.Status {
			d.LastTransitionTime = p.LastTransitionTime
		}
		out = append(out, d)
	}
	return out
}

// mergeParents replaces sekisho's entries in prev with desired, keeping the
// other controllers' entries and the order of the entries that stay.
func mergeParents(prev, desired []gwv1.RouteParentStatus, controller gwv1.GatewayController, now metav1.Time) ([]gwv1.RouteParentStatus, bool) {
	used := make([]bool, len(desired))
	out := make([]gwv1.RouteParentStatus, 0, len(prev)+len(desired))
	for _, p := range prev {
		if p.ControllerName != controller {
			out = append(out, p)
			continue
		}
		for i := range desired {
			if !used[i] && equality.Semantic.DeepEqual(desired[i].ParentRef, p.ParentRef) {
				used[i] = true
				d := *desired[i].DeepCopy()
				d.Conditions = mergeConditions(p.Conditions, d.Conditions, now)
				out = append(out, d)
				break
			}
		}
		// An entry of ours no longer desired is dropped.
	}
	for i := range desired {
		if !used[i] {
			d := *desired[i].DeepCopy()
			d.Conditions = mergeConditions(nil, d.Conditions, now)
			out = append(out, d)
		}
	}
	if len(prev) == 0 && len(out) == 0 {
		return nil, false
	}
	return out, !equality.Semantic.DeepEqual(prev, out)
}
