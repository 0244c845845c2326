package infra

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
)

func TestObjects(t *testing.T) {
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "apps", UID: "uid-1"},
		Spec: gwv1.GatewaySpec{Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
			{Name: "https-a", Port: 443, Protocol: gwv1.HTTPSProtocolType},
			{Name: "https-b", Port: 443, Protocol: gwv1.HTTPSProtocolType},
		}},
	}
	cfg := Defaults("ghcr.io/sekisho/sekisho:v1", "sekisho.sekisho-system.svc:18000")
	cfg.Replicas, cfg.ServiceType = 3, corev1.ServiceTypeClusterIP
	sa, dep, svc := Objects(gw, cfg)

	for _, o := range []metav1.Object{sa, dep, svc} {
		if o.GetName() != "sekisho-edge" || o.GetNamespace() != "apps" {
			t.Errorf("%T named %s/%s, want apps/sekisho-edge", o, o.GetNamespace(), o.GetName())
		}
		refs := o.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != "uid-1" || refs[0].Kind != "Gateway" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%T owner references = %+v, want the Gateway as controller", o, refs)
		}
	}
	var ports []int32
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Port)
	}
	if !slices.Equal(ports, []int32{80, 443}) {
		t.Errorf("service ports = %v, want [80 443] (one per distinct listener port)", ports)
	}
	if *dep.Spec.Replicas != 3 || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("replicas %d, service type %s", *dep.Spec.Replicas, svc.Spec.Type)
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--gateway apps/edge", "--xds sekisho.sekisho-system.svc:18000", "--node $(POD_NAME)"} {
		if !strings.Contains(args, want) {
			t.Errorf("proxy args %q lack %q", args, want)
		}
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v || svc.Spec.Selector[k] != v {
			t.Errorf("label %s=%s is in the selector but not on the pods or the Service selector", k, v)
		}
	}
}

func TestNameFitsADNSLabel(t *testing.T) {
	long := strings.Repeat("g", 80)
	a, b := Name(long), Name(long+"x")
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Errorf("names %q (%d) and %q (%d): want distinct and at most 63 characters", a, len(a), b, len(b))
	}
}

func TestAddresses(t *testing.T) {
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.5"}}}
	if got := Addresses(lb); len(got) != 0 {
		t.Errorf("a LoadBalancer Service with no ingress yet has addresses %v", got)
	}
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {Hostname: "lb.example.com"}}
	if got := Addresses(lb); !slices.Equal(got, []string{"203.0.113.7", "lb.example.com"}) {
		t.Errorf("LoadBalancer addresses = %v", got)
	}
	cip := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIPs: []string{"10.96.0.5"}}}
	if got := Addresses(cip); !slices.Equal(got, []string{"10.96.0.5"}) {
		t.Errorf("ClusterIP addresses = %v", got)
	}
}

func TestWithConfig(t *testing.T) {
	base := Defaults("img:1", "cp:18000")
	if got := WithConfig(base, nil); got.Image != "img:1" || got.Replicas != 1 || got.ServiceType != corev1.ServiceTypeLoadBalancer {
		t.Errorf("no config changed the defaults: %+v", got)
	}
	two, cip, img, xds, debug := int32(2), corev1.ServiceTypeClusterIP, "img:2", "elsewhere:1", configv1alpha1.LogLevelDebug
	c := &configv1alpha1.GatewayClassConfig{Spec: configv1alpha1.GatewayClassConfigSpec{
		Proxy: &configv1alpha1.ProxyConfig{Image: &img, Replicas: &two, Service: &configv1alpha1.ProxyServiceConfig{Type: &cip},
			PodLabels: map[string]configv1alpha1.LabelValue{"team": "edge"}, LogLevel: &debug},
		XDS: &configv1alpha1.XDSConfig{Address: &xds},
	}}
	got := WithConfig(base, c)
	if got.Image != img || got.Replicas != 2 || got.ServiceType != cip || got.PodLabels["team"] != "edge" || got.LogLevel != "debug" || got.XDSAddress != xds {
		t.Errorf("config not applied: %+v", got)
	}
	if base.Image != "img:1" {
		t.Error("WithConfig changed its base")
	}
	// A config that names no address (the API server fills in none) leaves
	// the controller's --proxy-xds-address in force.
	noAddr := &configv1alpha1.GatewayClassConfig{Spec: configv1alpha1.GatewayClassConfigSpec{XDS: &configv1alpha1.XDSConfig{}}}
	if got := WithConfig(base, noAddr); got.XDSAddress != "cp:18000" {
		t.Errorf("a config without an xds address overrode the controller's: %q", got.XDSAddress)
	}
}
