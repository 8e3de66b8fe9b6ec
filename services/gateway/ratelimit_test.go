package gateway

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLimiterRefill(t *testing.T) {
	clock := newFakeClock()
	k := newKeyedLimiter(2, 4, 1000, nil) // 2/s, bursts of 4
	for i := 0; i < 4; i++ {
		if ok, _ := k.allow(clock.Now(), "1.2.3.4"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := k.allow(clock.Now(), "1.2.3.4")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: ok=%v wait=%s, want refused for 500ms", ok, wait)
	}
	if ok, _ := k.allow(clock.Now(), "5.6.7.8"); !ok {
		t.Fatal("another key was limited")
	}
	clock.Advance(499 * time.Millisecond)
	if ok, _ := k.allow(clock.Now(), "1.2.3.4"); ok {
		t.Fatal("refilled early")
	}
	clock.Advance(time.Millisecond)
	if ok, _ := k.allow(clock.Now(), "1.2.3.4"); !ok {
		t.Fatal("not refilled after 1/rate")
	}
	// A refused request takes no token: after 500ms exactly one more is allowed.
	for i := 0; i < 10; i++ {
		k.allow(clock.Now(), "1.2.3.4")
	}
	clock.Advance(500 * time.Millisecond)
	if ok, _ := k.allow(clock.Now(), "1.2.3.4"); !ok {
		t.Fatal("refused requests consumed tokens")
	}
	// Two seconds of silence refill the whole burst (and no more).
	clock.Advance(10 * time.Second)
	n := 0
	for {
		if ok, _ := k.allow(clock.Now(), "1.2.3.4"); !ok {
			break
		}
		n++
	}
	if n != 4 {
		t.Fatalf("after a long pause %d requests passed, want the burst of 4", n)
	}
}

func TestLimiterAllOrNothing(t *testing.T) {
	clock := newFakeClock()
	k := newKeyedLimiter(1, 1, 1000, nil)
	if ok, _ := k.allow(clock.Now(), "a.com"); !ok {
		t.Fatal()
	}
	// a.com is empty: the request naming a.com and b.com is refused and b.com keeps its token.
	if ok, _ := k.allow(clock.Now(), "b.com", "a.com"); ok {
		t.Fatal("request for an exhausted site passed")
	}
	if ok, _ := k.allow(clock.Now(), "b.com"); !ok {
		t.Fatal("a refused multi-site request took b.com's token")
	}
}

func TestLimiterBoundedWithIdleEviction(t *testing.T) {
	clock := newFakeClock()
	evicted := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	k := newKeyedLimiter(10, 10, 160, evicted) // 10 per shard; refills in 1s, idle after 2s
	for i := 0; i < 2000; i++ {
		k.allow(clock.Now(), fmt.Sprint("10.0.", i/256, ".", i%256))
	}
	if n := k.size(); n > 160 {
		t.Fatalf("%d buckets kept, bound 160", n)
	}
	if value(mustMetric(t, evicted)) == 0 {
		t.Fatal("live buckets dropped at the bound were not counted")
	}
	// Buckets that have refilled are dropped as traffic passes, and that is not counted.
	before := value(mustMetric(t, evicted))
	clock.Advance(3 * time.Second)
	for i := 0; i < 100; i++ {
		k.allow(clock.Now(), "hot")
	}
	if value(mustMetric(t, evicted)) != before {
		t.Fatal("idle evictions counted as forced")
	}
	// An exhausted key stays limited while it is live, whatever else happens.
	for i := 0; i < 10; i++ {
		k.allow(clock.Now(), "hot")
	}
	for i := 0; i < 5; i++ {
		k.allow(clock.Now(), fmt.Sprint("other-", i))
	}
	if ok, _ := k.allow(clock.Now(), "hot"); ok {
		t.Fatal("exhausted key passed")
	}
}

func TestNoLimit(t *testing.T) {
	var k *keyedLimiter = newKeyedLimiter(0, 10, 100, nil)
	if k != nil {
		t.Fatal("rate 0 should give no limiter")
	}
	if ok, _ := k.allow(time.Now(), "x"); !ok {
		t.Fatal("nil limiter refused")
	}
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7",
		"::ffff:198.51.100.7":  "198.51.100.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"::1":                  "::/64",
	} {
		if got := ipKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("ipKey(%s) = %s, want %s", in, got, want)
		}
	}
	if ipKey(netip.Addr{}) != "" {
		t.Error("invalid address has a key")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 90 * time.Second: 90, 1<<63 - 1: 3600} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
