package file

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fieldError is one field of a document that does not fit the Go type it is
// decoded into.
type fieldError struct {
	path string
	msg  string
}

// checkTree walks v, a document of a core kind (custom resources are checked
// against their CRDs instead, crd.go) decoded generically from JSON (objects
// as map[string]any, numbers as json.Number), against the Go type t and reports
// every unknown field and every value of the wrong type, each with its JSON
// path. It accepts exactly what the strict decoder accepts, and names field
// keys case-sensitively as the Kubernetes API server does.
func checkTree(v any, t reflect.Type, path string, out *[]fieldError) {
	if v == nil {
		return // null is the zero value for every type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if special, ok := specialTypes[t]; ok {
		if msg := special(v); msg != "" {
			*out = append(*out, fieldError{path, msg})
		}
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		return
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			*out = append(*out, fieldError{path, "expected object, got " + describe(v)})
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(obj) {
			f, ok := fields[k]
			if !ok {
				*out = append(*out, fieldError{join(path, k), "unknown field"})
				continue
			}
			checkTree(obj[k], f.typ, join(path, k), out)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			*out = append(*out, fieldError{path, "expected object, got " + describe(v)})
			return
		}
		for _, k := range sortedKeys(obj) {
			checkTree(obj[k], t.Elem(), path+"["+k+"]", out)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			s, ok := v.(string)
			if !ok {
				*out = append(*out, fieldError{path, "expected base64 string, got " + describe(v)})
				return
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				*out = append(*out, fieldError{path, fmt.Sprintf("invalid base64: %v", err)})
			}
			return
		}
		arr, ok := v.([]any)
		if !ok {
			*out = append(*out, fieldError{path, "expected array, got " + describe(v)})
			return
		}
		for i, e := range arr {
			checkTree(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.String:
		switch v.(type) {
		case string, json.Number, bool:
			// numbers and booleans are turned into strings for string fields
		default:
			*out = append(*out, fieldError{path, "expected string, got " + describe(v)})
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			*out = append(*out, fieldError{path, "expected boolean, got " + describe(v)})
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			*out = append(*out, fieldError{path, "expected integer, got " + describe(v)})
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			*out = append(*out, fieldError{path, intError(n, t, err)})
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			*out = append(*out, fieldError{path, "expected integer, got " + describe(v)})
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			*out = append(*out, fieldError{path, intError(n, t, err)})
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			*out = append(*out, fieldError{path, "expected number, got " + describe(v)})
			return
		}
		if f, err := strconv.ParseFloat(string(n), t.Bits()); err != nil || math.IsInf(f, 0) {
			*out = append(*out, fieldError{path, fmt.Sprintf("number %s out of range", n)})
		}
	default:
		*out = append(*out, fieldError{path, fmt.Sprintf("cannot decode into a field of Go kind %s", t.Kind())})
	}
}

func intError(n json.Number, t reflect.Type, err error) string {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return fmt.Sprintf("integer %s out of range for %s", n, t.Kind())
	}
	return "expected integer, got number " + string(n)
}

// specialTypes are types with their own JSON form; each function returns a
// message when v does not have that form.
var specialTypes = map[reflect.Type]func(v any) string{
	reflect.TypeFor[metav1.Time]():          timeString,
	reflect.TypeFor[metav1.MicroTime]():     timeString,
	reflect.TypeFor[runtime.RawExtension](): func(any) string { return "" },
	reflect.TypeFor[metav1.Duration](): func(v any) string {
		s, ok := v.(string)
		if !ok {
			return "expected duration string, got " + describe(v)
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("invalid duration %q", s)
		}
		return ""
	},
	reflect.TypeFor[intstr.IntOrString](): func(v any) string {
		switch v := v.(type) {
		case string:
			return ""
		case json.Number:
			if _, err := strconv.ParseInt(string(v), 10, 32); err != nil {
				return "expected integer or string, got number " + string(v)
			}
			return ""
		}
		return "expected integer or string, got " + describe(v)
	},
	reflect.TypeFor[resource.Quantity](): func(v any) string {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = string(v)
		default:
			return "expected quantity, got " + describe(v)
		}
		if _, err := resource.ParseQuantity(s); err != nil {
			return fmt.Sprintf("invalid quantity %q", s)
		}
		return ""
	},
}

func timeString(v any) string {
	s, ok := v.(string)
	if !ok {
		return "expected RFC 3339 time string, got " + describe(v)
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return fmt.Sprintf("invalid RFC 3339 time %q", s)
	}
	return ""
}

// describe names the JSON type of v and shows scalars, for messages such as
// `expected integer, got string "eighty"`.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + string(v)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	}
	return fmt.Sprintf("%T", v)
}

// join appends a field name to a JSON path.
func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonField is one field of a struct as encoding/json sees it.
type jsonField struct {
	index []int
	typ   reflect.Type
}

var fieldCache sync.Map // reflect.Type -> map[string]jsonField

// jsonFields maps the JSON names of t's fields, with the fields of embedded
// structs that have no JSON name of their own promoted, as encoding/json does.
func jsonFields(t reflect.Type) map[string]jsonField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]jsonField)
	}
	m := map[string]jsonField{}
	addJSONFields(t, nil, m)
	fieldCache.Store(t, m)
	return m
}

func addJSONFields(t reflect.Type, index []int, m map[string]jsonField) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if name == "" && f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addJSONFields(ft, idx, m)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := m[name]; !dup {
			m[name] = jsonField{index: idx, typ: f.Type}
		}
	}
}
