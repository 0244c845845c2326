// Package file is the file provider: it reads Gateway API and core objects
// from a folder of multi-document YAML files (Load), checks them as a
// Kubernetes API server would at admission (Validate), and watches the folder,
// serving the last good version of any file that goes bad (Watch, Watcher).
package file

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsyaml "sigs.k8s.io/yaml"

	configv1alpha1 "github.com/sekisho/sekisho/crds/config/v1alpha1"
	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
)

// kinds maps "apiVersion/kind" to a function that makes an empty object of
// the Go type that document decodes into.
var kinds = map[string]func() any{
	"gateway.networking.k8s.io/v1/GatewayClass":      func() any { return &gwv1.GatewayClass{} },
	"gateway.networking.k8s.io/v1beta1/GatewayClass": func() any { return &gwv1.GatewayClass{} },
	"gateway.networking.k8s.io/v1/Gateway":           func() any { return &gwv1.Gateway{} },
	"gateway.networking.k8s.io/v1beta1/Gateway":      func() any { return &gwv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":         func() any { return &gwv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1beta1/HTTPRoute":    func() any { return &gwv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1/GRPCRoute":         func() any { return &gwv1.GRPCRoute{} },
	"gateway.networking.k8s.io/v1/ReferenceGrant":    func() any { return &gwv1.ReferenceGrant{} },
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant": func() any {
		return &gwv1beta1.ReferenceGrant{}
	},
	"v1/Service":                        func() any { return &corev1.Service{} },
	"discovery.k8s.io/v1/EndpointSlice": func() any { return &discoveryv1.EndpointSlice{} },
	"v1/Secret":                         func() any { return &corev1.Secret{} },
	"v1/Namespace":                      func() any { return &corev1.Namespace{} },
	"config.sekisho.dev/v1alpha1/GatewayClassConfig": func() any { return &configv1alpha1.GatewayClassConfig{} },
	"policy.sekisho.dev/v1alpha1/RateLimitPolicy":    func() any { return &policyv1alpha1.RateLimitPolicy{} },
	"policy.sekisho.dev/v1alpha1/SecurityPolicy":     func() any { return &policyv1alpha1.SecurityPolicy{} },
}

// ParseBytes decodes every YAML document of one file into res, recording where
// each object came from. Documents that cannot be decoded are reported as
// problems and skipped; the others are kept. Every problem names the file and
// document, and where known the object and the JSON path of the field.
// Objects without a namespace get "default", as kubectl apply would. An object
// already in res (same kind, namespace and name) is reported as a duplicate
// naming both places, and the new copy is skipped.
//
// A custom resource (a Gateway API kind, a policy, GatewayClassConfig) is
// decoded as the API server decodes it on create with fieldValidation=Strict
// (crd.go): an unknown field refuses the document, and the defaults of its
// CRD are applied, so the object is what a cluster would store. Its checked
// form is kept in res.Content for Validate. Core kinds are decoded strictly
// into their Go types. ParseBytes does not validate what decodes: Validate
// does.
func ParseBytes(name string, data []byte, res *resource.Resources) []resource.Problem {
	if res.Sources == nil {
		res.Sources = map[resource.ObjectKey]resource.Source{}
	}
	var problems []resource.Problem
	for i, d := range splitDocuments(data) {
		src := resource.Source{File: name, Doc: i}
		if d.badSeparator != "" {
			problems = append(problems, separatorProblem(src, d))
			continue
		}
		dec := decodeDocument(d, src)
		problems = append(problems, dec.commit(res, src)...)
	}
	return problems
}

func separatorProblem(src resource.Source, d document) resource.Problem {
	return resource.Problem{Source: src,
		Msg: fmt.Sprintf("invalid YAML document separator at line %d: only a comment may follow \"---\", got %q", d.line, d.badSeparator)}
}

// document is one YAML document of a file.
type document struct {
	data []byte
	line int // line of the file where data starts, from 1
	// badSeparator is what follows "---" on a separator line when that is not
	// a comment; the document is then not decoded.
	badSeparator string
}

// splitDocuments splits a file at its "---" lines, as kubectl does, keeping
// the line each document starts at. A UTF-8 byte order mark is dropped. Empty
// stretches (before a leading "---", or between two "---" lines) are not
// documents, so indexes count the documents a reader sees.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []document
	cur := document{line: 1}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			trimmed := strings.TrimSpace(string(rest))
			if len(cur.data) > 0 {
				docs = append(docs, cur)
			}
			cur = document{line: lineNo + 1}
			if trimmed != "" && trimmed[0] != '#' {
				// the lines up to the next separator belong to this broken document
				cur = document{line: lineNo, badSeparator: trimmed, data: []byte(trimmed)}
			}
			continue
		}
		cur.data = append(cur.data, line...)
	}
	if len(cur.data) > 0 {
		docs = append(docs, cur)
	}
	return docs
}

