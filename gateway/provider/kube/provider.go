// Package kube is the Kubernetes provider: it watches the Gateway API, core
// and sekisho objects through a controller-runtime manager, hands each
// consistent view to the control plane, and writes back the status the
// translator computed, patching only what is sekisho's.
package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
)

// Scheme returns a scheme with every kind the provider reads or writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gwv1.Install, configv1alpha1.AddToScheme, policyv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	return s, nil
}

// Handler is what the provider calls with each new view of the resources.
// It runs on every replica; elected says whether this replica is the leader
// (the one that writes status and provisions proxies).
type Handler func(ctx context.Context, res *resource.Resources, elected bool) error

// Options configure the provider.
type Options struct {
	Logger  *slog.Logger
	Handler Handler
	// Elected is closed when this replica becomes the leader (the manager's
	// Elected channel); nil means always the leader.
	Elected <-chan struct{}
	// Resync re-reads everything this often even without events (0: 10 min).
	Resync time.Duration
	// Kick, when set, asks for a reconcile whenever it receives: something
	// outside the cluster changed what the status says (the proxies' answers
	// over xDS).
	Kick <-chan struct{}
}

// Provider watches the cluster and calls Handler with consistent views.
type Provider struct {
	opts   Options
	client client.Client
}

// the one key every event maps to: each reconcile reads the whole view.
var allKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all"}}

// Register adds the provider's controller to mgr.
func Register(mgr ctrl.Manager, opts Options) (*Provider, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Resync == 0 {
		opts.Resync = 10 * time.Minute
	}
	p := &Provider{opts: opts, client: mgr.GetClient()}
	toAll := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{allKey}
	})
	noLeader := false
	b := builder.ControllerManagedBy(mgr).
		Named("sekisho-gateway-api").
		WithOptions(controller.Options{NeedLeaderElection: &noLeader, MaxConcurrentReconciles: 1}).
		Watches(&gwv1.GatewayClass{}, toAll).
		Watches(&gwv1.Gateway{}, toAll).
		Watches(&gwv1.HTTPRoute{}, toAll).
		Watches(&gwv1.GRPCRoute{}, toAll).
		Watches(&gwv1.ReferenceGrant{}, toAll).
		Watches(&corev1.Service{}, toAll).
		Watches(&discoveryv1.EndpointSlice{}, toAll).
		Watches(&corev1.Secret{}, toAll).
		Watches(&corev1.Namespace{}, toAll).
		Watches(&appsv1.Deployment{}, toAll).
		Watches(&configv1alpha1.GatewayClassConfig{}, toAll).
		Watches(&policyv1alpha1.RateLimitPolicy{}, toAll).
		Watches(&policyv1alpha1.SecurityPolicy{}, toAll)
	if opts.Elected != nil {
		// A replica that becomes the leader reconciles at once: what it saw
		// as a follower was served over xDS but never written as status.
		elected := make(chan event.GenericEvent, 1)
		b = b.WatchesRawSource(source.Channel(elected, toAll))
		err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			select {
			case <-opts.Elected:
				elected <- event.GenericEvent{Object: &gwv1.GatewayClass{}}
			case <-ctx.Done():
			}
			return nil
		}))
		if err != nil {
			return nil, fmt.Errorf("registering the election trigger: %w", err)
		}
	}
	if opts.Kick != nil {
		kicks := make(chan event.GenericEvent, 1)
		b = b.WatchesRawSource(source.Channel(kicks, toAll))
		err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			for {
				select {
				case <-opts.Kick:
					select {
					case kicks <- event.GenericEvent{Object: &gwv1.Gateway{}}:
					default: // a reconcile is already due
					}
				case <-ctx.Done():
					return nil
				}
			}
		}))
		if err != nil {
			return nil, fmt.Errorf("registering the data-plane trigger: %w", err)
		}
	}
	if err := b.Complete(p); err != nil {
		return nil, fmt.Errorf("registering the Gateway API controller: %w", err)
	}
	return p, nil
}

// Reconcile reads the whole view and hands it to the handler.
func (p *Provider) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	// One reconcile at a time (MaxConcurrentReconciles 1), each of the whole view.
	res, err := p.read(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := p.opts.Handler(ctx, res, p.elected()); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: p.opts.Resync}, nil
}

func (p *Provider) elected() bool {
	if p.opts.Elected == nil {
		return true
	}
	select {
	case <-p.opts.Elected:
		return true
	default:
		return false
	}
}

// read lists every object the translator reads from the manager's cache.
func (p *Provider) read(ctx context.Context) (*resource.Resources, error) {
	res := &resource.Resources{}
	var (
		classes  gwv1.GatewayClassList
		gateways gwv1.GatewayList
		https    gwv1.HTTPRouteList
		grpcs    gwv1.GRPCRouteList
		grants   gwv1.ReferenceGrantList
		services corev1.ServiceList
		slices   discoveryv1.EndpointSliceList
		secrets  corev1.SecretList
		nss      corev1.NamespaceList
		configs  configv1alpha1.GatewayClassConfigList
		rlps     policyv1alpha1.RateLimitPolicyList
		sps      policyv1alpha1.SecurityPolicyList
	)
	for _, l := range []struct {
		kind string
		list client.ObjectList
	}{
		{"GatewayClasses", &classes}, {"Gateways", &gateways}, {"HTTPRoutes", &https}, {"GRPCRoutes", &grpcs},
		{"ReferenceGrants", &grants}, {"Services", &services}, {"EndpointSlices", &slices},
		{"Secrets", &secrets}, {"Namespaces", &nss}, {"GatewayClassConfigs", &configs},
		{"RateLimitPolicies", &rlps}, {"SecurityPolicies", &sps},
	} {
		if err := p.client.List(ctx, l.list); err != nil {
			return nil, fmt.Errorf("listing %s: %w", l.kind, err)
		}
	}
	// The cache's objects are shared: the translator only reads them, and the
	// status writer copies before it changes anything. TypeMeta is not set
	// on objects from the cache; the translator does not need it.
	res.GatewayClasses = pointers(classes.Items)
	res.Gateways = pointers(gateways.Items)
	res.HTTPRoutes = pointers(https.Items)
	res.GRPCRoutes = pointers(grpcs.Items)
	res.ReferenceGrants = pointers(grants.Items)
	res.Services = pointers(services.Items)
	res.EndpointSlices = pointers(slices.Items)
	res.Secrets = pointers(secrets.Items)
	res.Namespaces = pointers(nss.Items)
	res.GatewayClassConfigs = pointers(configs.Items)
	res.RateLimitPolicies = pointers(rlps.Items)
	res.SecurityPolicies = pointers(sps.Items)
	return res, nil
}

// pointers returns a pointer to each item of a list, in order.
func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
