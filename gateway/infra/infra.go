// Package infra provisions the data plane of each Gateway in Kubernetes
// mode: a proxy Deployment, a Service that exposes the Gateway's listener
// ports, and a ServiceAccount, all in the Gateway's namespace and owned by
// the Gateway, so deleting the Gateway deletes them.
package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
)

// Labels on every object infra provisions.
const (
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	LabelName             = "app.kubernetes.io/name"
	LabelGateway          = "sekisho.dev/gateway"
	LabelGatewayNamespace = "sekisho.dev/gateway-namespace"
	managedBy             = "sekisho"
	proxyName             = "sekisho-proxy"
	fieldOwner            = "sekisho-controller"
	// AdminPort is the proxy's admin port (/healthz, /readyz, /metrics).
	AdminPort = 19000
)

// ProxyConfig is how a GatewayClass's proxies run (from its parametersRef,
// with defaults filled in).
type ProxyConfig struct {
	Image           string
	ImagePullPolicy corev1.PullPolicy
	Replicas        int32
	Resources       corev1.ResourceRequirements
	ServiceType     corev1.ServiceType
	// ServiceAnnotations, e.g. for a cloud load balancer.
	ServiceAnnotations    map[string]string
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy
	PodAnnotations        map[string]string
	PodLabels             map[string]string
	NodeSelector          map[string]string
	Tolerations           []corev1.Toleration
	LogLevel              string
	AccessLog             bool
	// XDSAddress is the controller's xDS address the proxies dial.
	XDSAddress string
}

// Defaults returns the built-in ProxyConfig for image.
func Defaults(image, xdsAddress string) ProxyConfig {
	return ProxyConfig{
		Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Replicas: 1,
		ServiceType: corev1.ServiceTypeLoadBalancer, LogLevel: "info", XDSAddress: xdsAddress,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
		}},
	}
}

// Name is the name of a Gateway's Deployment, Service and ServiceAccount:
// "sekisho-<gateway>", shortened with a hash when it would not fit in 63
// characters (a Service name must be a DNS label).
func Name(gatewayName string) string {
	n := "sekisho-" + gatewayName
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(gatewayName))
	return n[:54] + "-" + hex.EncodeToString(sum[:])[:8]
}

func labels(gw *gwv1.Gateway) map[string]string {
	return map[string]string{
		LabelManagedBy: managedBy, LabelName: proxyName,
		LabelGateway: truncateLabel(gw.Name), LabelGatewayNamespace: truncateLabel(gw.Namespace),
	}
}

func truncateLabel(v string) string {
	if len(v) <= 63 {
		return v
	}
	return v[:63]
}

func ownerRef(gw *gwv1.Gateway) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// listenerPorts are the distinct ports of a Gateway's listeners, sorted.
func listenerPorts(gw *gwv1.Gateway) []int32 {
	var ports []int32
	for _, l := range gw.Spec.Listeners {
		if !slices.Contains(ports, int32(l.Port)) {
			ports = append(ports, int32(l.Port))
		}
	}
	slices.Sort(ports)
	return ports
}

// Objects returns the ServiceAccount, Deployment and Service of gw.
func Objects(gw *gwv1.Gateway, cfg ProxyConfig) (*corev1.ServiceAccount, *appsv1.Deployment, *corev1.Service) {
	name, lbl := Name(gw.Name), labels(gw)
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: gw.Namespace, Labels: lbl, OwnerReferences: []metav1.OwnerReference{ownerRef(gw)}}
	}
	no, yes := false, true
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(), AutomountServiceAccountToken: &no}

	podLabels := map[string]string{}
	for k, v := range cfg.PodLabels {
		podLabels[k] = v
	}
	for k, v := range lbl {
		podLabels[k] = v
	}
	var containerPorts []corev1.ContainerPort
	var servicePorts []corev1.ServicePort
	for _, p := range listenerPorts(gw) {
		pn := "port-" + strconv.Itoa(int(p))
		containerPorts = append(containerPorts, corev1.ContainerPort{Name: shortPortName(pn, p), ContainerPort: p, Protocol: corev1.ProtocolTCP})
		servicePorts = append(servicePorts, corev1.ServicePort{Name: pn, Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP})
	}
	containerPorts = append(containerPorts, corev1.ContainerPort{Name: "admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP})
	args := []string{
		"proxy", "--xds", cfg.XDSAddress, "--gateway", gw.Namespace + "/" + gw.Name, "--node", "$(POD_NAME)",
		"--admin-address", "0.0.0.0:" + strconv.Itoa(AdminPort), "--log-level", cfg.LogLevel,
		"--access-log=" + strconv.FormatBool(cfg.AccessLog), "--log-json",
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(AdminPort)}}, PeriodSeconds: 5}
	}
	replicas := cfg.Replicas
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: cfg.PodAnnotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:           name,
					AutomountServiceAccountToken: &no,
					NodeSelector:                 cfg.NodeSelector,
					Tolerations:                  cfg.Tolerations,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: &yes,
						// Listener ports below 1024 bind without privileges.
						Sysctls:        []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name: "proxy", Image: cfg.Image, ImagePullPolicy: cfg.ImagePullPolicy, Args: args,
						Env:            []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports:          containerPorts,
						Resources:      cfg.Resources,
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  probe("/healthz"),
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, RunAsUser: ptr(int64(65532)),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(),
		Spec: corev1.ServiceSpec{
			Type: cfg.ServiceType, Selector: lbl, Ports: servicePorts,
			ExternalTrafficPolicy: cfg.ExternalTrafficPolicy,
		},
	}
	svc.Annotations = cfg.ServiceAnnotations
	if cfg.ServiceType == corev1.ServiceTypeClusterIP {
		svc.Spec.ExternalTrafficPolicy = ""
	}
	return sa, dep, svc
}

