package auth

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// identity is an authenticated caller, with everything its claims add to an
// OK answer worked out once (identities are cached with the credential).
type identity struct {
	claims map[string]any
	// headers are the claim headers set upstream; remove the claim headers
	// of the policy this identity has no value for (so a client cannot
	// send them itself).
	headers []*corev3.HeaderValueOption
	remove  []string
	meta    *structpb.Struct
}

// claimHeader is a ClaimToHeader with the header in lower case.
type claimHeader struct{ claim, header string }

func claimHeadersOf(chs []ClaimToHeader) []claimHeader {
	out := make([]claimHeader, 0, len(chs))
	for _, c := range chs {
		out = append(out, claimHeader{claim: c.Claim, header: strings.ToLower(c.Header)})
	}
	return out
}

// newIdentity works out the claim headers (chs) of claims; policyHeaders are
// every claim header of the policy, which are removed when not set.
func newIdentity(claims map[string]any, chs []claimHeader, policyHeaders []string) *identity {
	id := &identity{claims: claims, meta: claimsMetadata(claims)}
	keepMetadataWire(id.meta)
	set := make(map[string]bool, len(chs))
	for _, ch := range chs {
		v, ok := headerValue(lookupClaim(claims, ch.claim))
		if !ok {
			continue
		}
		id.headers = append(id.headers, setHeader(ch.header, v))
		set[ch.header] = true
	}
	for _, h := range policyHeaders {
		if !set[h] {
			id.remove = append(id.remove, h)
		}
	}
	return id
}

// lookupClaim finds a top-level claim, or failing that a dotted path into
// nested objects.
func lookupClaim(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	if !strings.Contains(name, ".") {
		return nil
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// scalarText is the text of a string, number or boolean claim.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// headerValue is the header text of a claim: a scalar, or an array of
// scalars joined with ",". Values that could not be sent safely in a header
// (control characters) are not used.
func headerValue(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			t, ok := scalarText(e)
			if !ok {
				return "", false
			}
			parts = append(parts, t)
		}
		s = strings.Join(parts, ",")
	default:
		var ok bool
		if s, ok = scalarText(v); !ok {
			return "", false
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "", false
		}
	}
	return s, true
}

// claimMatches reports whether a claim is a scalar equal to one of values,
// or an array holding one.
func claimMatches(v any, values []string) bool {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if t, ok := scalarText(e); ok && containsString(values, t) {
				return true
			}
		}
		return false
	}
	t, ok := scalarText(v)
	return ok && containsString(values, t)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// claimsMetadata is the dynamic metadata of an identity: {"claims": {...}}
// with every top-level claim that is a string, number or boolean.
func claimsMetadata(claims map[string]any) *structpb.Struct {
	fields := make(map[string]*structpb.Value, len(claims))
	for k, v := range claims {
		switch x := v.(type) {
		case string:
			fields[k] = structpb.NewStringValue(x)
		case float64:
			fields[k] = structpb.NewNumberValue(x)
		case bool:
			fields[k] = structpb.NewBoolValue(x)
		}
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"claims": structpb.NewStructValue(&structpb.Struct{Fields: fields}),
	}}
}
