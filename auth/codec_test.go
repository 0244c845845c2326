package auth

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/internal/unarygrpc"
)

// codecRequests are CheckRequests as the proxy and Envoy send them, and
// some they do not.
func codecRequests(t testing.TB) map[string]*authv3.CheckRequest {
	full := req{path: "/a/b?c=d", headers: map[string]string{"authorization": "Bearer x", "cookie": "a=b", "x-ünïcode": "välue"}}.proto()
	full.Attributes.Destination = &authv3.AttributeContext_Peer{Service: "svc", Labels: map[string]string{"a": "b"}, Principal: "p", Certificate: "cert",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol: corev3.SocketAddress_UDP, Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}}}}}
	full.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"f": {Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}}}}
	full.Attributes.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"r": {}}}
	full.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "app.example.com"}
	full.Attributes.Request.Time = timestamppb.New(testStart)
	h := full.Attributes.Request.Http
	h.Id, h.Query, h.Fragment, h.Size, h.Protocol, h.Body, h.RawBody = "42", "c=d", "frag", -1, "HTTP/2", "body", []byte{0, 1, 2}

	headerMap := req{path: "/"}.proto()
	headerMap.Attributes.Request.Http.Headers = nil
	headerMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "a", Value: "1"}, {Key: "b", RawValue: []byte("2")}}}

	return map[string]*authv3.CheckRequest{
		"typical": req{path: "/api/v1/orders/1?x=1", headers: map[string]string{
			"authorization": "Bearer abc.def.ghi", ":authority": "api.example.com", "user-agent": "curl/8", "x-custom": "1",
		}}.proto(),
		"every field":  full,
		"header map":   headerMap,
		"empty":        {},
		"empty values": {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"": ""}}}, ContextExtensions: map[string]string{"k": ""}}},
	}
}

func decodeBoth(t *testing.T, b []byte) (fast, std *authv3.CheckRequest, fastErr, stdErr error) {
	t.Helper()
	fast, std = &authv3.CheckRequest{}, &authv3.CheckRequest{}
	fastErr = Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, fast)
	stdErr = proto.Unmarshal(b, std)
	return
}

func TestCodecReadsRequestsAsProtoDoes(t *testing.T) {
	for name, r := range codecRequests(t) {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if !decodeCheckRequest(b, &authv3.CheckRequest{}) {
				t.Fatal("the direct reader gave up on a request it should read")
			}
			fast, std, fe, se := decodeBoth(t, b)
			if fe != nil || se != nil {
				t.Fatalf("errors: codec %v, proto %v", fe, se)
			}
			if !proto.Equal(fast, std) || !proto.Equal(fast, r) {
				t.Fatalf("codec read\n%v\nproto read\n%v", fast, std)
			}
		})
	}
}

