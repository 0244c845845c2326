// Package descriptor compiles the rate_limits of Envoy's rate limit filters
// (ratelimit's RateLimitPerRoute, local_ratelimit's LocalRateLimit) and
// makes a request's descriptors from them, as Envoy's route rate limit
// actions do.
package descriptor

import (
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/router"
)

// MaxHitsAddend is the largest hits_addend.number Envoy takes.
const MaxHitsAddend = 1000000000

// Fields are the fields of rate_limits the actions honour.
var Fields = []string{
	"envoy.config.route.v3.RateLimit.actions",
	"envoy.config.route.v3.RateLimit.hits_addend",
	"envoy.config.route.v3.RateLimit.HitsAddend.number",
	"envoy.config.route.v3.RateLimit.Action.generic_key",
	"envoy.config.route.v3.RateLimit.Action.request_headers",
	"envoy.config.route.v3.RateLimit.Action.header_value_match",
	"envoy.config.route.v3.RateLimit.Action.remote_address_match",
	"envoy.config.route.v3.RateLimit.Action.metadata",
	"envoy.config.route.v3.RateLimit.Action.GenericKey.descriptor_key",
	"envoy.config.route.v3.RateLimit.Action.GenericKey.descriptor_value",
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders.header_name",
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders.descriptor_key",
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.descriptor_key",
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.descriptor_value",
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.expect_match",
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.headers",
	"envoy.config.route.v3.RateLimit.Action.RemoteAddressMatch.descriptor_key",
	"envoy.config.route.v3.RateLimit.Action.RemoteAddressMatch.descriptor_value",
	"envoy.config.route.v3.RateLimit.Action.RemoteAddressMatch.address_matcher",
	"envoy.type.matcher.v3.AddressMatcher.ranges",
	"envoy.type.matcher.v3.AddressMatcher.invert_match",
	"xds.core.v3.CidrRange.address_prefix",
	"xds.core.v3.CidrRange.prefix_len",
	"envoy.config.route.v3.RateLimit.Action.MetaData.descriptor_key",
	"envoy.config.route.v3.RateLimit.Action.MetaData.metadata_key",
	"envoy.config.route.v3.RateLimit.Action.MetaData.source",
	"envoy.type.metadata.v3.MetadataKey.key",
	"envoy.type.metadata.v3.MetadataKey.path",
	"envoy.type.metadata.v3.MetadataKey.PathSegment.key",
}

// Policy is one RateLimit: its actions make one descriptor, or
// none when one of them finds nothing.
type Policy struct {
	actions []rlAction
	hits    *wrapperspb.UInt64Value // hits_addend.number; nil: none
}

// HitsAddend is the policy's hits_addend.number (nil: none).
func (p *Policy) HitsAddend() *wrapperspb.UInt64Value { return p.hits }

type actionKind uint8

const (
	actGenericKey actionKind = iota
	actRequestHeader
	actHeaderValueMatch
	actRemoteAddressMatch
	actMetadata
)

// rlAction is a compiled RateLimit.Action.
type rlAction struct {
	kind  actionKind
	key   string // descriptor key
	value string // descriptor value (generic_key, header_value_match, remote_address_match)
	// request_headers: the header (canonical), or a pseudo-header.
	header string
	// header_value_match.
	headers []*router.HeaderMatch
	expect  bool
	// remote_address_match.
	ranges   []netip.Prefix
	invert   bool
	clientIP bool // the value is the client's address
	// metadata.
	namespace string
	path      []string
}

// Entry is one entry of a descriptor.
type Entry struct{ Key, Value string }

// downstreamAddressFormat is the one substitution a remote_address_match
// descriptor value may hold.
const downstreamAddressFormat = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"

// Compile compiles a rate_limits list; hits: hits_addend is
// allowed.
func Compile(rls []*routev3.RateLimit, hits bool) ([]*Policy, error) {
	var out []*Policy
	for i, rl := range rls {
		p := &Policy{}
		if ha := rl.GetHitsAddend(); ha != nil {
			if !hits {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend: not supported by this filter", i)
			}
			if ha.GetNumber() == nil {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend: number is required", i)
			}
			if ha.GetNumber().GetValue() > MaxHitsAddend {
				return nil, fmt.Errorf("rate_limits[%d].hits_addend.number: %d is over %d", i, ha.GetNumber().GetValue(), MaxHitsAddend)
			}
			p.hits = wrapperspb.UInt64(ha.GetNumber().GetValue())
		}
		if len(rl.GetActions()) == 0 {
			return nil, fmt.Errorf("rate_limits[%d].actions: at least one action is required", i)
		}
		for j, a := range rl.GetActions() {
			act, err := compileAction(a)
			if err != nil {
				return nil, fmt.Errorf("rate_limits[%d].actions[%d].%w", i, j, err)
			}
			p.actions = append(p.actions, act)
		}
		out = append(out, p)
	}
	return out, nil
}

