package auth

import (
	"runtime"
	"sync"
	"unicode/utf8"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// GRPCServerOptions are the options to make the service's gRPC server with:
//
//   - a codec that reads CheckRequest and writes CheckResponse without
//     protobuf reflection, and writes the dynamic metadata of cached
//     identities from bytes encoded once (every other message, and any
//     CheckRequest or CheckResponse it does not fully understand, goes
//     through the standard protobuf codec, so the wire format is the same);
//   - one stream worker per CPU, so handler goroutines (and their grown
//     stacks) are reused.
//
// On a CheckRequest as the proxy sends it, this takes about a quarter of the
// server's CPU per decision away (test/bench/authz).
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec{}),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		// Fixed flow-control windows: grpc-go's dynamic window (BDP
		// estimation) pings the peer on almost every request when calls
		// are small and spread out, each ping a write and a read more on
		// both sides. Checks are a few KiB; a fixed 1 MiB window never
		// holds them up.
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
	}
}

// flowWindow is the HTTP/2 flow-control window of the service's streams and
// connections.
const flowWindow = 1 << 20

// Codec is the gRPC codec of GRPCServerOptions (name "proto").
type Codec struct{}

var stdCodec = encoding.GetCodecV2("proto")

// Name is "proto": the codec is used for the usual content type.
func (Codec) Name() string { return "proto" }

// Marshal writes a CheckResponse directly; other messages go to the
// standard codec.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*authv3.CheckResponse)
	if !ok {
		return stdCodec.Marshal(v)
	}
	md, size, direct := directResponse(r)
	if !direct {
		return stdCodec.Marshal(v)
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = appendResponse((*buf)[:0], r, md)
	if len(*buf) != size {
		pool.Put(buf)
		return stdCodec.Marshal(v)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// directResponse says whether the direct writer handles r and, if so, the
// wire form of its dynamic metadata and the response's encoded size.
func directResponse(r *authv3.CheckResponse) (md []byte, size int, ok bool) {
	if !plainResponse(r) {
		return nil, 0, false
	}
	if m := r.GetDynamicMetadata(); m != nil {
		md = metadataWire(m)
	}
	return md, responseSize(r, md), true
}

// marshalCheckResponse is Marshal for a CheckResponse, into a new slice.
func marshalCheckResponse(r *authv3.CheckResponse) ([]byte, error) {
	md, size, ok := directResponse(r)
	if !ok {
		return proto.Marshal(r)
	}
	b := appendResponse(make([]byte, 0, size), r, md)
	if len(b) != size {
		return proto.Marshal(r)
	}
	return b, nil
}

// unmarshalCheckRequest is Unmarshal for a CheckRequest from bytes.
func unmarshalCheckRequest(b []byte, r *authv3.CheckRequest) error {
	proto.Reset(r)
	if decodeCheckRequest(b, r) {
		return nil
	}
	// proto.Unmarshal starts again from an empty message.
	return proto.Unmarshal(b, r)
}

// Unmarshal reads a CheckRequest directly; other messages, and requests
// with fields or encodings the direct reader does not handle, go to the
// standard codec.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*authv3.CheckRequest)
	if !ok {
		return stdCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalCheckRequest(buf.ReadOnlyData(), r)
}

// --- CheckRequest ---

// decodeCheckRequest fills m from b. It reports false for anything it does
// not handle exactly as proto.Unmarshal would (unknown fields, unexpected
// wire types, invalid UTF-8): the caller then uses proto.Unmarshal.
func decodeCheckRequest(b []byte, m *authv3.CheckRequest) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != 1 || typ != protowire.BytesType {
			return false
		}
		if m.Attributes == nil {
			m.Attributes = &authv3.AttributeContext{}
		}
		return decodeAttributes(v, m.Attributes)
	})
}

func decodeAttributes(b []byte, m *authv3.AttributeContext) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if typ != protowire.BytesType {
			return false
		}
		switch num {
		case 1:
			if m.Source == nil {
				m.Source = &authv3.AttributeContext_Peer{}
			}
			return decodePeer(v, m.Source)
		case 2:
			if m.Destination == nil {
				m.Destination = &authv3.AttributeContext_Peer{}
			}
			return decodePeer(v, m.Destination)
		case 4:
			if m.Request == nil {
				m.Request = &authv3.AttributeContext_Request{}
			}
			return decodeRequestAttrs(v, m.Request)
		case 10:
			if m.ContextExtensions == nil {
				m.ContextExtensions = map[string]string{}
			}
			return decodeMapEntry(v, m.ContextExtensions)
		case 11:
			if m.MetadataContext == nil {
				m.MetadataContext = &corev3.Metadata{}
			}
			return mergeMessage(v, m.MetadataContext)
		case 12:
			if m.TlsSession == nil {
				m.TlsSession = &authv3.AttributeContext_TLSSession{}
			}
			return mergeMessage(v, m.TlsSession)
		case 13:
			if m.RouteMetadataContext == nil {
				m.RouteMetadataContext = &corev3.Metadata{}
			}
			return mergeMessage(v, m.RouteMetadataContext)
		}
		return false
	})
}

