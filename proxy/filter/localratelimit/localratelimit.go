// Package localratelimit is the envoy.filters.http.local_ratelimit HTTP
// filter: token buckets in the proxy, configured per route.
//
// Choices made where Envoy leaves room or where sekisho differs:
//
//   - At filter level the filter only names itself (stat_prefix); its
//     buckets, descriptors and rate_limits are configured per route
//     (typed_per_filter_config of routes and virtual hosts). A route that
//     inherits its virtual host's configuration shares its buckets.
//   - The buckets are golang.org/x/time/rate limiters (tokens_per_fill/
//     fill_interval per second, burst max_tokens) that refill continuously
//     rather than once per fill_interval. A request takes a token from the
//     route's bucket and from the bucket of every descriptor it matches,
//     all or none: when one is empty none is taken.
//   - A bucket outlives configuration updates as long as its route (route
//     configuration, virtual host and route names) and its token_bucket stay
//     the same. A route's 429 carries x-envoy-ratelimited: true.
package localratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/filter/internal/descriptor"
	"github.com/sekisho/sekisho/proxy/router"
)

// Name is the filter's name.
const Name = "envoy.filters.http.local_ratelimit"

// minFillInterval is the shortest fill_interval Envoy takes.
const minFillInterval = 50 * time.Millisecond

// total is the filter's counter family.
const total = "sekisho_local_ratelimit_total"

func init() {
	fields := []string{
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.stat_prefix",
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.token_bucket",
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.filter_enabled",
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.filter_enforced",
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.descriptors",
		"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.rate_limits",
		"envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor.entries",
		"envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor.token_bucket",
		"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry.key",
		"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry.value",
		"envoy.type.v3.TokenBucket.max_tokens",
		"envoy.type.v3.TokenBucket.tokens_per_fill",
		"envoy.type.v3.TokenBucket.fill_interval",
		"envoy.config.core.v3.RuntimeFractionalPercent.default_value",
		"envoy.type.v3.FractionalPercent.numerator",
		"envoy.type.v3.FractionalPercent.denominator",
		// The proxy has no runtime: a runtime key always takes its default.
		"envoy.config.core.v3.RuntimeFractionalPercent.runtime_key",
	}
	ext.RegisterHTTP(&ext.HTTPFilter{
		Name:     Name,
		Config:   &localrlv3.LocalRateLimit{},
		PerRoute: &localrlv3.LocalRateLimit{},
		Fields:   slices.Concat(fields, descriptor.Fields),
		Counters: []ext.CounterFamily{
			{Name: total, Help: "Requests a local_ratelimit filter checked, by filter and result (allowed, denied, not_enforced).", Labels: []string{"result"}},
		},
		Decode:      decode,
		DecodeRoute: decodeRoute,
		BuildRoute:  buildRoute,
		Build:       build,
	})
}

func decode(m proto.Message) (any, error) {
	c := m.(*localrlv3.LocalRateLimit)
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.TokenBucket != nil || c.FilterEnabled != nil || c.FilterEnforced != nil || len(c.GetDescriptors()) > 0 || len(c.GetRateLimits()) > 0 {
		return nil, errors.New("token_bucket, filter_enabled, filter_enforced, descriptors and rate_limits are supported per route (typed_per_filter_config) only")
	}
	return c, nil
}

// bucketSpec is a checked token_bucket; key names it among a route's.
type bucketSpec struct {
	key   string
	max   int
	every rate.Limit
}

// routeSpec is a checked per-route LocalRateLimit.
type routeSpec struct {
	enabled, enforced router.Fraction
	bucket            bucketSpec
	descriptors       []descriptorSpec
	limits            []*descriptor.Policy
}

type descriptorSpec struct {
	entries []descriptor.Entry
	bucket  bucketSpec
}

func decodeRoute(m proto.Message) (any, error) {
	c := m.(*localrlv3.LocalRateLimit)
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.GetTokenBucket() == nil {
		return nil, errors.New("token_bucket: required in a per-route configuration")
	}
	s := &routeSpec{}
	var err error
	if s.enabled, err = router.CompileFraction(c.GetFilterEnabled(), router.Fraction{Den: 100}); err != nil {
		return nil, fmt.Errorf("filter_enabled.%w", err)
	}
	if s.enforced, err = router.CompileFraction(c.GetFilterEnforced(), router.Fraction{Den: 100}); err != nil {
		return nil, fmt.Errorf("filter_enforced.%w", err)
	}
	if s.bucket, err = checkBucket("", c.GetTokenBucket()); err != nil {
		return nil, fmt.Errorf("token_bucket.%w", err)
	}
	seen := map[string]bool{}
	for i, d := range c.GetDescriptors() {
		if len(d.GetEntries()) == 0 {
			return nil, fmt.Errorf("descriptors[%d].entries: at least one entry is required", i)
		}
		ds := descriptorSpec{}
		var id strings.Builder
		for j, en := range d.GetEntries() {
			if en.GetKey() == "" || en.GetValue() == "" {
				return nil, fmt.Errorf("descriptors[%d].entries[%d]: key and value are required (wildcard values are not supported)", i, j)
			}
			ds.entries = append(ds.entries, descriptor.Entry{Key: en.GetKey(), Value: en.GetValue()})
			id.WriteString(strconv.Quote(en.GetKey()))
			id.WriteByte('=')
			id.WriteString(strconv.Quote(en.GetValue()))
			id.WriteByte(',')
		}
		if seen[id.String()] {
			return nil, fmt.Errorf("descriptors[%d]: the same entries are in another descriptor", i)
		}
		seen[id.String()] = true
		if d.GetTokenBucket() == nil {
			return nil, fmt.Errorf("descriptors[%d].token_bucket: required", i)
		}
		if ds.bucket, err = checkBucket("\x00"+id.String(), d.GetTokenBucket()); err != nil {
			return nil, fmt.Errorf("descriptors[%d].token_bucket.%w", i, err)
		}
		s.descriptors = append(s.descriptors, ds)
	}
	if s.limits, err = descriptor.Compile(c.GetRateLimits(), false); err != nil {
		return nil, err
	}
	return s, nil
}