// compileAction compiles one action; an error starts with the action's
// field name.
func compileAction(a *routev3.RateLimit_Action) (rlAction, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_GenericKey_:
		g := s.GenericKey
		act := rlAction{kind: actGenericKey, key: g.GetDescriptorKey(), value: g.GetDescriptorValue()}
		if act.key == "" {
			act.key = "generic_key"
		}
		if act.value == "" {
			return act, errors.New("generic_key.descriptor_value: required")
		}
		return act, nil
	case *routev3.RateLimit_Action_RequestHeaders_:
		h := s.RequestHeaders
		act := rlAction{kind: actRequestHeader, key: h.GetDescriptorKey()}
		if act.key == "" {
			return act, errors.New("request_headers.descriptor_key: required")
		}
		switch n := h.GetHeaderName(); {
		case n == "":
			return act, errors.New("request_headers.header_name: required")
		case strings.HasPrefix(n, ":"):
			switch n {
			case ":method", ":path", ":authority", ":scheme":
				act.header = n
			default:
				return act, fmt.Errorf("request_headers.header_name: pseudo-header %q is not supported", n)
			}
		default:
			act.header = textproto.CanonicalMIMEHeaderKey(n)
		}
		return act, nil
	case *routev3.RateLimit_Action_HeaderValueMatch_:
		h := s.HeaderValueMatch
		act := rlAction{kind: actHeaderValueMatch, key: h.GetDescriptorKey(), value: h.GetDescriptorValue(), expect: true}
		if act.key == "" {
			act.key = "header_match"
		}
		if act.value == "" {
			return act, errors.New("header_value_match.descriptor_value: required")
		}
		if h.ExpectMatch != nil {
			act.expect = h.GetExpectMatch().GetValue()
		}
		if len(h.GetHeaders()) == 0 {
			return act, errors.New("header_value_match.headers: at least one matcher is required")
		}
		for k, hm := range h.GetHeaders() {
			m, err := router.CompileHeaderMatch(hm)
			if err != nil {
				return act, fmt.Errorf("header_value_match.headers[%d]%w", k, err)
			}
			act.headers = append(act.headers, m)
		}
		return act, nil
	case *routev3.RateLimit_Action_RemoteAddressMatch_:
		r := s.RemoteAddressMatch
		act := rlAction{kind: actRemoteAddressMatch, key: r.GetDescriptorKey(), value: r.GetDescriptorValue()}
		if act.key == "" {
			act.key = "remote_address_match"
		}
		switch {
		case act.value == downstreamAddressFormat:
			act.clientIP = true
		case act.value == "":
			return act, errors.New("remote_address_match.descriptor_value: required")
		case strings.Contains(act.value, "%"):
			return act, fmt.Errorf("remote_address_match.descriptor_value: %q: the only substitution supported is the whole value %s", act.value, downstreamAddressFormat)
		}
		am := r.GetAddressMatcher()
		if am == nil {
			return act, errors.New("remote_address_match.address_matcher: required")
		}
		act.invert = am.GetInvertMatch()
		for k, c := range am.GetRanges() {
			ip, err := netip.ParseAddr(c.GetAddressPrefix())
			if err != nil || ip.Zone() != "" {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d].address_prefix: %q is not an IP address", k, c.GetAddressPrefix())
			}
			bits := 0
			if c.GetPrefixLen() != nil {
				bits = int(c.GetPrefixLen().GetValue())
			}
			if bits > ip.BitLen() {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d].prefix_len: %d is longer than the address (%d bits)", k, bits, ip.BitLen())
			}
			pfx, err := ip.Prefix(bits)
			if err != nil {
				return act, fmt.Errorf("remote_address_match.address_matcher.ranges[%d]: %w", k, err)
			}
			act.ranges = append(act.ranges, pfx)
		}
		if len(act.ranges) == 0 {
			return act, errors.New("remote_address_match.address_matcher.ranges: at least one range is required")
		}
		return act, nil
	case *routev3.RateLimit_Action_Metadata:
		m := s.Metadata
		act := rlAction{kind: actMetadata, key: m.GetDescriptorKey()}
		if act.key == "" {
			return act, errors.New("metadata.descriptor_key: required")
		}
		if m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			return act, fmt.Errorf("metadata.source: %v is not supported (DYNAMIC only)", m.GetSource())
		}
		mk := m.GetMetadataKey()
		if mk.GetKey() == "" {
			return act, errors.New("metadata.metadata_key.key: required")
		}
		if len(mk.GetPath()) == 0 {
			return act, errors.New("metadata.metadata_key.path: at least one segment is required")
		}
		act.namespace = mk.GetKey()
		for k, seg := range mk.GetPath() {
			if seg.GetKey() == "" {
				return act, fmt.Errorf("metadata.metadata_key.path[%d].key: required", k)
			}
			act.path = append(act.path, seg.GetKey())
		}
		return act, nil
	case nil:
		return rlAction{}, errors.New("action_specifier: required")
	default:
		return rlAction{}, fmt.Errorf("action_specifier: %T is not supported", s)
	}
}

