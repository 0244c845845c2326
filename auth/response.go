package auth

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// Answers share read-only parts (the OK status, the header options and
// metadata of cached identities): a CheckResponse must not be modified.
var okStatus = &status.Status{Code: int32(codes.OK)}

// setHeader replaces every value of a header (or adds it).
func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// addHeader adds a value to a header (Set-Cookie).
func addHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
	}
}

// okParts collects what an OK answer adds to the request beyond the
// identity's claim headers.
type okParts struct {
	headers     []*corev3.HeaderValueOption // request headers set upstream
	remove      []string                    // request headers removed
	queryRemove []string                    // query parameters removed
	respHeaders []*corev3.HeaderValueOption // response headers (Set-Cookie)
}

// okResponse answers OK. id is nil for an anonymous request, whose claim
// headers (anonRemove) are all removed.
func okResponse(id *identity, anonRemove []string, x *okParts) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{}
	var meta *structpb.Struct
	if id != nil {
		ok.Headers, ok.HeadersToRemove, meta = id.headers, id.remove, id.meta
	} else {
		ok.HeadersToRemove = anonRemove
	}
	if len(x.headers) > 0 {
		ok.Headers = append(ok.Headers[:len(ok.Headers):len(ok.Headers)], x.headers...)
	}
	if len(x.remove) > 0 {
		ok.HeadersToRemove = append(ok.HeadersToRemove[:len(ok.HeadersToRemove):len(ok.HeadersToRemove)], x.remove...)
	}
	ok.QueryParametersToRemove = x.queryRemove
	ok.ResponseHeadersToAdd = x.respHeaders
	return &authv3.CheckResponse{
		Status:          okStatus,
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: meta,
	}
}

// deniedResponse answers with an HTTP response of its own. The body is a
// short plain-text reason.
func deniedResponse(code typev3.StatusCode, body string, headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
	gc := codes.PermissionDenied
	switch code {
	case typev3.StatusCode_Unauthorized:
		gc = codes.Unauthenticated
	case typev3.StatusCode_ServiceUnavailable:
		gc = codes.Unavailable
	}
	if body != "" {
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		headers = append(headers, setHeader("content-type", "text/plain; charset=utf-8"))
	}
	headers = append(headers, setHeader("cache-control", "no-store"))
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(gc), Message: strings.TrimSpace(body)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: code},
			Headers: headers,
			Body:    body,
		}},
	}
}

// redirectResponse is a 302 to location with the given Set-Cookie values.
func redirectResponse(location string, cookies []string) *authv3.CheckResponse {
	hs := make([]*corev3.HeaderValueOption, 0, len(cookies)+1)
	hs = append(hs, setHeader("location", location))
	for _, c := range cookies {
		hs = append(hs, addHeader("set-cookie", c))
	}
	return deniedResponse(typev3.StatusCode_Found, "", hs...)
}

// cookieHeaders are Set-Cookie header options for cookie values.
func cookieHeaders(cookies []string) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(cookies))
	for _, c := range cookies {
		out = append(out, addHeader("set-cookie", c))
	}
	return out
}

// invalidToken is the answer to a token that does not verify.
func invalidToken() *authv3.CheckResponse {
	return deniedResponse(typev3.StatusCode_Unauthorized, "invalid token",
		setHeader("www-authenticate", `Bearer error="invalid_token"`))
}

// unavailable is the answer when the identity provider cannot be reached.
func unavailable() *authv3.CheckResponse {
	return deniedResponse(typev3.StatusCode_ServiceUnavailable, "identity provider unavailable",
		setHeader("retry-after", "5"))
}
