// Package file is the file provider: it reads Gateway API, core and policy
// objects from a folder of multi-document YAML files and watches it.
package file

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/resource"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// ParseBytes decodes every YAML document of one file into res, recording where
// each object came from. Documents that cannot be decoded are reported as
// problems and skipped; the others are kept.
func ParseBytes(name string, data []byte, res *resource.Resources) []resource.Problem {
	if res.Sources == nil {
		res.Sources = map[resource.ObjectKey]resource.Source{}
	}
	var problems []resource.Problem
	dec := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 0; ; doc++ {
		raw, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		src := resource.Source{File: name, Doc: doc}
		if err != nil {
			problems = append(problems, resource.Problem{Source: src, Msg: fmt.Sprintf("reading YAML: %v", err)})
			break
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if p := decodeDoc(raw, src, res); p != nil {
			problems = append(problems, *p)
		}
	}
	return problems
}

func decodeDoc(raw []byte, src resource.Source, res *resource.Resources) *resource.Problem {
	var tm typeMeta
	if err := sigsyaml.Unmarshal(raw, &tm); err != nil {
		return &resource.Problem{Source: src, Msg: fmt.Sprintf("malformed YAML: %v", err)}
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		// a document of comments only
		var v any
		if err := sigsyaml.Unmarshal(raw, &v); err == nil && v == nil {
			return nil
		}
	}
	if tm.Metadata.Namespace == "" && namespaced(tm.Kind) {
		tm.Metadata.Namespace = "default"
	}
	key := resource.ObjectKey{Kind: tm.Kind, Namespace: tm.Metadata.Namespace, Name: tm.Metadata.Name}
	strict := func(into any) *resource.Problem {
		if err := sigsyaml.UnmarshalStrict(raw, into); err != nil {
			return &resource.Problem{Source: src, Object: key, Msg: fmt.Sprintf("decoding: %v", err)}
		}
		return nil
	}
	gv := tm.APIVersion + "/" + tm.Kind
	var p *resource.Problem
	switch gv {
	case "gateway.networking.k8s.io/v1/GatewayClass", "gateway.networking.k8s.io/v1beta1/GatewayClass":
		o := &gwv1.GatewayClass{}
		if p = strict(o); p == nil {
			res.GatewayClasses = append(res.GatewayClasses, o)
		}
	case "gateway.networking.k8s.io/v1/Gateway", "gateway.networking.k8s.io/v1beta1/Gateway":
		o := &gwv1.Gateway{}
		if p = strict(o); p == nil {
			res.Gateways = append(res.Gateways, o)
		}
	case "gateway.networking.k8s.io/v1/HTTPRoute", "gateway.networking.k8s.io/v1beta1/HTTPRoute":
		o := &gwv1.HTTPRoute{}
		if p = strict(o); p == nil {
			res.HTTPRoutes = append(res.HTTPRoutes, o)
		}
	case "gateway.networking.k8s.io/v1/GRPCRoute":
		o := &gwv1.GRPCRoute{}
		if p = strict(o); p == nil {
			res.GRPCRoutes = append(res.GRPCRoutes, o)
		}
	case "gateway.networking.k8s.io/v1/ReferenceGrant":
		o := &gwv1.ReferenceGrant{}
		if p = strict(o); p == nil {
			res.ReferenceGrants = append(res.ReferenceGrants, o)
		}
	case "gateway.networking.k8s.io/v1beta1/ReferenceGrant":
		o := &gwv1beta1.ReferenceGrant{}
		if p = strict(o); p == nil {
			v1 := &gwv1.ReferenceGrant{ObjectMeta: o.ObjectMeta}
			v1.APIVersion, v1.Kind = gwv1.GroupVersion.String(), "ReferenceGrant"
			for _, f := range o.Spec.From {
				v1.Spec.From = append(v1.Spec.From, gwv1.ReferenceGrantFrom{Group: f.Group, Kind: f.Kind, Namespace: f.Namespace})
			}
			for _, t := range o.Spec.To {
				v1.Spec.To = append(v1.Spec.To, gwv1.ReferenceGrantTo{Group: t.Group, Kind: t.Kind, Name: t.Name})
			}
			res.ReferenceGrants = append(res.ReferenceGrants, v1)
		}
	case "v1/Service":
		o := &corev1.Service{}
		if p = strict(o); p == nil {
			res.Services = append(res.Services, o)
		}
	case "discovery.k8s.io/v1/EndpointSlice":
		o := &discoveryv1.EndpointSlice{}
		if p = strict(o); p == nil {
			res.EndpointSlices = append(res.EndpointSlices, o)
		}
	case "v1/Secret":
		o := &corev1.Secret{}
		if p = strict(o); p == nil {
			res.Secrets = append(res.Secrets, o)
		}
	case "v1/Namespace":
		o := &corev1.Namespace{}
		if p = strict(o); p == nil {
			res.Namespaces = append(res.Namespaces, o)
		}
	default:
		return &resource.Problem{Source: src, Object: key, Field: "kind", Msg: fmt.Sprintf("unknown kind %q of apiVersion %q", tm.Kind, tm.APIVersion)}
	}
	if p != nil {
		return p
	}
	setDefaultNamespace(res, key)
	res.Sources[key] = src
	return nil
}

func namespaced(kind string) bool {
	return kind != "GatewayClass" && kind != "Namespace"
}

// setDefaultNamespace gives the object just appended the namespace "default"
// when its document names none, as kubectl apply would.
func setDefaultNamespace(res *resource.Resources, key resource.ObjectKey) {
	if !namespaced(key.Kind) {
		return
	}
	var o interface {
		GetNamespace() string
		SetNamespace(string)
	}
	switch key.Kind {
	case "Gateway":
		o = res.Gateways[len(res.Gateways)-1]
	case "HTTPRoute":
		o = res.HTTPRoutes[len(res.HTTPRoutes)-1]
	case "GRPCRoute":
		o = res.GRPCRoutes[len(res.GRPCRoutes)-1]
	case "ReferenceGrant":
		o = res.ReferenceGrants[len(res.ReferenceGrants)-1]
	case "Service":
		o = res.Services[len(res.Services)-1]
	case "EndpointSlice":
		o = res.EndpointSlices[len(res.EndpointSlices)-1]
	case "Secret":
		o = res.Secrets[len(res.Secrets)-1]
	default:
		return
	}
	if o.GetNamespace() == "" {
		o.SetNamespace(key.Namespace)
	}
}
