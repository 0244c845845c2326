package ratelimit

import (
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
)

// AppendKey appends the counter key of a descriptor to b: the domain, then
// "|key=value" for each entry, every part escaped so that no two different
// (domain, entries) lists give the same key: '%', '|', '=', '{' and '}' are
// written as %XX. The key never holds '{' or '}', so a Redis hash tag built
// around it is the whole key.
func AppendKey(b []byte, domain string, entries []*ratelimitv3.RateLimitDescriptor_Entry) []byte {
	b = appendEscaped(b, domain)
	for _, e := range entries {
		b = append(b, '|')
		b = appendEscaped(b, e.GetKey())
		b = append(b, '=')
		b = appendEscaped(b, e.GetValue())
	}
	return b
}

const hexDigits = "0123456789ABCDEF"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%', '|', '=', '{', '}':
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}
