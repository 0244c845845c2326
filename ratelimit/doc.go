// Package ratelimit is sekisho's global rate-limit service: it answers
// Envoy's envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, so
// any proxy that speaks it (sekisho's own, or Envoy) enforces limits that
// hold across all its replicas.
//
// # Descriptors
//
// The control plane gives the service a Config: a domain and its Rules. The
// proxy sends, per request, one RateLimitDescriptor per rule that applies:
//
//	entries[0] = {key: "sekisho.rule", value: <Rule.ID>}
//	entries[1:] = what the counter is per, e.g. {"x-user", "alice"},
//	              {"remote_address", "10.1.2.3"}, {"claim.sub", "bob"}
//
// The counter key is the domain and every entry (see AppendKey), so each
// distinct combination of values is counted on its own. The cost of a
// descriptor is its hits_addend if set, else the request's hits_addend if
// > 0, else 1. A descriptor that names no rule, a request for another
// domain, and a descriptor whose rule has ClientCIDRs that its
// remote_address entry is not inside, are answered OK and not counted.
//
// # Answers
//
// The overall code is OVER_LIMIT iff a descriptor of a non-shadow rule is
// over its limit. Each descriptor gets a status with its limit, remaining
// and time until reset; the response carries RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset and RateLimit-Policy headers from the
// most restrictive counted descriptor, and Retry-After when over the limit.
// Shadow rules count but never deny. When the store fails or does not
// answer within Options.Deadline, a rule that fails open answers OK and one
// that fails closed makes the whole call fail with codes.Unavailable (the
// proxy then denies).
//
// # Stores
//
// NewMemoryStore keeps the counters in this process (a single replica).
// NewRedisStore keeps them in Redis or Redis Cluster, shared by every
// replica, with one Lua script call per descriptor whose keys share one
// hash slot. The algorithms (FixedWindow, SlidingWindow, TokenBucket) give
// the same answers in both.
//
// # Serving
//
// Register the Server on a gRPC server made with GRPCServerOptions (a codec
// for the service's two messages and reused stream workers); Handler serves
// /healthz, /readyz and /metrics.
package ratelimit
