package ext

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// HeaderAction is how a header edit applies.
type HeaderAction uint8

const (
	HeaderSet               HeaderAction = iota // replace every value, or add
	HeaderAdd                                   // add a value
	HeaderAppend                                // join to the existing value with ","; nothing when absent
	HeaderAddIfAbsent                           // add when absent
	HeaderOverwriteIfExists                     // replace when present
)

// HeaderOp is one header edit.
type HeaderOp struct {
	Key    string // canonical
	Value  string
	Action HeaderAction
}

// HeaderOps turns header options a service answered into edits, skipping
// those a service may not make (see EditableHeader). For the request
// headers (toRequest), the deprecated append=true joins the value to the
// existing one; for response headers it adds a value. Without append,
// append_action says how.
func HeaderOps(opts []*corev3.HeaderValueOption, toRequest bool) []HeaderOp {
	if len(opts) == 0 {
		return nil
	}
	out := make([]HeaderOp, 0, len(opts))
	for _, o := range opts {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		if v == "" && len(o.GetHeader().GetRawValue()) > 0 {
			v = string(o.GetHeader().GetRawValue())
		}
		key, ok := EditableHeader(k, v)
		if !ok {
			continue
		}
		op := HeaderOp{Key: key, Value: v}
		appendSet, appendValue := legacyAppend(o)
		switch {
		case appendSet && appendValue && toRequest:
			op.Action = HeaderAppend
		case appendSet && appendValue:
			op.Action = HeaderAdd
		case appendSet:
			op.Action = HeaderSet
		default:
			switch o.GetAppendAction() {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				op.Action = HeaderAdd
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				op.Action = HeaderAddIfAbsent
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				op.Action = HeaderOverwriteIfExists
			default:
				op.Action = HeaderSet
			}
		}
		out = append(out, op)
	}
	return out
}

// legacyAppend reads the deprecated append field, which services still
// send and which, when set, takes precedence over append_action.
func legacyAppend(o *corev3.HeaderValueOption) (set, value bool) {
	a := o.GetAppend() //lint:ignore SA1019 honoured as Envoy honours it
	return a != nil, a.GetValue()
}

// EditableHeader returns the canonical key of a header a service may edit:
// not when the name is not a token, is a pseudo-header, Host,
// Content-Length, Transfer-Encoding or Connection, or when the value holds
// CR, LF or NUL.
func EditableHeader(k, v string) (string, bool) {
	if k == "" || k[0] == ':' || !validToken(k) {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return "", false
		}
	}
	key := textproto.CanonicalMIMEHeaderKey(k)
	switch key {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection":
		return "", false
	}
	return key, true
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ApplyHeaderOps edits h. In a local reply (local), the first replacing
// edit of a header drops what the reply had, and later ones add to it, so
// that a service can send several values (Set-Cookie).
func ApplyHeaderOps(h http.Header, ops []HeaderOp, local bool) {
	var replaced map[string]bool
	for _, op := range ops {
		switch op.Action {
		case HeaderSet:
			if !local {
				h[op.Key] = []string{op.Value}
				continue
			}
			if !replaced[op.Key] {
				if replaced == nil {
					replaced = map[string]bool{}
				}
				replaced[op.Key] = true
				delete(h, op.Key)
			}
			h[op.Key] = append(h[op.Key], op.Value)
		case HeaderAdd:
			h[op.Key] = append(h[op.Key], op.Value)
		case HeaderAppend:
			if vv := h[op.Key]; len(vv) > 0 {
				h[op.Key] = []string{strings.Join(vv, ",") + "," + op.Value}
			}
		case HeaderAddIfAbsent:
			if _, ok := h[op.Key]; !ok {
				h[op.Key] = []string{op.Value}
			}
		case HeaderOverwriteIfExists:
			if _, ok := h[op.Key]; ok {
				h[op.Key] = []string{op.Value}
			}
		}
	}
}

// HTTPStatus checks a configured status (nil: def), such as a filter's
// status_on_error.
func HTTPStatus(s *typev3.HttpStatus, def int) (int, error) {
	if s == nil {
		return def, nil
	}
	c := int(s.GetCode())
	if c < 200 || c > 599 {
		return 0, fmt.Errorf("code %d is not a final HTTP status", c)
	}
	return c, nil
}