func TestCodecFallsBack(t *testing.T) {
	base, _ := proto.Marshal(req{path: "/", headers: map[string]string{"a": "b"}}.proto())
	unknownTop := protowire.AppendTag(append([]byte{}, base...), 99, protowire.VarintType)
	unknownTop = protowire.AppendVarint(unknownTop, 7)

	http := &authv3.AttributeContext_HttpRequest{Method: "GET"}
	hb, _ := proto.Marshal(http)
	hb = protowire.AppendTag(hb, 50, protowire.BytesType)
	hb = protowire.AppendString(hb, "unknown")
	var reqB []byte
	reqB = protowire.AppendTag(reqB, 2, protowire.BytesType)
	reqB = protowire.AppendBytes(reqB, hb)
	var attrB []byte
	attrB = protowire.AppendTag(attrB, 4, protowire.BytesType)
	attrB = protowire.AppendBytes(attrB, reqB)
	var nested []byte
	nested = protowire.AppendTag(nested, 1, protowire.BytesType)
	nested = protowire.AppendBytes(nested, attrB)

	var badUTF8 []byte
	{
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, "x")
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, []byte{0xff, 0xfe})
		var h []byte
		h = protowire.AppendTag(h, 3, protowire.BytesType)
		h = protowire.AppendBytes(h, entry)
		var rq []byte
		rq = protowire.AppendTag(rq, 2, protowire.BytesType)
		rq = protowire.AppendBytes(rq, h)
		var at []byte
		at = protowire.AppendTag(at, 4, protowire.BytesType)
		at = protowire.AppendBytes(at, rq)
		badUTF8 = protowire.AppendTag(badUTF8, 1, protowire.BytesType)
		badUTF8 = protowire.AppendBytes(badUTF8, at)
	}
	// The attributes sent twice: messages merge, the last method counts,
	// the header maps add up.
	wrapHTTP := func(h *authv3.AttributeContext_HttpRequest) []byte {
		hb, _ := proto.Marshal(h)
		var r, a, out []byte
		r = protowire.AppendTag(r, 2, protowire.BytesType)
		r = protowire.AppendBytes(r, hb)
		a = protowire.AppendTag(a, 4, protowire.BytesType)
		a = protowire.AppendBytes(a, r)
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		return protowire.AppendBytes(out, a)
	}
	twice := append(wrapHTTP(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/a", Headers: map[string]string{"a": "1", "k": "old"}}),
		wrapHTTP(&authv3.AttributeContext_HttpRequest{Method: "POST", Headers: map[string]string{"k": "v"}})...)

	peerAddr := func(a *corev3.Address) []byte {
		b, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Address: a}}})
		return b
	}
	namedPort := peerAddr(&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "https"}}}})
	pipe := peerAddr(&corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/s.sock"}}})
	// A socket address sent in two parts merges: the port of the second,
	// the address of the first.
	split := append(peerAddr(&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1"}}}),
		peerAddr(&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9}}}})...)

	for name, c := range map[string]struct {
		b       []byte
		direct  bool
		wantErr bool
	}{
		"a named port":               {namedPort, false, false},
		"a pipe address":             {pipe, false, false},
		"a socket address in parts":  {split, true, false},
		"unknown top-level field":    {unknownTop, false, false},
		"unknown nested field":       {nested, false, false},
		"invalid UTF-8":              {badUTF8, false, true},
		"truncated":                  {base[:len(base)-3], false, true},
		"fields sent twice (merged)": {twice, true, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := decodeCheckRequest(c.b, &authv3.CheckRequest{}); got != c.direct {
				t.Errorf("direct reader: %v, want %v", got, c.direct)
			}
			fast, std, fe, se := decodeBoth(t, c.b)
			if (fe != nil) != c.wantErr || (se != nil) != c.wantErr {
				t.Fatalf("errors: codec %v, proto %v", fe, se)
			}
			if fe == nil && !proto.Equal(fast, std) {
				t.Fatalf("codec read\n%v\nproto read\n%v", fast, std)
			}
		})
	}
}

func FuzzCodecCheckRequest(f *testing.F) {
	for _, r := range codecRequests(f) {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, std, fe, se := decodeBoth(t, b)
		if (fe == nil) != (se == nil) {
			t.Fatalf("codec error %v, proto error %v", fe, se)
		}
		if fe == nil && !proto.Equal(fast, std) {
			t.Fatalf("codec read\n%v\nproto read\n%v", fast, std)
		}
	})
}