// decodePeer reads a peer: its socket address (the proxy sends the client's
// and its own), service, labels, principal and certificate.
func decodePeer(b []byte, m *authv3.AttributeContext_Peer) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if typ != protowire.BytesType {
			return false
		}
		switch num {
		case 1:
			if m.Address == nil {
				m.Address = &corev3.Address{}
			}
			return decodeAddress(v, m.Address)
		case 3:
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			return decodeMapEntry(v, m.Labels)
		case 2, 4, 5:
			if !utf8.Valid(v) {
				return false
			}
			switch num {
			case 2:
				m.Service = string(v)
			case 4:
				m.Principal = string(v)
			default:
				m.Certificate = string(v)
			}
			return true
		}
		return false
	})
}

// decodeAddress reads an address that is a socket address; any other kind
// is left to proto.Unmarshal.
func decodeAddress(b []byte, m *corev3.Address) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != 1 || typ != protowire.BytesType {
			return false
		}
		sa, ok := m.Address.(*corev3.Address_SocketAddress)
		if !ok || sa.SocketAddress == nil {
			sa = &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{}}
			m.Address = sa
		}
		return decodeSocketAddress(v, sa.SocketAddress)
	})
}

// decodeSocketAddress reads the protocol, the address and a numeric port;
// a named port, a resolver or ipv4_compat are left to proto.Unmarshal.
func decodeSocketAddress(b []byte, m *corev3.SocketAddress) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		switch {
		case num == 2 && typ == protowire.BytesType:
			if !utf8.Valid(v) {
				return false
			}
			m.Address = string(v)
			return true
		case (num == 1 || num == 3) && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return false
			}
			if num == 1 {
				m.Protocol = corev3.SocketAddress_Protocol(int32(x))
			} else {
				m.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(x)}
			}
			return true
		}
		return false
	})
}

func decodeRequestAttrs(b []byte, m *authv3.AttributeContext_Request) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if typ != protowire.BytesType {
			return false
		}
		switch num {
		case 1:
			if m.Time == nil {
				m.Time = &timestamppb.Timestamp{}
			}
			return mergeMessage(v, m.Time)
		case 2:
			if m.Http == nil {
				m.Http = &authv3.AttributeContext_HttpRequest{}
			}
			return decodeHTTPRequest(v, m.Http)
		}
		return false
	})
}

func decodeHTTPRequest(b []byte, m *authv3.AttributeContext_HttpRequest) bool {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num == 9 {
			if typ != protowire.VarintType {
				return false
			}
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return false
			}
			m.Size = int64(x)
			return true
		}
		if typ != protowire.BytesType {
			return false
		}
		var dst *string
		switch num {
		case 1:
			dst = &m.Id
		case 2:
			dst = &m.Method
		case 3:
			if m.Headers == nil {
				m.Headers = make(map[string]string, 16)
			}
			return decodeMapEntry(v, m.Headers)
		case 4:
			dst = &m.Path
		case 5:
			dst = &m.Host
		case 6:
			dst = &m.Scheme
		case 7:
			dst = &m.Query
		case 8:
			dst = &m.Fragment
		case 10:
			dst = &m.Protocol
		case 11:
			dst = &m.Body
		case 12:
			m.RawBody = append([]byte{}, v...)
			return true
		case 13:
			if m.HeaderMap == nil {
				m.HeaderMap = &corev3.HeaderMap{}
			}
			return mergeMessage(v, m.HeaderMap)
		default:
			return false
		}
		if !utf8.Valid(v) {
			return false
		}
		*dst = string(v)
		return true
	})
}

// decodeMapEntry reads one map<string, string> entry into m.
func decodeMapEntry(b []byte, m map[string]string) bool {
	var k, val []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return false
		}
		v, l := protowire.ConsumeBytes(b[n:])
		if l < 0 {
			return false
		}
		b = b[n+l:]
		if num == 1 {
			k = v
		} else {
			val = v
		}
	}
	if !utf8.Valid(k) || !utf8.Valid(val) {
		return false
	}
	m[internHeader(k)] = string(val)
	return true
}

