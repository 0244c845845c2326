package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sekisho/sekisho/ratelimit/redistest"
)

// twoServers are two replicas of the service, each with its own Redis
// client, sharing one Redis and one fake clock.
func twoServers(t *testing.T, cfg Config) ([2]*Server, *fakeClock, *redistest.Redis) {
	t.Helper()
	r := redistest.Start(t)
	clock := newFakeClock(5 * time.Second)
	var out [2]*Server
	for i := range out {
		s, err := NewServer(Options{Store: newRedisStore(t, r), Clock: clock, Logger: quietLog, Deadline: time.Second, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		if err := s.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out, clock, r
}

// TestTwoServersShareOneRedis: a limit is a quota across replicas.
func TestTwoServersShareOneRedis(t *testing.T) {
	servers, _, _ := twoServers(t, Config{Domain: domain, Rules: []Rule{
		{ID: "fixed", Requests: 100, Unit: "Minute"},
		{ID: "shadow", Requests: 10, Unit: "Minute", Shadow: true},
		{ID: "bucket", Requests: 10, Unit: "Second", Algorithm: "TokenBucket", Burst: 20},
	}})

	// 1000 calls from 10 goroutines over both replicas: exactly 100 pass,
	// and the admitted ones saw every remaining value from 99 to 0 once.
	var mu sync.Mutex
	var remaining []int
	denied := 0
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				s := servers[(g+i)%2]
				resp, err := s.ShouldRateLimit(context.Background(), request(domain, desc("fixed", "x-user", "alice")))
				if err != nil {
					t.Error(err)
					return
				}
				h := headerMap(resp)
				mu.Lock()
				switch resp.OverallCode {
				case rlsv3.RateLimitResponse_OK:
					n, _ := strconv.Atoi(h[HeaderRemaining])
					remaining = append(remaining, n)
				default:
					denied++
					if h[HeaderRetryAfter] != "55" || h[HeaderRemaining] != "0" {
						t.Errorf("denied: headers %v", h)
					}
				}
				if h[HeaderLimit] != "100" || h[HeaderReset] != "55" || h[HeaderPolicy] != "100;w=60" {
					t.Errorf("headers %v", h)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Ints(remaining)
	if len(remaining) != 100 || denied != 900 {
		t.Fatalf("%d admitted, %d denied; want exactly 100 and 900", len(remaining), denied)
	}
	for i, n := range remaining {
		if n != i {
			t.Fatalf("admitted calls saw remaining %v, want each of 0..99 once", remaining)
		}
	}

	// Distinct entries count separately: five users, each exactly 100.
	admitted := make([]int, 5)
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 75 {
				u := (g + i) % 5
				resp, err := servers[i%2].ShouldRateLimit(context.Background(), request(domain, desc("fixed", "x-user", "user"+strconv.Itoa(u), "header_match", "api")))
				if err != nil {
					t.Error(err)
					return
				}
				if resp.OverallCode == rlsv3.RateLimitResponse_OK {
					mu.Lock()
					admitted[u]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for u, n := range admitted {
		if n != 100 {
			t.Errorf("user%d: %d admitted, want 100", u, n)
		}
	}

	// Shadow: everything passes, the count goes on (headers show it) and
	// each replica reports what it would have denied.
	for i := range 30 {
		resp := mustDecide(t, servers[i%2], request(domain, desc("shadow", "x-user", "carol")))
		want := strconv.Itoa(max(9-i, 0))
		if h := headerMap(resp); resp.OverallCode != rlsv3.RateLimitResponse_OK || h[HeaderRemaining] != want || h[HeaderRetryAfter] != "" {
			t.Errorf("shadow call %d: %v %v, want remaining %s", i, resp.OverallCode, h, want)
		}
	}
	wouldDeny := counterValue(servers[0].m.shadowOver.WithLabelValues("shadow")) + counterValue(servers[1].m.shadowOver.WithLabelValues("shadow"))
	if wouldDeny != 20 {
		t.Errorf("shadow_over_limit_total over both replicas = %v, want 20", wouldDeny)
	}

	// TokenBucket: the burst is shared.
	ok := 0
	for i := range 50 {
		if mustDecide(t, servers[i%2], request(domain, desc("bucket"))).OverallCode == rlsv3.RateLimitResponse_OK {
			ok++
		}
	}
	if ok != 20 {
		t.Errorf("token bucket: %d admitted at one instant, want the burst of 20", ok)
	}
}

// TestSlidingWindowAcrossReplicas: a steady overload on two replicas over
// five windows admits what one in-memory replica admits for the same
// sequence, and about the limit per window.
func TestSlidingWindowAcrossReplicas(t *testing.T) {
	const limit, windows, perWindow = 500, 5, 2000
	cfg := Config{Domain: domain, Rules: []Rule{{ID: "sliding", Requests: limit, Unit: "Minute", Algorithm: "SlidingWindow"}}}
	servers, clock, _ := twoServers(t, cfg)
	memory := newTestServer(t, NewMemoryStore(MemoryOptions{}), clock, cfg)

	step := time.Minute / perWindow
	clock.Set(0)
	var redisOK, memoryOK [windows]int
	for i := range windows * perWindow {
		w := i / perWindow
		req := request(domain, desc("sliding", "x-user", "dave"))
		if mustDecide(t, servers[i%2], req).OverallCode == rlsv3.RateLimitResponse_OK {
			redisOK[w]++
		}
		if mustDecide(t, memory, req).OverallCode == rlsv3.RateLimitResponse_OK {
			memoryOK[w]++
		}
		clock.Advance(step)
	}
	if redisOK != memoryOK {
		t.Errorf("admitted per window: redis %v, memory %v; want the same", redisOK, memoryOK)
	}
	if redisOK[0] != limit {
		t.Errorf("first window: %d admitted, want exactly %d", redisOK[0], limit)
	}
	total := 0
	for _, n := range redisOK {
		total += n
	}
	if want := float64(limit * windows); math.Abs(float64(total)-want) > want/100 {
		t.Errorf("%d admitted over %d windows (%v), want %v ±1%%", total, windows, redisOK, want)
	}
	t.Logf("admitted per window: %v", redisOK)
}

// TestRedisKeysShareOneSlot: every key of one decision carries the same
// hash tag, the counter key, and expires.
func TestRedisKeysShareOneSlot(t *testing.T) {
	r := redistest.Start(t)
	store := newRedisStore(t, r)
	s := newTestServer(t, store, newFakeClock(90*time.Second), Config{Domain: domain, Rules: []Rule{
		{ID: "fixed", Requests: 10, Unit: "Minute"},
		{ID: "sliding", Requests: 10, Unit: "Minute", Algorithm: "SlidingWindow"},
		{ID: "bucket", Requests: 10, Unit: "Minute", Algorithm: "TokenBucket"},
	}})
	s2 := newTestServer(t, store, newFakeClock(30*time.Second), Config{Domain: domain, Rules: []Rule{
		{ID: "sliding", Requests: 10, Unit: "Minute", Algorithm: "SlidingWindow"},
	}})
	mustDecide(t, s2, request(domain, desc("sliding", "u", "{a}|b")))
	mustDecide(t, s, request(domain, desc("fixed", "u", "{a}|b"), desc("sliding", "u", "{a}|b"), desc("bucket", "u", "{a}|b")))

	keys, err := redistest.Do(r.Addr(), time.Second, "KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Split(keys, "\n")
	sort.Strings(list)
	tag := "{sekisho|sekisho.rule=%s|u=%%7Ba%%7D%%7Cb}"
	want := []string{
		"sekisho:rl:" + fmt.Sprintf(tag, "bucket") + ":t60000",
		"sekisho:rl:" + fmt.Sprintf(tag, "fixed") + ":f60000:" + strconv.FormatInt(epoch.Add(90*time.Second).UnixMilli()/60000, 10),
		"sekisho:rl:" + fmt.Sprintf(tag, "sliding") + ":s60000:" + strconv.FormatInt(epoch.UnixMilli()/60000, 10),
		"sekisho:rl:" + fmt.Sprintf(tag, "sliding") + ":s60000:" + strconv.FormatInt(epoch.Add(90*time.Second).UnixMilli()/60000, 10),
	}
	if strings.Join(list, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(list, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range list {
		ttl, err := redistest.Do(r.Addr(), time.Second, "PTTL", k)
		if n, _ := strconv.Atoi(ttl); err != nil || n <= 0 {
			t.Errorf("PTTL %s = %s %v, want a positive expiry", k, ttl, err)
		}
	}
}

// TestRedisClusterSpreadsCounters: on a cluster, counters of many keys land
// on every node and each still admits exactly its limit.
func TestRedisClusterSpreadsCounters(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	store := newRedisStoreOpts(t, RedisOptions{Addrs: c.Addrs()})
	s := newTestServer(t, store, newFakeClock(0), Config{Domain: domain, Rules: []Rule{
		{ID: "fixed", Requests: 3, Unit: "Hour"},
		{ID: "sliding", Requests: 3, Unit: "Hour", Algorithm: "SlidingWindow"},
		{ID: "bucket", Requests: 3, Unit: "Hour", Algorithm: "TokenBucket"},
	}})
	const users = 60
	admitted := map[string]int{}
	for range 5 {
		for u := range users {
			user := "user" + strconv.Itoa(u)
			resp := mustDecide(t, s, request(domain, desc("fixed", "u", user), desc("sliding", "u", user), desc("bucket", "u", user)))
			for i, st := range resp.Statuses {
				if st.CurrentLimit == nil {
					t.Fatalf("%s: descriptor %d not counted (store error?)", user, i)
				}
				if st.Code == rlsv3.RateLimitResponse_OK {
					admitted[user+"/"+st.CurrentLimit.Name]++
				}
			}
		}
	}
	if len(admitted) != 3*users {
		t.Errorf("%d counters admitted something, want %d", len(admitted), 3*users)
	}
	for k, n := range admitted {
		if n != 3 {
			t.Errorf("%s: %d admitted, want 3", k, n)
		}
	}
	for _, node := range c.Nodes {
		n, err := redistest.Do(node.Addr(), time.Second, "DBSIZE")
		if v, _ := strconv.Atoi(n); err != nil || v == 0 {
			t.Errorf("node %s holds %s keys (%v), want some", node.Addr(), n, err)
		}
	}
}
