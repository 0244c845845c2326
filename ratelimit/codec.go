package ratelimit

import (
	"runtime"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GRPCServerOptions are the options to make the service's gRPC server with:
//
//   - Codec, which reads RateLimitRequest and writes RateLimitResponse
//     without protobuf reflection (anything else, and any message it does
//     not fully handle, goes through the standard codec: the wire format is
//     the same);
//   - stream workers for as many calls in flight as a busy proxy fleet
//     keeps open, so handler goroutines and their grown stacks are reused
//     rather than started per call (a call waiting for Redis holds its
//     worker).
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec{}),
		grpc.NumStreamWorkers(uint32(max(streamWorkers, 8*runtime.GOMAXPROCS(0)))),
		// Fixed flow-control windows: grpc-go's dynamic window (BDP
		// estimation) pings the peer on almost every call when calls are
		// small and spread out, each ping a write and a read more on both
		// sides. Calls are a few hundred bytes; 1 MiB never holds them up.
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
	}
}

// flowWindow is the HTTP/2 flow-control window of the service's streams and
// connections.
const flowWindow = 1 << 20

// streamWorkers is the least number of gRPC stream workers.
const streamWorkers = 128

// Codec is the gRPC codec of GRPCServerOptions (name "proto").
type Codec struct{}

var protoCodec = encoding.GetCodecV2("proto")

// Name is "proto": the codec serves the usual content type.
func (Codec) Name() string { return "proto" }

// Marshal writes a RateLimitResponse directly; other messages, and
// responses with fields the direct writer does not handle, go to the
// standard codec.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*rlsv3.RateLimitResponse)
	if !ok || !plainResponse(r) {
		return protoCodec.Marshal(v)
	}
	size := responseSize(r)
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = appendResponse((*buf)[:0], r)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal reads a RateLimitRequest directly; other messages, and requests
// with anything the direct reader does not handle exactly as proto.Unmarshal
// does, go to the standard codec.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rlsv3.RateLimitRequest)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalRequest(buf.ReadOnlyData(), r)
}

// unmarshalRequest is Unmarshal for a RateLimitRequest from bytes.
func unmarshalRequest(b []byte, r *rlsv3.RateLimitRequest) error {
	proto.Reset(r)
	if decodeRequest(b, r) {
		return nil
	}
	proto.Reset(r)
	return proto.Unmarshal(b, r)
}

// marshalResponse is Marshal for a RateLimitResponse, into a new slice.
func marshalResponse(r *rlsv3.RateLimitResponse) ([]byte, error) {
	if !plainResponse(r) {
		return proto.Marshal(r)
	}
	return appendResponse(make([]byte, 0, responseSize(r)), r), nil
}

// --- RateLimitRequest ---

// decodeRequest fills m from b. It reports false for anything it does not
// handle exactly as proto.Unmarshal would (unknown fields, other wire types,
// the descriptor's limit override, invalid UTF-8, truncation).
func decodeRequest(b []byte, m *rlsv3.RateLimitRequest) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			m.Domain, b = string(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			d := &ratelimitv3.RateLimitDescriptor{}
			if !decodeDescriptor(v, d) {
				return false
			}
			m.Descriptors, b = append(m.Descriptors, d), b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			m.HitsAddend, b = uint32(v), b[n:]
		default:
			return false
		}
	}
	return true
}

func decodeDescriptor(b []byte, d *ratelimitv3.RateLimitDescriptor) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			e := &ratelimitv3.RateLimitDescriptor_Entry{}
			if !decodeEntry(v, e) {
				return false
			}
			d.Entries, b = append(d.Entries, e), b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if d.HitsAddend == nil {
				d.HitsAddend = &wrapperspb.UInt64Value{}
			}
			// A message field seen again merges into the first.
			if !decodeUInt64Value(v, d.HitsAddend) {
				return false
			}
			b = b[n:]
		case num == 4 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			d.IsNegativeHits, b = v != 0, b[n:]
		default:
			return false
		}
	}
	return true
}

func decodeEntry(b []byte, e *ratelimitv3.RateLimitDescriptor_Entry) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 || !utf8.Valid(v) {
			return false
		}
		if num == 1 {
			e.Key = string(v)
		} else {
			e.Value = string(v)
		}
		b = b[n:]
	}
	return true
}

