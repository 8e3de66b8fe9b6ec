package collector

import (
	"net/netip"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

const benchBody = `{"n":"pageview","u":"https://www.example.com/blog/going-cookieless?utm_source=newsletter&utm_medium=email&utm_campaign=spring","d":"example.com","r":"https://www.google.com/","p":{"author":"ann","words":1200},"w":1440}`

// BenchmarkDecodeEnrich is the CPU work of one beacon before the bus: decode and validate the
// body, classify the User-Agent (cached), normalise the page, derive the source, encode.
func BenchmarkDecodeEnrich(b *testing.B) {
	ua := NewUAParser(1000)
	body := []byte(benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		bc, err := DecodeBeacon(body, 10)
		if err != nil {
			b.Fatal(err)
		}
		e := enrich(bc, ua.Parse(chromeMac), day0.UnixMilli())
		e.Site, e.VisitorID = bc.Sites[0], 42
		if _, err := event.Encode(&e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisitorID is the daily-salted hash of (site, IP, User-Agent).
func BenchmarkVisitorID(b *testing.B) {
	k := sipKey{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	ip := netip.MustParseAddr("203.0.113.7")
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink += cookielessID(k, "example.com", ip, chromeMac)
	}
	_ = sink
}

// BenchmarkUAParse compares a cache hit with a full parse.
func BenchmarkUAParse(b *testing.B) {
	b.Run("cached", func(b *testing.B) {
		p := NewUAParser(1000)
		b.ReportAllocs()
		for b.Loop() {
			p.Parse(chromeMac)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ParseUserAgent(chromeMac)
		}
	})
}

// BenchmarkHandler is a whole POST /api/event against a bus that returns at once.
func BenchmarkHandler(b *testing.B) {
	h := newHarness(b)
	h.bus.discard = true
	b.ReportAllocs()
	for b.Loop() {
		if w := h.post(benchBody); w.Code != 202 {
			b.Fatal(w.Code, w.Body)
		}
	}
}
