package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/sekisho/sekisho/ir"
)

// RuleEntryKey is the key of the first entry of every descriptor the proxy
// sends; its value is the ID of the Rule that counts the descriptor.
const RuleEntryKey = "sekisho.rule"

// RemoteAddressEntryKey is the descriptor entry that carries the client
// address a Rule's ClientCIDRs are matched against.
const RemoteAddressEntryKey = "remote_address"

// MaxRequests is the largest Requests or Burst a Rule may have: Envoy reports
// limits as uint32.
const MaxRequests = math.MaxUint32

// Config is every global rule the control plane knows, for one domain.
type Config struct {
	Domain string `json:"domain"` // requests for another domain are answered OK and counted in a metric
	Rules  []Rule `json:"rules"`
}

// Rule is one global limit. A descriptor selects it with its first entry
// {key: "sekisho.rule", value: ID}; the descriptor's other entries are part
// of the counter key, so each distinct combination of values has its own
// counter.
//
// Its type is the IR's: the control plane sends the JSON of ir.RateLimitConfig.
type Rule = ir.RateLimitRule

// Unit names accepted in Rule.Unit.
const (
	UnitSecond = "Second"
	UnitMinute = "Minute"
	UnitHour   = "Hour"
	UnitDay    = "Day"
)

// Failure modes accepted in Rule.FailureMode.
const (
	FailureModeOpen   = "Open"
	FailureModeClosed = "Closed"
)

// Algorithm is how a rule counts.
type Algorithm uint8

// The counting algorithms. Each behaves the same in every Store.
const (
	// FixedWindow counts requests in windows of one Unit aligned to the Unix
	// epoch; a request is admitted iff count+cost <= Requests, and a denied
	// request does not consume.
	FixedWindow Algorithm = iota + 1
	// SlidingWindow admits iff prev*(remaining fraction of the current
	// window) + current + cost <= Requests, where prev and current are the
	// admitted counts of the previous and the current fixed window; denied
	// requests do not consume.
	SlidingWindow
	// TokenBucket holds up to Burst tokens (Requests when Burst is 0) and
	// refills continuously at Requests per Unit; a request is admitted iff
	// the bucket holds at least cost tokens, which it then takes.
	TokenBucket
)

// String returns the name used in Rule.Algorithm.
func (a Algorithm) String() string {
	switch a {
	case FixedWindow:
		return "FixedWindow"
	case SlidingWindow:
		return "SlidingWindow"
	case TokenBucket:
		return "TokenBucket"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// ParseAlgorithm parses a Rule.Algorithm; "" is FixedWindow.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "", "FixedWindow":
		return FixedWindow, nil
	case "SlidingWindow":
		return SlidingWindow, nil
	case "TokenBucket":
		return TokenBucket, nil
	}
	return 0, fmt.Errorf("%q is not one of FixedWindow, SlidingWindow, TokenBucket", s)
}