func decodeUInt64Value(b []byte, w *wrapperspb.UInt64Value) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.VarintType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return false
		}
		w.Value, b = v, b[n:]
	}
	return true
}

// --- RateLimitResponse ---

// plainResponse reports whether r holds only what appendResponse writes:
// the fields the server sets, valid UTF-8, no unknown fields, no nil list
// elements.
func plainResponse(r *rlsv3.RateLimitResponse) bool {
	if r == nil || len(r.RequestHeadersToAdd) != 0 || len(r.RawBody) != 0 || r.DynamicMetadata != nil || r.Quota != nil || hasUnknown(r) {
		return false
	}
	for _, s := range r.Statuses {
		if s == nil || s.Quota != nil || hasUnknown(s) {
			return false
		}
		if l := s.CurrentLimit; l != nil && (l.UnitMultiplier != nil || !utf8.ValidString(l.Name) || hasUnknown(l)) {
			return false
		}
		if d := s.DurationUntilReset; d != nil && hasUnknown(d) {
			return false
		}
	}
	for _, h := range r.ResponseHeadersToAdd {
		if h == nil || len(h.RawValue) != 0 || !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) || hasUnknown(h) {
			return false
		}
	}
	return true
}

func hasUnknown(m protoreflect.ProtoMessage) bool {
	return len(m.ProtoReflect().GetUnknown()) != 0
}

// The sizes and writers below follow proto.Marshal: fields in number order,
// zero scalars and empty strings left out, set messages written even when
// empty. Every field number is below 16, so every tag is one byte.

func varintField(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func stringField(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func messageField(n int) int { return 1 + protowire.SizeBytes(n) }

func limitSize(l *rlsv3.RateLimitResponse_RateLimit) int {
	return varintField(uint64(l.RequestsPerUnit)) + varintField(uint64(int64(l.Unit))) + stringField(l.Name)
}

func durationSize(s, n int64) int { return varintField(uint64(s)) + varintField(uint64(n)) }

func statusSize(s *rlsv3.RateLimitResponse_DescriptorStatus) int {
	n := varintField(uint64(int64(s.Code)))
	if s.CurrentLimit != nil {
		n += messageField(limitSize(s.CurrentLimit))
	}
	n += varintField(uint64(s.LimitRemaining))
	if d := s.DurationUntilReset; d != nil {
		n += messageField(durationSize(d.Seconds, int64(d.Nanos)))
	}
	return n
}

func headerSize(h *corev3.HeaderValue) int { return stringField(h.Key) + stringField(h.Value) }

func responseSize(r *rlsv3.RateLimitResponse) int {
	n := varintField(uint64(int64(r.OverallCode)))
	for _, s := range r.Statuses {
		n += messageField(statusSize(s))
	}
	for _, h := range r.ResponseHeadersToAdd {
		n += messageField(headerSize(h))
	}
	return n
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendMessageHeader(b []byte, num protowire.Number, size int) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.BytesType), uint64(size))
}

func appendResponse(b []byte, r *rlsv3.RateLimitResponse) []byte {
	b = appendVarintField(b, 1, uint64(int64(r.OverallCode)))
	for _, s := range r.Statuses {
		b = appendMessageHeader(b, 2, statusSize(s))
		b = appendVarintField(b, 1, uint64(int64(s.Code)))
		if l := s.CurrentLimit; l != nil {
			b = appendMessageHeader(b, 2, limitSize(l))
			b = appendVarintField(b, 1, uint64(l.RequestsPerUnit))
			b = appendVarintField(b, 2, uint64(int64(l.Unit)))
			b = appendStringField(b, 3, l.Name)
		}
		b = appendVarintField(b, 3, uint64(s.LimitRemaining))
		if d := s.DurationUntilReset; d != nil {
			b = appendMessageHeader(b, 4, durationSize(d.Seconds, int64(d.Nanos)))
			b = appendVarintField(b, 1, uint64(d.Seconds))
			b = appendVarintField(b, 2, uint64(int64(d.Nanos)))
		}
	}
	for _, h := range r.ResponseHeadersToAdd {
		b = appendMessageHeader(b, 3, headerSize(h))
		b = appendStringField(b, 1, h.Key)
		b = appendStringField(b, 2, h.Value)
	}
	return b
}
