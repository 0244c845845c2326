package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sekisho/sekisho/proxy/router"
)

// minFillInterval is the shortest fill_interval Envoy takes.
const minFillInterval = 50 * time.Millisecond

// localFilter is a compiled envoy.filters.http.local_ratelimit: it limits
// the routes that configure it; at filter level it only names itself.
type localFilter struct {
	allowed, denied, notEnforced prometheus.Counter
}

func compileLocalFilter(name string, c *localrlv3.LocalRateLimit, env *compileEnv) (*localFilter, error) {
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.TokenBucket != nil || c.FilterEnabled != nil || c.FilterEnforced != nil || len(c.GetDescriptors()) > 0 || len(c.GetRateLimits()) > 0 {
		return nil, errors.New("token_bucket, filter_enabled, filter_enforced, descriptors and rate_limits are supported per route (typed_per_filter_config) only")
	}
	m, gw := env.r.metrics, env.r.metrics.gateway
	return &localFilter{
		allowed:     m.localRateLimit.WithLabelValues(gw, name, "allowed"),
		denied:      m.localRateLimit.WithLabelValues(gw, name, "denied"),
		notEnforced: m.localRateLimit.WithLabelValues(gw, name, "not_enforced"),
	}, nil
}

// localRoute is a route's (or virtual host's) LocalRateLimit.
type localRoute struct {
	enabled, enforced router.Fraction
	bucket            *tokenBucket
	descriptors       []localDescriptor
	limits            []*rateLimitPolicy
}

type localDescriptor struct {
	entries []descEntry
	bucket  *tokenBucket
}

// tokenBucket is one bucket of a local rate limit; key says what it limits
// and how, so that the next configuration can take it over.
type tokenBucket struct {
	key string
	lim *rate.Limiter
}

// compileLocalRoute compiles a per-route LocalRateLimit; scope names the
// route (or virtual host) and the filter, for the buckets' keys.
func (e *compileEnv) compileLocalRoute(c *localrlv3.LocalRateLimit, scope string) (*localRoute, error) {
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.GetTokenBucket() == nil {
		return nil, errors.New("token_bucket: required in a per-route configuration")
	}
	l := &localRoute{}
	var err error
	if l.enabled, err = router.CompileFraction(c.GetFilterEnabled(), router.Fraction{Den: 100}); err != nil {
		return nil, fmt.Errorf("filter_enabled.%w", err)
	}
	if l.enforced, err = router.CompileFraction(c.GetFilterEnforced(), router.Fraction{Den: 100}); err != nil {
		return nil, fmt.Errorf("filter_enforced.%w", err)
	}
	if l.bucket, err = e.bucket(scope, c.GetTokenBucket()); err != nil {
		return nil, fmt.Errorf("token_bucket.%w", err)
	}
	seen := map[string]bool{}
	for i, d := range c.GetDescriptors() {
		if len(d.GetEntries()) == 0 {
			return nil, fmt.Errorf("descriptors[%d].entries: at least one entry is required", i)
		}
		ld := localDescriptor{}
		var id strings.Builder
		for j, en := range d.GetEntries() {
			if en.GetKey() == "" || en.GetValue() == "" {
				return nil, fmt.Errorf("descriptors[%d].entries[%d]: key and value are required (wildcard values are not supported)", i, j)
			}
			ld.entries = append(ld.entries, descEntry{en.GetKey(), en.GetValue()})
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
		if ld.bucket, err = e.bucket(scope+"\x00"+id.String(), d.GetTokenBucket()); err != nil {
			return nil, fmt.Errorf("descriptors[%d].token_bucket.%w", i, err)
		}
		l.descriptors = append(l.descriptors, ld)
	}
	if l.limits, err = compileRateLimits(c.GetRateLimits(), false); err != nil {
		return nil, err
	}
	return l, nil
}

// bucket returns the bucket for a key and token_bucket: the previous
// configuration's when it has the same, else a new (full) one.
func (e *compileEnv) bucket(scope string, tb *typev3.TokenBucket) (*tokenBucket, error) {
	if tb.GetMaxTokens() == 0 {
		return nil, errors.New("max_tokens: must be above 0")
	}
	perFill := uint32(1)
	if tb.TokensPerFill != nil {
		if perFill = tb.GetTokensPerFill().GetValue(); perFill == 0 {
			return nil, errors.New("tokens_per_fill: must be above 0")
		}
	}
	if tb.FillInterval == nil {
		return nil, errors.New("fill_interval: required")
	}
	if err := tb.GetFillInterval().CheckValid(); err != nil {
		return nil, fmt.Errorf("fill_interval: %w", err)
	}
	interval := tb.GetFillInterval().AsDuration()
	if interval < minFillInterval {
		return nil, fmt.Errorf("fill_interval: %v is shorter than %v", interval, minFillInterval)
	}
	key := fmt.Sprintf("%s\x00%d/%d/%d", scope, tb.GetMaxTokens(), perFill, interval)
	if b := e.buckets[key]; b != nil {
		return b, nil
	}
	b := e.oldBuckets[key]
	if b == nil {
		every := rate.Limit(float64(perFill) / interval.Seconds())
		b = &tokenBucket{key: key, lim: rate.NewLimiter(every, int(tb.GetMaxTokens()))}
	}
	e.buckets[key] = b
	return b, nil
}

// takeAll takes a token from every bucket, or from none when one is empty.
func takeAll(bs []*tokenBucket, now time.Time) bool {
	if len(bs) == 1 {
		return bs[0].lim.AllowN(now, 1)
	}
	rs := make([]*rate.Reservation, 0, len(bs))
	for _, b := range bs {
		r := b.lim.ReserveN(now, 1)
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

// localRateLimit runs a local_ratelimit filter; it reports whether it
// answered the request.
func (fr *filterRun) localRateLimit(f *httpFilter, rf *routeFilter) bool {
	if rf == nil || rf.local == nil {
		return false
	}
	l := rf.local
	if !l.enabled.Sample() {
		return false
	}
	buckets := make([]*tokenBucket, 1, 1+len(l.descriptors))
	buckets[0] = l.bucket
	if len(l.descriptors) > 0 && len(l.limits) > 0 {
		in := &actionInput{fr: fr}
		var buf []descEntry
		for _, p := range l.limits {
			var ok bool
			if buf, ok = p.entries(in, buf[:0]); !ok {
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
	if takeAll(buckets, fr.h.rt.now()) {
		f.local.allowed.Inc()
		return false
	}
	if !l.enforced.Sample() {
		f.local.notEnforced.Inc()
		return false
	}
	f.local.denied.Inc()
	fr.reply(http.StatusTooManyRequests, "local_rate_limited", func(h http.Header) {
		h["X-Envoy-Ratelimited"] = []string{"true"}
	})
	return true
}

func sameEntries(a, b []descEntry) bool {
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

func hasBucket(bs []*tokenBucket, b *tokenBucket) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
