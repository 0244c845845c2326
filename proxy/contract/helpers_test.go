package contract

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// fieldExists looks the message up in the global registry (every package
// this one imports registers its messages).
func fieldExists(msg, field string) bool {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(msg))
	if err != nil {
		return false
	}
	return mt.Descriptor().Fields().ByName(protoreflect.Name(field)) != nil
}