// NewInput returns what the actions read of rq.
func NewInput(rq *ext.Request) *Input { return &Input{rq: rq} }

// Input is what rate limit actions read of a request.
type Input struct {
	rq     *ext.Request
	client netip.Addr // the client's address; invalid: unknown
	parsed bool
}

func (in *Input) clientAddr() netip.Addr {
	if !in.parsed {
		in.parsed = true
		if ap, err := netip.ParseAddrPort(in.rq.HTTP.RemoteAddr); err == nil {
			in.client = ap.Addr()
		} else if a, err := netip.ParseAddr(ext.RemoteIP(in.rq.HTTP.RemoteAddr)); err == nil {
			in.client = a
		}
	}
	return in.client
}

// Entries appends the policy's descriptor entries to dst; ok is false when
// an action finds nothing (the policy makes no descriptor).
func (p *Policy) Entries(in *Input, dst []Entry) ([]Entry, bool) {
	for i := range p.actions {
		e, ok := p.actions[i].entry(in)
		if !ok {
			return dst, false
		}
		dst = append(dst, e)
	}
	return dst, true
}

func (a *rlAction) entry(in *Input) (Entry, bool) {
	rq := in.rq
	switch a.kind {
	case actGenericKey:
		return Entry{a.key, a.value}, true
	case actRequestHeader:
		var v string
		switch a.header {
		case ":method":
			v = rq.HTTP.Method
		case ":path":
			v = rq.PathQuery
		case ":authority":
			v = rq.HTTP.Host
		case ":scheme":
			v = rq.Scheme
		default:
			vs := rq.HTTP.Header[a.header]
			if len(vs) == 0 {
				return Entry{}, false
			}
			v = vs[0]
		}
		return Entry{a.key, v}, true
	case actHeaderValueMatch:
		all := true
		for _, m := range a.headers {
			if !m.Matches(rq.HTTP, rq.PathQuery, rq.Scheme) {
				all = false
				break
			}
		}
		if all != a.expect {
			return Entry{}, false
		}
		return Entry{a.key, a.value}, true
	case actRemoteAddressMatch:
		ip := in.clientAddr()
		if !ip.IsValid() {
			return Entry{}, false
		}
		ip = ip.Unmap().WithZone("")
		hit := false
		for _, r := range a.ranges {
			if r.Contains(ip) {
				hit = true
				break
			}
		}
		if hit == a.invert {
			return Entry{}, false
		}
		if a.clientIP {
			return Entry{a.key, ip.String()}, true
		}
		return Entry{a.key, a.value}, true
	case actMetadata:
		s := rq.Metadata(a.namespace)
		if s == nil {
			return Entry{}, false
		}
		var v *structpb.Value
		for i, k := range a.path {
			v = s.GetFields()[k]
			if v == nil {
				return Entry{}, false
			}
			if i < len(a.path)-1 {
				if s = v.GetStructValue(); s == nil {
					return Entry{}, false
				}
			}
		}
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || sv.StringValue == "" {
			return Entry{}, false
		}
		return Entry{a.key, sv.StringValue}, true
	}
	return Entry{}, false
}
