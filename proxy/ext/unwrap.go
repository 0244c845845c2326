package ext

import (
	"errors"
	"fmt"
	"strings"

	udpav1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The wrappers the core sees through before a lookup: a per-route
// FilterConfig, and the TypedStructs in which a control plane sends a
// config as JSON, naming its type by type_url (as Envoy takes a config
// whose proto it has not compiled in).
var (
	filterConfigName = messageName(&routev3.FilterConfig{})
	xdsTypedStruct   = messageName(&xdstypev3.TypedStruct{})
	udpaTypedStruct  = messageName(&udpav1.TypedStruct{})
)

// UnknownTypeError is the error of a typed config of a type no registered
// filter takes (the type a TypedStruct names, for one).
type UnknownTypeError struct{ Type protoreflect.FullName }

func (e *UnknownTypeError) Error() string {
	return string(e.Type) + ": no registered filter takes this type"
}

// DecodeConfig decodes an http_filters typed_config: the filter whose
// config it is and the message, seen through a TypedStruct. The error is an
// *UnknownTypeError when no registered filter takes its type.
func DecodeConfig(a *anypb.Any) (*HTTPFilter, proto.Message, error) {
	name, m, err := decodeAny(a, func(n protoreflect.FullName) proto.Message {
		if f := FilterFor(n); f != nil {
			return f.Config.ProtoReflect().New().Interface()
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return FilterFor(name), m, nil
}

// PerRoute is a decoded typed_per_filter_config entry.
type PerRoute struct {
	Filter  *HTTPFilter
	Message proto.Message // nil when a FilterConfig disables the filter without a config
	// Optional: a FilterConfig marked it is_optional, so the entry may be
	// ignored when no registered filter takes its type.
	Optional bool
	// Disabled: a FilterConfig disables the filter on the route.
	Disabled bool
}

// DecodePerRoute decodes a typed_per_filter_config entry, seen through a
// FilterConfig and a TypedStruct. The error is an *UnknownTypeError when no
// registered filter takes its type as a per-route configuration.
func DecodePerRoute(a *anypb.Any) (PerRoute, error) {
	var pr PerRoute
	if a.MessageName() == filterConfigName {
		fc := &routev3.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			return pr, err
		}
		pr.Optional, pr.Disabled = fc.GetIsOptional(), fc.GetDisabled()
		if fc.GetConfig() == nil {
			if !pr.Disabled {
				return pr, errors.New("config: required unless disabled is true")
			}
			return pr, nil
		}
		a = fc.GetConfig()
	}
	name, m, err := decodeAny(a, func(n protoreflect.FullName) proto.Message {
		if f := PerRouteFor(n); f != nil {
			return f.PerRoute.ProtoReflect().New().Interface()
		}
		return nil
	})
	if err != nil {
		return pr, err
	}
	pr.Filter, pr.Message = PerRouteFor(name), m
	return pr, nil
}

// IsTypedStruct reports whether name is one of the TypedStruct messages.
func IsTypedStruct(name protoreflect.FullName) bool {
	return name == xdsTypedStruct || name == udpaTypedStruct
}

// TypedStruct returns the message a TypedStruct carries: a message of the
// type its type_url names (newMsg returns one, or nil for a type it does
// not take), decoded from its JSON value.
func TypedStruct(a *anypb.Any, newMsg func(protoreflect.FullName) proto.Message) (proto.Message, error) {
	var typeURL string
	var value *structpb.Struct
	switch a.MessageName() {
	case xdsTypedStruct:
		ts := &xdstypev3.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return nil, err
		}
		typeURL, value = ts.GetTypeUrl(), ts.GetValue()
	case udpaTypedStruct:
		ts := &udpav1.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return nil, err
		}
		typeURL, value = ts.GetTypeUrl(), ts.GetValue()
	default:
		return nil, fmt.Errorf("%s is not a TypedStruct", a.MessageName())
	}
	name := protoreflect.FullName(typeURL[strings.LastIndexByte(typeURL, '/')+1:])
	m := newMsg(name)
	if m == nil {
		return nil, &UnknownTypeError{Type: name}
	}
	js, err := protojson.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return nil, fmt.Errorf("value: decoding %s: %w", name, err)
	}
	return m, nil
}

// decodeAny decodes a, or the message its TypedStruct carries, into the
// message newMsg gives for its type.
func decodeAny(a *anypb.Any, newMsg func(protoreflect.FullName) proto.Message) (protoreflect.FullName, proto.Message, error) {
	if IsTypedStruct(a.MessageName()) {
		m, err := TypedStruct(a, newMsg)
		if err != nil {
			return "", nil, err
		}
		return messageName(m), m, nil
	}
	m := newMsg(a.MessageName())
	if m == nil {
		return "", nil, &UnknownTypeError{Type: a.MessageName()}
	}
	if err := a.UnmarshalTo(m); err != nil {
		return "", nil, err
	}
	return a.MessageName(), m, nil
}
