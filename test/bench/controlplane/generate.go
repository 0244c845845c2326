package main

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/resource"
)

// services is how many backend Services the generated routes share.
const services = 100

// Generate returns one Gateway with one HTTP listener and n HTTPRoutes, each
// with a path prefix of its own, a header match and a 90/10 split between two
// of the shared Services (each with three endpoints).
func Generate(n int) *resource.Resources {
	res := &resource.Resources{}
	res.GatewayClasses = append(res.GatewayClasses, &gwv1.GatewayClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "GatewayClass"},
		ObjectMeta: metav1.ObjectMeta{Name: "sekisho"},
		Spec:       gwv1.GatewayClassSpec{ControllerName: resource.ControllerName},
	})
	all := gwv1.NamespacesFromAll
	res.Gateways = append(res.Gateways, &gwv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default"},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: "sekisho",
			Listeners: []gwv1.Listener{{
				Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}},
			}},
		},
	})
	for s := 0; s < services; s++ {
		name := fmt.Sprintf("svc-%03d", s)
		res.Services = append(res.Services, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080),
			}}},
		})
		ready := true
		portName, port := "http", int32(8080)
		slice := &discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"kubernetes.io/service-name": name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for e := 1; e <= 3; e++ {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
		res.EndpointSlices = append(res.EndpointSlices, slice)
	}
	prefix := gwv1.PathMatchPathPrefix
	for i := 0; i < n; i++ {
		v1, v2 := gwv1.ObjectName(fmt.Sprintf("svc-%03d", i%services)), gwv1.ObjectName(fmt.Sprintf("svc-%03d", (i+1)%services))
		port := gwv1.PortNumber(80)
		w1, w2 := int32(90), int32(10)
		path := fmt.Sprintf("/api/r%d", i)
		res.HTTPRoutes = append(res.HTTPRoutes, &gwv1.HTTPRoute{
			TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("route-%05d", i), Namespace: "default", Generation: 1},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "bench"}}},
				Rules: []gwv1.HTTPRouteRule{{
					Matches: []gwv1.HTTPRouteMatch{{
						Path:    &gwv1.HTTPPathMatch{Type: &prefix, Value: &path},
						Headers: []gwv1.HTTPHeaderMatch{{Name: "x-tenant", Value: fmt.Sprintf("t%d", i%7)}},
					}},
					BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: v1, Port: &port}, Weight: &w1}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: v2, Port: &port}, Weight: &w2}},
					},
				}},
			},
		})
	}
	return res
}

// ChangeWeights shifts the weights of one route (chosen by i).
func ChangeWeights(res *resource.Resources, i int) {
	r := res.HTTPRoutes[(i*7919)%len(res.HTTPRoutes)]
	refs := r.Spec.Rules[0].BackendRefs
	w := *refs[0].Weight - 10
	if w < 0 {
		w = 90
	}
	refs[0].Weight, refs[1].Weight = &w, ptr(100-w)
	r.Generation++
}

func ptr[T any](v T) *T { return &v }
