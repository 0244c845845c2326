package translate

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/resource"
)

// benchResources returns one Gateway with n HTTPRoutes, each with a path
// match and a weighted pair of backends (out of 100 Services).
func benchResources(n int) *resource.Resources {
	res := &resource.Resources{
		GatewayClasses: []*gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: "sekisho"}, Spec: gwv1.GatewayClassSpec{ControllerName: resource.ControllerName}}},
		Gateways: []*gwv1.Gateway{{
			ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: "default"},
			Spec:       gwv1.GatewaySpec{GatewayClassName: "sekisho", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}},
		}},
	}
	ready := true
	for i := range 100 {
		name := fmt.Sprintf("svc-%d", i)
		res.Services = append(res.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		})
		res.EndpointSlices = append(res.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Ports:      []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9000))}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.0.%d.1", i)}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		})
	}
	for i := range n {
		res.HTTPRoutes = append(res.HTTPRoutes, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("route-%d", i), Namespace: "default"},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "eg"}}},
				Rules: []gwv1.HTTPRouteRule{{
					Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr(fmt.Sprintf("/app-%d", i))}}},
					BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", i%100)), Port: ptr(int32(8080))}, Weight: ptr(int32(90))}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", (i+1)%100)), Port: ptr(int32(8080))}, Weight: ptr(int32(10))}},
					},
				}},
			},
		})
	}
	return res
}

func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			res := benchResources(n)
			b.ReportAllocs()
			for b.Loop() {
				r := Translate(res, Options{})
				if len(r.IR.Gateways) != 1 || len(r.Problems) != 0 {
					b.Fatalf("unexpected result: %d gateways, problems %v", len(r.IR.Gateways), r.Problems)
				}
			}
		})
	}
}

// TestBenchResources checks the benchmark input translates as intended.
func TestBenchResources(t *testing.T) {
	r := Translate(benchResources(50), Options{})
	if len(r.Problems) != 0 {
		t.Fatalf("problems: %v", r.Problems)
	}
	vh := r.IR.Gateways[0].Listeners[0].FilterChains[0].VirtualHosts
	if len(vh) != 1 || len(vh[0].Routes) != 50 {
		t.Fatalf("want one virtual host with 50 routes, got %+v", vh)
	}
	if got := r.Status.Gateways[nsName{Namespace: "default", Name: "eg"}].Listeners[0].AttachedRoutes; got != 50 {
		t.Errorf("attachedRoutes = %d, want 50", got)
	}
}