var yamlLineRE = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: (?:unmarshal errors:\s*)?line (\d+): (.*)$`)

// yamlError rewrites a YAML syntax error so that its line number is the
// line of the file rather than of the document.
func yamlError(err error, firstLine int) string {
	msg := strings.TrimSpace(err.Error())
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("malformed YAML at line %d: %s", n+firstLine-1, m[2])
	}
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	return "malformed YAML: " + strings.TrimPrefix(msg, "yaml: ")
}

// decoded is what decoding one document gives, before it joins a
// Resources (commit). Decoding a document (decodeDocument) reads nothing
// shared but the CRD validators, so documents can be decoded concurrently.
type decoded struct {
	key resource.ObjectKey
	// obj is the decoded object, nil when the document has problems or is
	// only comments.
	obj any
	// content is a custom resource's checked form (decodeCustomResource),
	// kept in Resources.Content for Validate; nil once checked is set.
	content map[string]any
	// checked says that crdErrs holds what validating content against its
	// CRD gives (crdVersion.validate), so that Validate need not do it again.
	checked  bool
	crdErrs  field.ErrorList
	problems []resource.Problem
}

// decodeDocument decodes one document of a file; see ParseBytes.
func decodeDocument(d document, src resource.Source) decoded {
	fail := func(key resource.ObjectKey, field, format string, args ...any) decoded {
		return decoded{key: key, problems: []resource.Problem{{Source: src, Object: key, Field: field, Msg: fmt.Sprintf(format, args...)}}}
	}
	js, err := sigsyaml.YAMLToJSONStrict(d.data)
	if err != nil {
		return fail(resource.ObjectKey{}, "", "%s", yamlError(err, d.line))
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return fail(resource.ObjectKey{}, "", "malformed YAML: %v", err)
	}
	if tree == nil {
		return decoded{} // a document of comments only
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return fail(resource.ObjectKey{}, "", "expected a Kubernetes object (a YAML mapping), got %s", describe(tree))
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	switch {
	case !namespaced(kind):
		namespace = "" // cluster-scoped: a namespace is ignored, as the API server does
	case namespace == "":
		namespace = "default"
	}
	key := resource.ObjectKey{Kind: kind, Namespace: namespace, Name: name}
	switch {
	case kind == "":
		return fail(resource.ObjectKey{}, "kind", "missing: every document must say its kind")
	case apiVersion == "":
		return fail(key, "apiVersion", "missing: every document must say its apiVersion")
	}
	newObj, ok := kinds[apiVersion+"/"+kind]
	if !ok {
		return fail(key, "kind", "unknown kind %q of apiVersion %q", kind, apiVersion)
	}
	if name == "" {
		return fail(key, "metadata.name", "missing: every object must have a name")
	}
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	into := newObj()
	var content map[string]any
	if coreKinds[gvk] {
		var errs []fieldError
		checkTree(tree, reflect.TypeOf(into), "", &errs)
		if len(errs) > 0 {
			var problems []resource.Problem
			for _, e := range errs {
				problems = append(problems, resource.Problem{Source: src, Object: key, Field: e.path, Msg: e.msg})
			}
			return decoded{key: key, problems: problems}
		}
		if err := sigsyaml.UnmarshalStrict(d.data, into); err != nil {
			// checkTree accepts what the decoder accepts; this is a fallback.
			return fail(key, "", "decoding: %v", err)
		}
	} else {
		var problems []resource.Problem
		if content, problems = decodeCustomResource(obj, gvk, key, src, into); len(problems) > 0 {
			return decoded{key: key, problems: problems}
		}
	}
	return decoded{key: key, obj: into, content: content}
}

// check validates a decoded custom resource against its CRD now, as
// Validate would, and drops its content, which is no longer needed.
func (d *decoded) check() {
	if d.content == nil {
		return
	}
	apiVersion, _ := d.content["apiVersion"].(string)
	crd, err := crdSchemas.lookup(schema.FromAPIVersionAndKind(apiVersion, d.key.Kind))
	if err != nil || crd == nil {
		return // Validate says so
	}
	d.crdErrs, d.checked, d.content = crd.validate(d.content), true, nil
}

// commit adds a decoded document to res, unless it had problems or res
// already has the same object, and returns its problems.
func (d *decoded) commit(res *resource.Resources, src resource.Source) []resource.Problem {
	if len(d.problems) > 0 || d.obj == nil {
		return d.problems
	}
	if prev, dup := res.Sources[d.key]; dup {
		return []resource.Problem{{Source: src, Object: d.key, Msg: fmt.Sprintf("duplicate: the same object is also defined at %s; this copy is ignored", prev)}}
	}
	add(res, d.key, d.obj)
	res.Sources[d.key] = src
	if d.content != nil {
		if res.Content == nil {
			res.Content = map[resource.ObjectKey]map[string]any{}
		}
		res.Content[d.key] = d.content
	}
	return nil
}

// coreKinds are the kinds of Kubernetes itself (no CRD): they are decoded
// into their Go types and checked by hand (Validate).
var coreKinds = map[schema.GroupVersionKind]bool{
	{Version: "v1", Kind: "Service"}:                                  true,
	{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"}: true,
	{Version: "v1", Kind: "Secret"}:                                   true,
	{Version: "v1", Kind: "Namespace"}:                                true,
}

// decodeCustomResource decodes obj, a custom resource, as the API server does
// on create with fieldValidation=Strict: unknown fields are errors, defaults
// are applied, a cluster-scoped object loses its namespace and a namespaced
// one gets key's. It returns the object as the API server would validate
// it, for Validate, and fills into, the object's Go type.
func decodeCustomResource(obj map[string]any, gvk schema.GroupVersionKind, key resource.ObjectKey, src resource.Source, into any) (map[string]any, []resource.Problem) {
	fail := func(field, format string, args ...any) []resource.Problem {
		return []resource.Problem{{Source: src, Object: key, Field: field, Msg: fmt.Sprintf(format, args...)}}
	}
	crd, err := crdSchemas.lookup(gvk)
	switch {
	case err != nil:
		return nil, fail("", "reading the CRD of %s: %v", gvk.Kind, err)
	case crd == nil:
		return nil, fail("apiVersion", "no CRD serves %s in version %s", gvk.Kind, gvk.GroupVersion())
	}
	content := unstructuredNumbers(obj).(map[string]any)
	unknown, err := crd.decode(content)
	if err != nil {
		return nil, fail("metadata", "decoding: %v", err)
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetNamespace(key.Namespace)
	var problems []resource.Problem
	for _, path := range unknown {
		problems = append(problems, resource.Problem{Source: src, Object: key, Field: path, Msg: "unknown field"})
	}
	err = runtime.DefaultUnstructuredConverter.FromUnstructured(content, into)
	if len(problems) > 0 || err != nil {
		// Refused: unknown fields (the API server stops there under
		// fieldValidation=Strict), or a value of the wrong type for the Go
		// type. The rest of the object's problems are said as well, in the
		// API server's words, so that one pass shows them all.
		for _, e := range crd.validate(content) {
			problems = append(problems, fieldProblem(src, key, e))
		}
		if len(problems) == 0 {
			problems = fail("", "decoding: %v", err)
		}
		return nil, problems
	}
	return content, nil
}

// unstructuredNumbers turns the json.Numbers of a decoded document into
// int64 or float64, as the API server's JSON decoding of an unstructured
// object does (k8s.io/apimachinery/pkg/util/json). It changes maps and
// slices in place.
func unstructuredNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = unstructuredNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = unstructuredNumbers(e)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return string(v)
	}
	return v
}

func namespaced(kind string) bool {
	return kind != "GatewayClass" && kind != "Namespace"
}

// object is what every decoded object is.
type object interface {
	GetNamespace() string
	SetNamespace(string)
}

// add appends a decoded object to res, giving a namespaced object the
// namespace of its key when its document named none, and converting a
// v1beta1 ReferenceGrant to v1.
func add(res *resource.Resources, key resource.ObjectKey, o any) {
	if ob, ok := o.(object); ok && namespaced(key.Kind) && ob.GetNamespace() == "" {
		ob.SetNamespace(key.Namespace)
	}
	switch o := o.(type) {
	case *gwv1.GatewayClass:
		res.GatewayClasses = append(res.GatewayClasses, o)
	case *gwv1.Gateway:
		res.Gateways = append(res.Gateways, o)
	case *gwv1.HTTPRoute:
		res.HTTPRoutes = append(res.HTTPRoutes, o)
	case *gwv1.GRPCRoute:
		res.GRPCRoutes = append(res.GRPCRoutes, o)
	case *gwv1.ReferenceGrant:
		res.ReferenceGrants = append(res.ReferenceGrants, o)
	case *gwv1beta1.ReferenceGrant:
		v1 := &gwv1.ReferenceGrant{ObjectMeta: o.ObjectMeta}
		v1.APIVersion, v1.Kind = gwv1.GroupVersion.String(), "ReferenceGrant"
		for _, f := range o.Spec.From {
			v1.Spec.From = append(v1.Spec.From, gwv1.ReferenceGrantFrom{Group: f.Group, Kind: f.Kind, Namespace: f.Namespace})
		}
		for _, t := range o.Spec.To {
			v1.Spec.To = append(v1.Spec.To, gwv1.ReferenceGrantTo{Group: t.Group, Kind: t.Kind, Name: t.Name})
		}
		res.ReferenceGrants = append(res.ReferenceGrants, v1)
	case *corev1.Service:
		res.Services = append(res.Services, o)
	case *discoveryv1.EndpointSlice:
		res.EndpointSlices = append(res.EndpointSlices, o)
	case *corev1.Secret:
		// the API server merges stringData into data on write
		for k, val := range o.StringData {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			o.Data[k] = []byte(val)
		}
		o.StringData = nil
		res.Secrets = append(res.Secrets, o)
	case *corev1.Namespace:
		res.Namespaces = append(res.Namespaces, o)
	case *configv1alpha1.GatewayClassConfig:
		res.GatewayClassConfigs = append(res.GatewayClassConfigs, o)
	case *policyv1alpha1.RateLimitPolicy:
		res.RateLimitPolicies = append(res.RateLimitPolicies, o)
	case *policyv1alpha1.SecurityPolicy:
		res.SecurityPolicies = append(res.SecurityPolicies, o)
	}
}