// commonHeaders are the header names the proxy sends on most requests; the
// reader uses these strings instead of allocating each name again.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		":authority", ":method", ":path", ":scheme", "accept", "accept-encoding", "accept-language",
		"authorization", "cache-control", "connection", "content-length", "content-type", "cookie",
		"host", "origin", "pragma", "referer", "te", "user-agent", "x-forwarded-for", "x-forwarded-host",
		"x-forwarded-proto", "x-real-ip", "x-request-id", "x-requested-with", "sec-fetch-dest",
		"sec-fetch-mode", "sec-fetch-site", "sec-fetch-user", "sec-ch-ua", "sec-ch-ua-mobile",
		"sec-ch-ua-platform", "upgrade-insecure-requests", "if-none-match", "if-modified-since",
		"traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-envoy-expected-rq-timeout-ms",
		PolicyKey,
	} {
		m[h] = h
	}
	return m
}()

func internHeader(b []byte) string {
	if s, ok := commonHeaders[string(b)]; ok {
		return s
	}
	return string(b)
}

// mergeMessage merges an embedded message the direct reader does not
// handle itself (as proto.Unmarshal merges repeated occurrences).
func mergeMessage(b []byte, m proto.Message) bool {
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(b, m) == nil
}

// eachField calls f with each field of a message: its number, wire type
// and value (the payload of length-delimited fields, the varint bytes of
// varints). It stops at the first false.
func eachField(b []byte, f func(protowire.Number, protowire.Type, []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			payload, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			v, b = payload, b[m:]
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			v, b = b[:m], b[m:]
		default:
			return false
		}
		if !f(num, typ, v) {
			return false
		}
	}
	return true
}

// --- CheckResponse ---

