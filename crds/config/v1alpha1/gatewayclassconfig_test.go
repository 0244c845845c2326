package v1alpha1_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/crds/config/v1alpha1"
)

const full = `
apiVersion: config.sekisho.dev/v1alpha1
kind: GatewayClassConfig
metadata: {name: edge, namespace: sekisho-system}
spec:
  proxy:
    image: example/sekisho:v1
    imagePullPolicy: IfNotPresent
    replicas: 3
    resources: {requests: {cpu: 100m}, limits: {memory: 256Mi}}
    service:
      type: NodePort
      externalTrafficPolicy: Local
      annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
    podAnnotations: {prometheus.io/scrape: "true"}
    podLabels: {team: edge}
    nodeSelector: {kubernetes.io/os: linux}
    tolerations: [{key: dedicated, operator: Equal, value: edge, effect: NoSchedule}]
    logLevel: debug
    accessLog: false
  xds: {address: "sekisho-controller.sekisho-system.svc:18000"}
  rateLimit: {redis: {address: "redis.sekisho-system.svc:6379"}}
status:
  conditions:
  - {type: Accepted, status: "True", reason: Accepted, message: ok, lastTransitionTime: "2026-01-02T03:04:05Z", observedGeneration: 1}
`

func TestDecodeAndDeepCopy(t *testing.T) {
	var cfg v1alpha1.GatewayClassConfig
	if err := yaml.UnmarshalStrict([]byte(full), &cfg); err != nil {
		t.Fatalf("decoding a full GatewayClassConfig: %v", err)
	}
	p := cfg.Spec.Proxy
	if *p.Replicas != 3 || *p.Service.Type != corev1.ServiceTypeNodePort || *p.LogLevel != v1alpha1.LogLevelDebug ||
		p.PodLabels["team"] != "edge" || !p.Resources.Requests.Cpu().Equal(resource.MustParse("100m")) ||
		cfg.Spec.RateLimit.Redis.Address != "redis.sekisho-system.svc:6379" {
		t.Errorf("decoded %+v", cfg.Spec)
	}

	cp := cfg.DeepCopy()
	if diff := cmp.Diff(&cfg, cp); diff != "" {
		t.Fatalf("DeepCopy differs (-orig +copy):\n%s", diff)
	}
	// The copy shares nothing with the original.
	*cp.Spec.Proxy.Replicas = 7
	cp.Spec.Proxy.PodLabels["team"] = "other"
	cp.Spec.Proxy.Tolerations[0].Key = "other"
	cp.Status.Conditions[0].Status = metav1.ConditionFalse
	if *cfg.Spec.Proxy.Replicas != 3 || cfg.Spec.Proxy.PodLabels["team"] != "edge" ||
		cfg.Spec.Proxy.Tolerations[0].Key != "dedicated" || cfg.Status.Conditions[0].Status != metav1.ConditionTrue {
		t.Error("changing the DeepCopy changed the original")
	}

	var list runtime.Object = &v1alpha1.GatewayClassConfigList{Items: []v1alpha1.GatewayClassConfig{cfg}}
	if diff := cmp.Diff(list, list.DeepCopyObject()); diff != "" {
		t.Errorf("list DeepCopyObject differs:\n%s", diff)
	}
}

func TestScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{v1alpha1.GatewayClassConfigKind, v1alpha1.GatewayClassConfigKind + "List"} {
		gvk := v1alpha1.GroupVersion.WithKind(kind)
		obj, err := scheme.New(gvk)
		if err != nil {
			t.Fatalf("scheme.New(%v): %v", gvk, err)
		}
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil || len(gvks) != 1 || gvks[0] != gvk {
			t.Errorf("ObjectKinds(%T) = %v, %v; want %v", obj, gvks, err, gvk)
		}
	}
	if got := v1alpha1.Resource("gatewayclassconfigs").String(); got != "gatewayclassconfigs.config.sekisho.dev" {
		t.Errorf("Resource = %q", got)
	}
}