// shortPortName keeps container port names within 15 characters.
func shortPortName(n string, p int32) string {
	if len(n) <= 15 {
		return n
	}
	return "p" + strconv.Itoa(int(p))
}

func ptr[T any](v T) *T { return &v }

// Provisioner applies each Gateway's objects with server-side apply, so an
// unchanged Gateway writes nothing.
type Provisioner struct {
	Client client.Client
}

// Apply makes gw's ServiceAccount, Deployment and Service match cfg.
func (p *Provisioner) Apply(ctx context.Context, gw *gwv1.Gateway, cfg ProxyConfig) error {
	sa, dep, svc := Objects(gw, cfg)
	var errs []error
	for _, obj := range []client.Object{sa, dep, svc} {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("encoding %s for gateway %s/%s: %w", obj.GetName(), gw.Namespace, gw.Name, err))
			continue
		}
		delete(u, "status")
		ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u})
		if err := p.Client.Apply(ctx, ac, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			errs = append(errs, fmt.Errorf("applying %s %s/%s for gateway %s/%s: %w",
				obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), gw.Namespace, gw.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Prune deletes provisioned objects whose Gateway is not in keep (a Gateway
// that moved to another class, say); deleted Gateways' objects go by their
// owner references.
func (p *Provisioner) Prune(ctx context.Context, keep map[string]bool) error {
	var errs []error
	sel := client.MatchingLabels{LabelManagedBy: managedBy, LabelName: proxyName}
	var deps appsv1.DeploymentList
	if err := p.Client.List(ctx, &deps, sel); err != nil {
		return fmt.Errorf("listing provisioned Deployments: %w", err)
	}
	var svcs corev1.ServiceList
	if err := p.Client.List(ctx, &svcs, sel); err != nil {
		return fmt.Errorf("listing provisioned Services: %w", err)
	}
	var sas corev1.ServiceAccountList
	if err := p.Client.List(ctx, &sas, sel); err != nil {
		return fmt.Errorf("listing provisioned ServiceAccounts: %w", err)
	}
	var objs []client.Object
	for i := range deps.Items {
		objs = append(objs, &deps.Items[i])
	}
	for i := range svcs.Items {
		objs = append(objs, &svcs.Items[i])
	}
	for i := range sas.Items {
		objs = append(objs, &sas.Items[i])
	}
	for _, o := range objs {
		l := o.GetLabels()
		if keep[l[LabelGatewayNamespace]+"/"+l[LabelGateway]] {
			continue
		}
		if err := p.Client.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting %s/%s: %w", o.GetNamespace(), o.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// Addresses are what a Gateway's status reports for its proxy Service: the
// load balancer's addresses for a LoadBalancer Service (none until it has
// them), else the cluster IPs.
func Addresses(svc *corev1.Service) []string {
	if svc == nil {
		return nil
	}
	var out []string
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				out = append(out, in.IP)
			} else if in.Hostname != "" {
				out = append(out, in.Hostname)
			}
		}
		return out
	}
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && !strings.EqualFold(ip, corev1.ClusterIPNone) {
			out = append(out, ip)
		}
	}
	return out
}

// WithConfig returns base overridden by what a GatewayClassConfig sets.
func WithConfig(base ProxyConfig, c *configv1alpha1.GatewayClassConfig) ProxyConfig {
	if c == nil {
		return base
	}
	out := base
	if x := c.Spec.XDS; x != nil && x.Address != nil {
		out.XDSAddress = *x.Address
	}
	p := c.Spec.Proxy
	if p == nil {
		return out
	}
	if p.Image != nil {
		out.Image = *p.Image
	}
	if p.ImagePullPolicy != nil {
		out.ImagePullPolicy = *p.ImagePullPolicy
	}
	if p.Replicas != nil {
		out.Replicas = *p.Replicas
	}
	if p.Resources != nil {
		out.Resources = *p.Resources
	}
	if s := p.Service; s != nil {
		if s.Type != nil {
			out.ServiceType = *s.Type
		}
		out.ServiceAnnotations = s.Annotations
		if s.ExternalTrafficPolicy != nil {
			out.ExternalTrafficPolicy = *s.ExternalTrafficPolicy
		}
	}
	out.PodAnnotations = p.PodAnnotations
	if len(p.PodLabels) > 0 {
		out.PodLabels = map[string]string{}
		for k, v := range p.PodLabels {
			out.PodLabels[k] = string(v)
		}
	}
	out.NodeSelector = p.NodeSelector
	out.Tolerations = p.Tolerations
	if p.LogLevel != nil {
		out.LogLevel = string(*p.LogLevel)
	}
	if p.AccessLog != nil {
		out.AccessLog = *p.AccessLog
	}
	return out
}