// plainResponse reports whether the direct writer covers every field r
// has set.
func plainResponse(r *authv3.CheckResponse) bool {
	if len(r.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	if st := r.GetStatus(); st != nil && (len(st.GetDetails()) > 0 || len(st.ProtoReflect().GetUnknown()) > 0) {
		return false
	}
	switch h := r.GetHttpResponse().(type) {
	case nil:
	case *authv3.CheckResponse_OkResponse:
		ok := h.OkResponse
		if ok == nil {
			return false
		}
		//lint:ignore SA1019 a response that sets it is written by the standard codec
		if ok.GetDynamicMetadata() != nil || len(ok.GetQueryParametersToSet()) > 0 || len(ok.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
		return plainHeaders(ok.GetHeaders()) && plainHeaders(ok.GetResponseHeadersToAdd())
	case *authv3.CheckResponse_DeniedResponse:
		d := h.DeniedResponse
		if d == nil || len(d.ProtoReflect().GetUnknown()) > 0 || (d.GetStatus() != nil && len(d.GetStatus().ProtoReflect().GetUnknown()) > 0) {
			return false
		}
		return plainHeaders(d.GetHeaders())
	default:
		return false
	}
	return true
}

func plainHeaders(hs []*corev3.HeaderValueOption) bool {
	for _, h := range hs {
		//lint:ignore SA1019 a header that sets it is written by the standard codec
		if h == nil || h.GetAppend() != nil || h.GetHeader() == nil || len(h.GetHeader().GetRawValue()) > 0 ||
			len(h.ProtoReflect().GetUnknown()) > 0 || len(h.GetHeader().ProtoReflect().GetUnknown()) > 0 {
			return false
		}
	}
	return true
}

func sizeTagged(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return sizeTagged(num, len(s))
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMessageHeader(b []byte, num protowire.Number, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}

func headerValueSize(h *corev3.HeaderValue) int {
	return sizeString(1, h.GetKey()) + sizeString(2, h.GetValue())
}

func headerOptionSize(o *corev3.HeaderValueOption) int {
	n := sizeTagged(1, headerValueSize(o.GetHeader()))
	n += sizeVarint(3, uint64(int64(o.GetAppendAction())))
	if o.GetKeepEmptyValue() {
		n += protowire.SizeTag(4) + 1
	}
	return n
}

func appendHeaderOption(b []byte, num protowire.Number, o *corev3.HeaderValueOption) []byte {
	b = appendMessageHeader(b, num, headerOptionSize(o))
	h := o.GetHeader()
	b = appendMessageHeader(b, 1, headerValueSize(h))
	b = appendString(b, 1, h.GetKey())
	b = appendString(b, 2, h.GetValue())
	b = appendVarintField(b, 3, uint64(int64(o.GetAppendAction())))
	if o.GetKeepEmptyValue() {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

func headerOptionsSize(num protowire.Number, hs []*corev3.HeaderValueOption) int {
	n := 0
	for _, h := range hs {
		n += sizeTagged(num, headerOptionSize(h))
	}
	return n
}

func stringsSize(num protowire.Number, ss []string) int {
	n := 0
	for _, s := range ss {
		n += sizeTagged(num, len(s))
	}
	return n
}

func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

func okSize(ok *authv3.OkHttpResponse) int {
	return headerOptionsSize(2, ok.GetHeaders()) + stringsSize(5, ok.GetHeadersToRemove()) +
		headerOptionsSize(6, ok.GetResponseHeadersToAdd()) + stringsSize(8, ok.GetQueryParametersToRemove())
}

func deniedSize(d *authv3.DeniedHttpResponse) int {
	n := 0
	if d.GetStatus() != nil {
		n += sizeTagged(1, sizeVarint(1, uint64(int64(d.GetStatus().GetCode()))))
	}
	return n + headerOptionsSize(2, d.GetHeaders()) + sizeString(3, d.GetBody())
}

func statusSize(r *authv3.CheckResponse) int {
	st := r.GetStatus()
	return sizeVarint(1, uint64(int64(st.GetCode()))) + sizeString(2, st.GetMessage())
}

func responseSize(r *authv3.CheckResponse, md []byte) int {
	n := 0
	if r.GetStatus() != nil {
		n += sizeTagged(1, statusSize(r))
	}
	switch h := r.GetHttpResponse().(type) {
	case *authv3.CheckResponse_DeniedResponse:
		n += sizeTagged(2, deniedSize(h.DeniedResponse))
	case *authv3.CheckResponse_OkResponse:
		n += sizeTagged(3, okSize(h.OkResponse))
	}
	if r.GetDynamicMetadata() != nil {
		n += sizeTagged(4, len(md))
	}
	return n
}

// appendResponse writes r in field order, as proto.Marshal does.
func appendResponse(b []byte, r *authv3.CheckResponse, md []byte) []byte {
	if st := r.GetStatus(); st != nil {
		b = appendMessageHeader(b, 1, statusSize(r))
		b = appendVarintField(b, 1, uint64(int64(st.GetCode())))
		b = appendString(b, 2, st.GetMessage())
	}
	switch h := r.GetHttpResponse().(type) {
	case *authv3.CheckResponse_DeniedResponse:
		d := h.DeniedResponse
		b = appendMessageHeader(b, 2, deniedSize(d))
		if d.GetStatus() != nil {
			c := uint64(int64(d.GetStatus().GetCode()))
			b = appendMessageHeader(b, 1, sizeVarint(1, c))
			b = appendVarintField(b, 1, c)
		}
		for _, o := range d.GetHeaders() {
			b = appendHeaderOption(b, 2, o)
		}
		b = appendString(b, 3, d.GetBody())
	case *authv3.CheckResponse_OkResponse:
		ok := h.OkResponse
		b = appendMessageHeader(b, 3, okSize(ok))
		for _, o := range ok.GetHeaders() {
			b = appendHeaderOption(b, 2, o)
		}
		b = appendStrings(b, 5, ok.GetHeadersToRemove())
		for _, o := range ok.GetResponseHeadersToAdd() {
			b = appendHeaderOption(b, 6, o)
		}
		b = appendStrings(b, 8, ok.GetQueryParametersToRemove())
	}
	if r.GetDynamicMetadata() != nil {
		b = appendMessageHeader(b, 4, len(md))
		b = append(b, md...)
	}
	return b
}

// metadataWires holds the encoding of the metadata of cached identities,
// made once when the identity is made. The key is a weak pointer, so an
// entry goes when its identity does, and an entry can never be found for
// another Struct allocated at the same address later.
var metadataWires sync.Map // weak.Pointer[structpb.Struct] → []byte

// keepMetadataWire encodes an identity's metadata for the codec. The Struct
// must not be modified afterwards.
func keepMetadataWire(s *structpb.Struct) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return
	}
	wp := weak.Make(s)
	metadataWires.Store(wp, b)
	runtime.AddCleanup(s, func(wp weak.Pointer[structpb.Struct]) { metadataWires.Delete(wp) }, wp)
}

// metadataWire is the encoding of a Struct: the one kept for it, or a new
// one.
func metadataWire(s *structpb.Struct) []byte {
	if b, ok := metadataWires.Load(weak.Make(s)); ok {
		return b.([]byte)
	}
	b, _ := proto.Marshal(s)
	return b
}