// checkBucket checks a token_bucket; id names it among its route's.
func checkBucket(id string, tb *typev3.TokenBucket) (bucketSpec, error) {
	if tb.GetMaxTokens() == 0 {
		return bucketSpec{}, errors.New("max_tokens: must be above 0")
	}
	perFill := uint32(1)
	if tb.TokensPerFill != nil {
		if perFill = tb.GetTokensPerFill().GetValue(); perFill == 0 {
			return bucketSpec{}, errors.New("tokens_per_fill: must be above 0")
		}
	}
	if tb.FillInterval == nil {
		return bucketSpec{}, errors.New("fill_interval: required")
	}
	if err := tb.GetFillInterval().CheckValid(); err != nil {
		return bucketSpec{}, fmt.Errorf("fill_interval: %w", err)
	}
	interval := tb.GetFillInterval().AsDuration()
	if interval < minFillInterval {
		return bucketSpec{}, fmt.Errorf("fill_interval: %v is shorter than %v", interval, minFillInterval)
	}
	return bucketSpec{
		key:   fmt.Sprintf("%s\x00%d/%d/%d", id, tb.GetMaxTokens(), perFill, interval),
		max:   int(tb.GetMaxTokens()),
		every: rate.Limit(float64(perFill) / interval.Seconds()),
	}, nil
}

// perRoute is a route's (or virtual host's) local rate limit.
type perRoute struct {
	enabled, enforced router.Fraction
	bucket            *rate.Limiter
	descriptors       []localDescriptor
	limits            []*descriptor.Policy
}

type localDescriptor struct {
	entries []descriptor.Entry
	bucket  *rate.Limiter
}

// buildRoute takes the route's buckets from the pool: those of the previous
// configuration when its scope and token_bucket are the same, else new
// (full) ones.
func buildRoute(cfg any, rb ext.RouteBuild) (any, error) {
	s := cfg.(*routeSpec)
	bucket := func(b bucketSpec) (*rate.Limiter, error) {
		return ext.Acquire(rb.Lease, Name+"\x00"+rb.Scope+b.key, func() (*rate.Limiter, func(), error) {
			return rate.NewLimiter(b.every, b.max), nil, nil
		})
	}
	r := &perRoute{enabled: s.enabled, enforced: s.enforced, limits: s.limits}
	var err error
	if r.bucket, err = bucket(s.bucket); err != nil {
		return nil, err
	}
	for _, d := range s.descriptors {
		ld := localDescriptor{entries: d.entries}
		if ld.bucket, err = bucket(d.bucket); err != nil {
			return nil, err
		}
		r.descriptors = append(r.descriptors, ld)
	}
	return r, nil
}

// filter is a local_ratelimit filter of a chain.
type filter struct {
	now                          func() time.Time
	allowed, denied, notEnforced ext.Counter
}

func build(_ any, b ext.BuildContext) (ext.Filter, error) {
	return &filter{
		now:         b.Clock(),
		allowed:     b.Counter(total, "allowed"),
		denied:      b.Counter(total, "denied"),
		notEnforced: b.Counter(total, "not_enforced"),
	}, nil
}

func (f *filter) OnRequest(rq *ext.Request, route any) ext.Status {
	l, _ := route.(*perRoute)
	if l == nil || !l.enabled.Sample() {
		return ext.Continue
	}
	buckets := make([]*rate.Limiter, 1, 1+len(l.descriptors))
	buckets[0] = l.bucket
	if len(l.descriptors) > 0 && len(l.limits) > 0 {
		in := descriptor.NewInput(rq)
		var buf []descriptor.Entry
		for _, p := range l.limits {
			var ok bool
			if buf, ok = p.Entries(in, buf[:0]); !ok {
				continue
			}
			for i := range l.descriptors {
				d := &l.descriptors[i]
				if sameEntries(d.entries, buf) && !hasBucket(buckets, d.bucket) {
					buckets = append(buckets, d.bucket)
				}
			}
		}
	}
	if takeAll(buckets, f.now()) {
		f.allowed.Inc()
		return ext.Continue
	}
	if !l.enforced.Sample() {
		f.notEnforced.Inc()
		return ext.Continue
	}
	f.denied.Inc()
	rq.Reply(http.StatusTooManyRequests, "local_rate_limited", func(h http.Header) {
		h["X-Envoy-Ratelimited"] = []string{"true"}
	})
	return ext.Stop
}

// takeAll takes a token from every bucket, or from none when one is empty.
func takeAll(bs []*rate.Limiter, now time.Time) bool {
	if len(bs) == 1 {
		return bs[0].AllowN(now, 1)
	}
	rs := make([]*rate.Reservation, 0, len(bs))
	for _, b := range bs {
		r := b.ReserveN(now, 1)
		if !r.OK() || r.DelayFrom(now) > 0 {
			r.CancelAt(now)
			for _, p := range rs {
				p.CancelAt(now)
			}
			return false
		}
		rs = append(rs, r)
	}
	return true
}

func sameEntries(a, b []descriptor.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasBucket(bs []*rate.Limiter, b *rate.Limiter) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