// ParseUnit returns the length of a Rule.Unit.
func ParseUnit(s string) (time.Duration, error) {
	switch s {
	case UnitSecond:
		return time.Second, nil
	case UnitMinute:
		return time.Minute, nil
	case UnitHour:
		return time.Hour, nil
	case UnitDay:
		return 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("%q is not one of Second, Minute, Hour, Day", s)
}

func envoyUnit(window time.Duration) rlsv3.RateLimitResponse_RateLimit_Unit {
	switch window {
	case time.Second:
		return rlsv3.RateLimitResponse_RateLimit_SECOND
	case time.Minute:
		return rlsv3.RateLimitResponse_RateLimit_MINUTE
	case time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_HOUR
	case 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_DAY
	}
	return rlsv3.RateLimitResponse_RateLimit_UNKNOWN
}

// Validate reports every problem of the config, each naming the rule (by ID,
// or by index when it has none) and the field.
func (c Config) Validate() error {
	var errs []error
	if c.Domain == "" {
		errs = append(errs, errors.New("domain: must not be empty"))
	}
	seen := make(map[string]int, len(c.Rules))
	for i, r := range c.Rules {
		name := fmt.Sprintf("rule %q", r.ID)
		if r.ID == "" {
			name = fmt.Sprintf("rules[%d]", i)
			errs = append(errs, fmt.Errorf("%s: id: must not be empty", name))
		} else if j, dup := seen[r.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id: duplicate of rules[%d]", name, j))
		} else {
			seen[r.ID] = i
		}
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(format, args...)))
		}
		if r.Requests == 0 {
			bad("requests", "must be greater than 0")
		} else if r.Requests > MaxRequests {
			bad("requests", "%d is more than %d", r.Requests, uint64(MaxRequests))
		}
		if _, err := ParseUnit(r.Unit); err != nil {
			bad("unit", "%v", err)
		}
		alg, err := ParseAlgorithm(r.Algorithm)
		if err != nil {
			bad("algorithm", "%v", err)
		}
		if r.Burst != 0 {
			if err == nil && alg != TokenBucket {
				bad("burst", "applies only to the TokenBucket algorithm, not %s", alg)
			} else if r.Burst > MaxRequests {
				bad("burst", "%d is more than %d", r.Burst, uint64(MaxRequests))
			}
		}
		switch r.FailureMode {
		case "", FailureModeOpen, FailureModeClosed:
		default:
			bad("failureMode", "%q is not one of Open, Closed", r.FailureMode)
		}
		for j, cidr := range r.ClientCIDRs {
			if _, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err != nil {
				bad(fmt.Sprintf("clientCIDRs[%d]", j), "%q is not a CIDR (address/bits)", cidr)
			}
		}
	}
	return errors.Join(errs...)
}

// Limit is what one counter is checked against.
type Limit struct {
	Algorithm Algorithm
	Requests  uint64        // admitted per Window
	Burst     uint64        // TokenBucket capacity; 0 means Requests
	Window    time.Duration // the rule's Unit
}

func (l Limit) capacity() uint64 {
	if l.Algorithm == TokenBucket && l.Burst != 0 {
		return l.Burst
	}
	return l.Requests
}

// rule is a validated Rule, ready for the hot path.
type rule struct {
	id         string
	limit      Limit
	shadow     bool
	failClosed bool
	cidrs      []netip.Prefix
	unit       rlsv3.RateLimitResponse_RateLimit_Unit
	limitText  string // RateLimit-Limit
	policyText string // RateLimit-Policy
	m          *ruleMetrics
}

// compiled is the config the server answers from; it is never changed once
// published.
type compiled struct {
	domain string
	rules  map[string]*rule
}

func compile(c Config) (*compiled, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := &compiled{domain: c.Domain, rules: make(map[string]*rule, len(c.Rules))}
	for _, r := range c.Rules {
		window, _ := ParseUnit(r.Unit)
		alg, _ := ParseAlgorithm(r.Algorithm)
		cr := &rule{
			id:         r.ID,
			limit:      Limit{Algorithm: alg, Requests: r.Requests, Burst: r.Burst, Window: window},
			shadow:     r.Shadow,
			failClosed: r.FailureMode == FailureModeClosed,
			unit:       envoyUnit(window),
			limitText:  fmt.Sprint(r.Requests),
			policyText: fmt.Sprintf("%d;w=%d", r.Requests, int64(window/time.Second)),
		}
		for _, s := range r.ClientCIDRs {
			p, _ := netip.ParsePrefix(strings.TrimSpace(s))
			cr.cidrs = append(cr.cidrs, p.Masked())
		}
		out.rules[r.ID] = cr
	}
	return out, nil
}

// admitsClient reports whether the rule applies to a descriptor whose
// remote_address entry is addr (empty when it has none).
func (r *rule) admitsClient(addr string) bool {
	if len(r.cidrs) == 0 {
		return true
	}
	if addr == "" {
		return false
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range r.cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
