package gateway

import (
	"container/list"
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket per key (client address, site) in a bounded map.
//
// A bucket left alone for burst/rate is full again, exactly like a new one, so dropping it
// changes nothing: buckets idle that long are evicted as they reach the cold end of an LRU
// list. Only when more keys are live at once than the map may hold is a live bucket
// dropped (least recently used first, counted in a metric), which makes that key's limit
// briefly more lenient, never stricter.
type keyedLimiter struct {
	limit    rate.Limit
	burst    int
	idle     time.Duration
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
	evicted  prometheus.Counter // live buckets dropped because the map was full
}

const limiterShards = 16

type limiterShard struct {
	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // of *bucket, most recently used at the front
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	last time.Time
}

// newKeyedLimiter returns a limiter of perSecond requests with bursts of burst per key,
// keeping at most maxKeys buckets; nil (no limit) when perSecond ≤ 0.
func newKeyedLimiter(perSecond float64, burst, maxKeys int, evicted prometheus.Counter) *keyedLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst = max(burst, 1)
	k := &keyedLimiter{
		limit:    rate.Limit(perSecond),
		burst:    burst,
		idle:     time.Duration(math.Ceil(float64(burst)/perSecond*float64(time.Second))) + time.Second,
		perShard: max(maxKeys/limiterShards, 1),
		seed:     maphash.MakeSeed(),
		evicted:  evicted,
	}
	for i := range k.shards {
		k.shards[i].m = map[string]*list.Element{}
	}
	return k
}

// allow takes one token from the bucket of every key at now. If any bucket is empty no
// token is taken from any of them, and wait is how long until all would have one.
func (k *keyedLimiter) allow(now time.Time, keys ...string) (ok bool, wait time.Duration) {
	if k == nil || len(keys) == 0 {
		return true, 0
	}
	var buf [4]*rate.Reservation
	res := buf[:0]
	for _, key := range keys {
		r := k.reserve(now, key)
		res = append(res, r)
		if !r.OK() {
			wait = time.Duration(math.MaxInt64)
			break
		}
		wait = max(wait, r.DelayFrom(now))
	}
	if wait == 0 {
		return true, 0
	}
	for _, r := range res {
		r.CancelAt(now)
	}
	return false, wait
}

func (k *keyedLimiter) reserve(now time.Time, key string) *rate.Reservation {
	s := &k.shards[maphash.String(k.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *bucket
	if e, ok := s.m[key]; ok {
		b = e.Value.(*bucket)
		s.lru.MoveToFront(e)
	} else {
		b = &bucket{key: key, lim: rate.NewLimiter(k.limit, k.burst)}
		s.m[key] = s.lru.PushFront(b)
	}
	b.last = now
	// Drop what has gone idle at the cold end (a couple per call keeps this O(1)), then
	// whatever exceeds the bound.
	for i := 0; i < 2; i++ {
		e := s.lru.Back()
		if e == nil || e.Value.(*bucket) == b || now.Sub(e.Value.(*bucket).last) < k.idle {
			break
		}
		s.remove(e)
	}
	for len(s.m) > k.perShard {
		e := s.lru.Back()
		if e.Value.(*bucket) == b {
			break
		}
		s.remove(e)
		if k.evicted != nil {
			k.evicted.Inc()
		}
	}
	return b.lim.ReserveN(now, 1)
}

func (s *limiterShard) remove(e *list.Element) {
	delete(s.m, e.Value.(*bucket).key)
	s.lru.Remove(e)
}

// size returns the number of buckets held, for tests.
func (k *keyedLimiter) size() int {
	n := 0
	for i := range k.shards {
		k.shards[i].mu.Lock()
		n += len(k.shards[i].m)
		k.shards[i].mu.Unlock()
	}
	return n
}

// ipKey is the rate-limit key of a client address: the address itself for IPv4, its /64
// for IPv6 (one host usually owns a whole /64, and could otherwise rotate through it).
func ipKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1, for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	if d >= time.Hour || d < 0 {
		return 3600
	}
	return max(int(math.Ceil(d.Seconds())), 1)
}
