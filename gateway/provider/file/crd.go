package file

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/crds"
)

// File mode checks each object of a custom resource as kube-apiserver does
// on create with fieldValidation=Strict, with the API server's own code
// (k8s.io/apiextensions-apiserver) and the very CRDs sekisho installs,
// embedded in the binary: sekisho's (crds/generated) and the Gateway API's
// experimental channel of the pinned module (crds/gateway-api-experimental),
// since file mode accepts experimental fields such as HTTPRoute retry.
//
// The steps follow the API server's handling of a create:
//   - decoding (customresource_handler.go, unstructuredSchemaCoercer):
//     ObjectMeta decoded strictly, unknown fields pruned and reported (Strict
//     makes each one an error), nulls of non-nullable fields dropped,
//     embedded ObjectMeta coerced; then the schema's defaults applied;
//   - PrepareForCreate: status dropped when the CRD has a status subresource;
//   - Validate (registry/customresource strategy.go and validator.go):
//     ObjectMeta, the OpenAPI schema, embedded resources, list types and map
//     keys, then the CEL rules (x-kubernetes-validations) with the per-call
//     and per-request cost limits, skipped when an earlier error blocks them.
//
// Each CRD version's validators (structural schema, schema validator, CEL
// programs) are built on first use and reused.

// crdSchemas are the CRDs of the file provider.
var crdSchemas = newSchemaSet(crds.ExperimentalFS)

// schemaSet is every version of the CRDs of one file system, by group,
// version and kind.
type schemaSet struct {
	fsys     fs.FS
	once     sync.Once
	err      error
	versions map[schema.GroupVersionKind]*crdVersion
}

func newSchemaSet(fsys fs.FS) *schemaSet { return &schemaSet{fsys: fsys} }

// crdVersion is what the API server keeps to serve one version of a CRD.
type crdVersion struct {
	gvk        schema.GroupVersionKind
	crd        string // the CRD's name, for messages
	namespaced bool
	hasStatus  bool // a status subresource: create drops status
	props      *apiextensions.JSONSchemaProps

	once       sync.Once
	err        error
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// lookup returns the CRD version serving gvk, nil if none does.
func (s *schemaSet) lookup(gvk schema.GroupVersionKind) (*crdVersion, error) {
	s.once.Do(func() { s.versions, s.err = readCRDs(s.fsys) })
	if s.err != nil {
		return nil, s.err
	}
	v := s.versions[gvk]
	if v == nil {
		return nil, nil
	}
	v.once.Do(v.build)
	return v, v.err
}

// readCRDs reads every CRD of fsys, with the defaults the API server gives
// a CRD on create, and indexes its served versions.
func readCRDs(fsys fs.FS) (map[schema.GroupVersionKind]*crdVersion, error) {
	names, err := fs.Glob(fsys, "*/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("listing the embedded CRDs: %w", err)
	}
	sort.Strings(names)
	out := map[schema.GroupVersionKind]*crdVersion{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading the embedded CRD %s: %w", name, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := sigsyaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("decoding the embedded CRD %s: %w", name, err)
		}
		apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
		for _, ver := range crd.Spec.Versions {
			if !ver.Served {
				continue
			}
			val, err := apihelpers.GetSchemaForVersion(crd, ver.Name)
			if err != nil || val == nil || val.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("CRD %s version %s: no schema (%v)", crd.Name, ver.Name, err)
			}
			internal := &apiextensions.CustomResourceValidation{}
			if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(val, internal, nil); err != nil {
				return nil, fmt.Errorf("CRD %s version %s: converting its schema: %w", crd.Name, ver.Name, err)
			}
			sub, err := apihelpers.GetSubresourcesForVersion(crd, ver.Name)
			if err != nil {
				return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, ver.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}
			out[gvk] = &crdVersion{
				gvk:        gvk,
				crd:        crd.Name,
				namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
				hasStatus:  sub != nil && sub.Status != nil,
				props:      internal.OpenAPIV3Schema,
			}
		}
	}
	return out, nil
}

// build makes the version's validators as the API server does when it
// starts serving a CRD (crdHandler.getOrCreateServingInfoFor, NewStrategy).
func (v *crdVersion) build() {
	s, err := structuralschema.NewStructural(v.props)
	if err != nil {
		v.err = fmt.Errorf("CRD %s version %s: structural schema: %w", v.crd, v.gvk.Version, err)
		return
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		v.err = fmt.Errorf("CRD %s version %s: pruning defaults: %w", v.crd, v.gvk.Version, err)
		return
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(v.props)
	if err != nil {
		v.err = fmt.Errorf("CRD %s version %s: schema validator: %w", v.crd, v.gvk.Version, err)
		return
	}
	v.structural, v.schema = s, validator
	v.cel = cel.NewValidator(s, true, celconfig.PerCallLimit)
	v.props = nil // no longer needed
}

// decode does to obj, a document decoded as JSON, what the API server's
// decoder does to a custom resource: strict ObjectMeta, pruning, nulls,
// embedded ObjectMeta, then defaults. It returns the paths of the unknown
// fields (each an error under fieldValidation=Strict), or an error when the
// API server could not decode obj at all.
func (v *crdVersion) decode(obj map[string]any) ([]string, error) {
	kind, apiVersion := obj["kind"], obj["apiVersion"]
	meta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, err
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(obj, v.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false,
		schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	unknown = append(unknown, paths...)
	obj["kind"], obj["apiVersion"] = kind, apiVersion
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(obj, meta); err != nil {
			return nil, err
		}
	}
	structuraldefaulting.Default(obj, v.structural)
	if v.hasStatus {
		delete(obj, "status") // PrepareForCreate: create cannot set status
	}
	return unknown, nil
}

// validate checks a decoded object as the custom resource strategy's
// Validate does on create.
func (v *crdVersion) validate(obj map[string]any) field.ErrorList {
	u := &unstructured.Unstructured{Object: obj}
	var errs field.ErrorList
	errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessor(u, v.namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(nil, obj, v.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if blocked := blockingError(errs); blocked != nil {
		return append(sortErrors(errs), blocked)
	}
	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return sortErrors(append(errs, celErrs...))
}

// sortErrors orders errors by field path, then message: the schema
// validator's order changes from run to run.
func sortErrors(errs field.ErrorList) field.ErrorList {
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Field != errs[j].Field {
			return errs[i].Field < errs[j].Field
		}
		return errs[i].ErrorBody() < errs[j].ErrorBody()
	})
	return errs
}

// blockingError is the error the API server adds instead of running the CEL
// rules when an earlier error means they could not be evaluated safely
// (customResourceStrategy.Validate, hasBlockingErr).
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}