// codecResponses are answers the server gives, and some it does not.
func codecResponses(t *testing.T) map[string]*authv3.CheckResponse {
	clock := newClock()
	s, _ := newTestServer(t, clock, authzPolicy(t))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), jwt.MapClaims{"role": "user", "groups": []string{"a", "b"}, "level": 2.5}))
	out := map[string]*authv3.CheckResponse{}
	for name, r := range map[string]req{
		"ok with identity":   {path: "/api", headers: bearer(tok)},
		"ok anonymous":       {path: "/public"},
		"401":                {path: "/api"},
		"403":                {path: "/admin", headers: bearer(tok)},
		"400":                {path: "/a%2Fb"},
		"invalid token":      {path: "/", headers: bearer("x.y.z")},
		"token in parameter": {path: "/?access_token=" + tok},
	} {
		resp, err := s.Check(context.Background(), r.proto())
		if err != nil {
			t.Fatal(err)
		}
		out[name] = resp
	}
	out["redirect"] = redirectResponse("https://idp/authorize?x=1", []string{"a=1; Path=/", "b=2; Path=/"})
	out["ok with every field we write"] = &authv3.CheckResponse{
		Status: &status.Status{Code: -3, Message: "m"},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:                 []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "k", Value: ""}, KeepEmptyValue: true, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}},
			HeadersToRemove:         []string{"a", ""},
			ResponseHeadersToAdd:    []*corev3.HeaderValueOption{addHeader("set-cookie", "x=y")},
			QueryParametersToRemove: []string{"q"},
		}},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"unregistered": structpb.NewBoolValue(true)}},
	}
	out["fallback: query parameters to set"] = &authv3.CheckResponse{
		Status:       okStatus,
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{QueryParametersToSet: []*corev3.QueryParameter{{Key: "a", Value: "b"}}}},
	}
	out["fallback: legacy append"] = &authv3.CheckResponse{
		Status: okStatus,
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "a", Value: "b"}, Append: wrapperspb.Bool(true)}},
		}},
	}
	out["fallback: error response"] = &authv3.CheckResponse{
		Status:       &status.Status{Code: 13},
		HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{Body: "x"}},
	}
	out["empty"] = &authv3.CheckResponse{}
	return out
}

func TestCodecWritesResponsesAsProtoDoes(t *testing.T) {
	for name, r := range codecResponses(t) {
		t.Run(name, func(t *testing.T) {
			bs, err := Codec{}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b := bs.Materialize()
			bs.Free()
			var got authv3.CheckResponse
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, r) {
				t.Fatalf("wrote\n%v\nfor\n%v", &got, r)
			}
			if std, _ := proto.Marshal(r); len(std) != len(b) {
				t.Errorf("%d bytes, proto.Marshal %d", len(b), len(std))
			}
			direct := plainResponse(r)
			if fallback := len(name) > 9 && name[:9] == "fallback:"; direct == fallback {
				t.Errorf("direct writer used: %v", direct)
			}
		})
	}
}

// TestGRPCWithCodec: the metadata and headers arrive over gRPC as the
// server made them, through grpc-go's server with GRPCServerOptions and
// through internal/unarygrpc's with UnaryCheck (what `sekisho authz` runs).
func TestGRPCWithCodec(t *testing.T) {
	for _, server := range []string{"grpc-go", "unarygrpc"} {
		t.Run(server, func(t *testing.T) { testGRPCWithCodec(t, server) })
	}
}

func testGRPCWithCodec(t *testing.T, server string) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	lis, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	if server == "grpc-go" {
		srv := grpc.NewServer(GRPCServerOptions()...)
		authv3.RegisterAuthorizationServer(srv, s)
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
	} else {
		srv := unarygrpc.NewServer(unarygrpc.Options{})
		srv.Handle(CheckMethod, s.UnaryCheck)
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	tok := sign(t, jwt.SigningMethodES256, ecKey, "ec1", claimsAt(clock.Now(), jwt.MapClaims{"groups": []string{"x", "y"}, "level": 7}))
	r := req{path: "/", headers: bearer(tok)}.proto()
	for i := 0; i < 3; i++ {
		want, _ := s.Check(context.Background(), r)
		got, err := client.Check(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("over gRPC\n%v\nin process\n%v", got, want)
		}
		if got.GetDynamicMetadata().AsMap()["claims"].(map[string]any)["sub"] != "alice" {
			t.Fatalf("metadata %v", got.GetDynamicMetadata())
		}
	}
	if resp, err := client.Check(context.Background(), req{policy: "nope", path: "/"}.proto()); err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("unknown policy over gRPC: %v %v", resp, err)
	}
}
