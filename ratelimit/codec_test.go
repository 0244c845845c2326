package ratelimit

import (
	"bytes"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// codecResponses are responses as the server writes them, and some it
// never writes, which the codec hands to the standard one.
func codecResponses(t *testing.T) []*rlsv3.RateLimitResponse {
	s := newTestServer(t, NewMemoryStore(MemoryOptions{}), newFakeClock(1500*time.Millisecond), Config{Domain: domain, Rules: []Rule{
		{ID: "a", Requests: 1, Unit: "Minute"},
		{ID: "ünïcode", Requests: 300, Unit: "Second", Algorithm: "TokenBucket", Burst: 1000},
	}})
	var out []*rlsv3.RateLimitResponse
	for range 2 {
		out = append(out, mustDecide(t, s, request(domain, desc("a", "u", "x"), desc("nope"), desc("ünïcode"))))
	}
	out = append(out,
		mustDecide(t, s, request("other", desc("a"))),
		mustDecide(t, s, request(domain)),
		&rlsv3.RateLimitResponse{},
		&rlsv3.RateLimitResponse{Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{
			CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{},
			DurationUntilReset: &durationpb.Duration{Seconds: -3, Nanos: -5},
		}, {}}},
		&rlsv3.RateLimitResponse{ResponseHeadersToAdd: []*corev3.HeaderValue{{}, {Key: "k"}}},
		// The standard codec's.
		&rlsv3.RateLimitResponse{RawBody: []byte("x")},
		&rlsv3.RateLimitResponse{RequestHeadersToAdd: []*corev3.HeaderValue{{Key: "k", Value: "v"}}},
		&rlsv3.RateLimitResponse{DynamicMetadata: &structpb.Struct{}},
		&rlsv3.RateLimitResponse{Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{UnitMultiplier: wrapperspb.UInt32(2)}}}},
		&rlsv3.RateLimitResponse{ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "k", RawValue: []byte("v")}}},
	)
	withUnknown := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	return append(out, withUnknown)
}

func TestCodecWritesWhatProtoWrites(t *testing.T) {
	for i, r := range codecResponses(t) {
		got, err := Codec{}.Marshal(r)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Errorf("response %d (%v):\n got %x\nwant %x", i, r, b, want)
		}
		got.Free()
	}
	// Invalid UTF-8 fails as it does in the standard codec.
	if _, err := (Codec{}).Marshal(&rlsv3.RateLimitResponse{ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "\xff"}}}); err == nil {
		t.Error("a header with invalid UTF-8 was written")
	}
}

// codecRequests are encoded requests: as the proxy sends them, and
// anything else proto.Unmarshal accepts or refuses.
func codecRequests(t testing.TB) [][]byte {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(tag(b, num, protowire.BytesType), m)
	}
	entry := str(str(nil, 1, "k"), 2, "v")
	out := [][]byte{
		marshal(request(domain, desc("api", "x-user", "alice", "remote_address", "10.1.2.3"), withHits(desc("b"), 7))),
		marshal(&rlsv3.RateLimitRequest{Domain: domain, HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{{IsNegativeHits: true}, {}}}),
		marshal(&rlsv3.RateLimitRequest{}),
		marshal(&rlsv3.RateLimitRequest{Descriptors: []*ratelimitv3.RateLimitDescriptor{{Limit: &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 5, Unit: typev3.RateLimitUnit_MINUTE}}}}),
		nil,
		// Repeated scalars: the last wins; a message seen twice merges.
		str(str(nil, 1, "first"), 1, "second"),
		msg(nil, 2, msg(msg(nil, 3, protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 4)), 3, nil)),
		msg(nil, 2, msg(nil, 1, str(str(entry, 1, "k2"), 2, "v2"))),
		msg(nil, 2, protowire.AppendVarint(tag(nil, 4, protowire.VarintType), 2)), // a bool as 2
		// Unknown fields at each level.
		protowire.AppendVarint(tag(nil, 9, protowire.VarintType), 1),
		msg(nil, 2, protowire.AppendVarint(tag(nil, 9, protowire.VarintType), 1)),
		msg(nil, 2, msg(nil, 1, protowire.AppendVarint(tag(entry, 9, protowire.VarintType), 1))),
		msg(nil, 2, msg(nil, 3, protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1))),
		// Wrong wire types.
		protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1),
		str(nil, 3, "x"),
		msg(nil, 2, protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1)),
		// Invalid UTF-8, truncation, a varint too long.
		str(nil, 1, "\xff"),
		msg(nil, 2, msg(nil, 1, str(nil, 2, "\xc3"))),
		str(nil, 1, "abc")[:3],
		msg(nil, 2, msg(nil, 1, entry))[:5],
		{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0x18},
		{0x00},
	}
	return out
}

// checkUnmarshal decodes b with the codec and with proto.Unmarshal and
// reports any difference.
func checkUnmarshal(t *testing.T, b []byte) {
	t.Helper()
	var got, want rlsv3.RateLimitRequest
	got.Domain = "left over from before"
	gotErr := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got)
	wantErr := proto.Unmarshal(b, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%x: codec error %v, proto error %v", b, gotErr, wantErr)
	}
	if wantErr == nil && !proto.Equal(&got, &want) {
		t.Fatalf("%x: codec read %v, proto %v", b, &got, &want)
	}
}

func TestCodecReadsWhatProtoReads(t *testing.T) {
	for _, b := range codecRequests(t) {
		checkUnmarshal(t, b)
	}
	// Messages other than the request go to the standard codec.
	var d durationpb.Duration
	b, _ := proto.Marshal(durationpb.New(3 * time.Second))
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &d); err != nil || d.Seconds != 3 {
		t.Errorf("a Duration: %v %v", &d, err)
	}
}

func FuzzCodecUnmarshal(f *testing.F) {
	for _, b := range codecRequests(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkUnmarshal(t, b) })
}
