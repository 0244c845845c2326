package ratelimit

import (
	"encoding/json"
	"strings"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
)

func TestConfigJSON(t *testing.T) {
	in := `{"domain":"sekisho","rules":[
	  {"id":"per-user","requests":100,"unit":"Minute","algorithm":"SlidingWindow","shadow":true,"failureMode":"Closed","clientCIDRs":["10.0.0.0/8"]},
	  {"id":"bucket","requests":10,"unit":"Second","algorithm":"TokenBucket","burst":20}]}`
	var c Config
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{Domain: "sekisho", Rules: []Rule{
		{ID: "per-user", Requests: 100, Unit: "Minute", Algorithm: "SlidingWindow", Shadow: true, FailureMode: "Closed", ClientCIDRs: []string{"10.0.0.0/8"}},
		{ID: "bucket", Requests: 10, Unit: "Second", Algorithm: "TokenBucket", Burst: 20},
	}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	out, err := json.Marshal(Config{Domain: "d", Rules: []Rule{{ID: "r", Requests: 1, Unit: "Second"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `{"domain":"d","rules":[{"id":"r","requests":1,"unit":"Second","algorithm":""}]}`; got != want {
		t.Errorf("encoded %s, want %s", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Rule{ID: "r", Requests: 10, Unit: "Minute"}
	with := func(f func(*Rule)) Rule { r := ok; f(&r); return r }
	for _, tc := range []struct {
		name  string
		cfg   Config
		wants []string // each must be in the error; none means valid
	}{
		{"valid", Config{Domain: "d", Rules: []Rule{ok, with(func(r *Rule) { r.ID, r.Algorithm, r.Burst = "b", "TokenBucket", 5 })}}, nil},
		{"no rules", Config{Domain: "d"}, nil},
		{"no domain", Config{Rules: []Rule{ok}}, []string{"domain: must not be empty"}},
		{"no id", Config{Domain: "d", Rules: []Rule{ok, with(func(r *Rule) { r.ID = "" })}}, []string{"rules[1]: id: must not be empty"}},
		{"duplicate id", Config{Domain: "d", Rules: []Rule{ok, ok}}, []string{`rule "r": id: duplicate of rules[0]`}},
		{"zero requests", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Requests = 0 })}}, []string{`rule "r": requests: must be greater than 0`}},
		{"too many requests", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Requests = 1 << 33 })}}, []string{`rule "r": requests: 8589934592 is more than 4294967295`}},
		{"bad unit", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Unit = "Week" })}}, []string{`rule "r": unit: "Week" is not one of Second, Minute, Hour, Day`}},
		{"no unit", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Unit = "" })}}, []string{`rule "r": unit: ""`}},
		{"bad algorithm", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Algorithm = "LeakyBucket" })}}, []string{`rule "r": algorithm: "LeakyBucket" is not one of`}},
		{"burst without bucket", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.Burst = 3 })}}, []string{`rule "r": burst: applies only to the TokenBucket algorithm, not FixedWindow`}},
		{"bad failure mode", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.FailureMode = "open" })}}, []string{`rule "r": failureMode: "open" is not one of Open, Closed`}},
		{"bad cidr", Config{Domain: "d", Rules: []Rule{with(func(r *Rule) { r.ClientCIDRs = []string{"10.0.0.0/8", "10.0.0.1"} })}}, []string{`rule "r": clientCIDRs[1]: "10.0.0.1" is not a CIDR`}},
		{"every problem", Config{Rules: []Rule{with(func(r *Rule) { r.Requests, r.Unit = 0, "Year" })}}, []string{"domain:", `rule "r": requests:`, `rule "r": unit:`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRuleAdmitsClient(t *testing.T) {
	c, err := compile(Config{Domain: "d", Rules: []Rule{{ID: "r", Requests: 1, Unit: "Second", ClientCIDRs: []string{"10.0.0.0/8", "2001:db8::/32", "192.168.1.7/24"}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.rules["r"]
	for addr, want := range map[string]bool{
		"10.1.2.3":         true,
		"::ffff:10.1.2.3":  true,
		"2001:db8::1":      true,
		"192.168.1.200":    true, // the prefix is masked
		"11.0.0.1":         false,
		"2001:db9::1":      false,
		"":                 false,
		"not-an-address":   false,
		"10.1.2.3:8080":    false,
		"192.168.2.1":      false,
		"fe80::1%eth0":     false,
		"::ffff:192.0.2.1": false,
	} {
		if got := r.admitsClient(addr); got != want {
			t.Errorf("admitsClient(%q) = %v, want %v", addr, got, want)
		}
	}
	open, _ := compile(Config{Domain: "d", Rules: []Rule{{ID: "r", Requests: 1, Unit: "Second"}}})
	if !open.rules["r"].admitsClient("") {
		t.Error("a rule without CIDRs must apply to every client")
	}
}

func TestAppendKeyIsInjective(t *testing.T) {
	e := func(kv ...string) []*ratelimitv3.RateLimitDescriptor_Entry {
		var out []*ratelimitv3.RateLimitDescriptor_Entry
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	cases := []struct {
		domain  string
		entries []*ratelimitv3.RateLimitDescriptor_Entry
	}{
		{"d", e("a", "b|c=d")},
		{"d", e("a", "b", "c", "d")},
		{"d|a=b", e("c", "d")},
		{"d", e("a=b", "c")},
		{"d", e("a", "b=c")},
		{"d", e("a", "%7C")},
		{"d", e("a", "|")},
		{"d", e("a", "")},
		{"d", e("a", "", "", "")},
		{"d", nil},
		{"d", e("", "")},
		{"d", e("a", "{x}")},
		{"d", e("a", "%7Bx%7D")},
	}
	seen := map[string]int{}
	for i, c := range cases {
		k := string(AppendKey(nil, c.domain, c.entries))
		if j, dup := seen[k]; dup {
			t.Errorf("cases %d and %d share the key %q", j, i, k)
		}
		seen[k] = i
		if strings.ContainsAny(k, "{}") {
			t.Errorf("key %q holds a brace: it would change the Redis hash tag", k)
		}
	}
	if got, want := string(AppendKey([]byte("x"), "sekisho", e(RuleEntryKey, "api", "x-user", "al|ice"))), "xsekisho|sekisho.rule=api|x-user=al%7Cice"; got != want {
		t.Errorf("AppendKey = %q, want %q", got, want)
	}
}
