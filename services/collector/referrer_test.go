package collector

import (
	"testing"
)

// referrerSamples are referrers as beacons carry them, and ones that must take the
// url.Parse path.
var referrerSamples = []struct {
	raw   string
	plain bool // splitPlainReferrer takes it
}{
	{"https://www.google.com/", true},
	{"https://news.ycombinator.com/item?id=4242", true},
	{"http://example.com", true},
	{"https://Example.COM/Blog/Post-1/", true},
	{"https://t.co/abc_DEF~1", true},
	{"https://example.com/#top", true},
	{"https://example.com?q=a+b c", true},
	{"https://example.com/a/../b//c", true},
	{"https://a-b.example/x.html?utm_source=news#sec", true},
	{"HTTPS://example.com/", false},
	{"android-app://com.google.android.gm/", false},
	{"https://example.com:8080/", false},
	{"https://user@example.com/", false},
	{"https://example.com/caf%C3%A9", false},
	{"https://example.com/a%2Fb", false},
	{"https://example.com/?q=%zz", false},
	{"https://example.com/#%zz", false},
	{"https://example.com/a b", false},
	{"https://example.com/\x7f", false},
	{"https://example.com/?\x01", false},
	{"https://[::1]/", false},
	{"https:///path", false},
	{"https://", false},
	{"https://bücher.de/", false},
	{"https://example.com/ü", false},
	{"https://example.com/a,b;c=d", false},
	{"https://exa_mple.com/", false},
	{"https://example.com\\@evil.com/", false},
	{"ftp://example.com/", false},
	{"example.com/path", false},
	{"", false},
}

func TestSplitPlainReferrerAgreesWithURLParse(t *testing.T) {
	for _, s := range referrerSamples {
		host, path, ok := splitPlainReferrer(s.raw)
		if ok != s.plain {
			t.Errorf("splitPlainReferrer(%q) ok = %v, want %v", s.raw, ok, s.plain)
		}
		if !ok {
			continue
		}
		wantHost, wantPath, wantOK := splitReferrerURL(s.raw)
		if !wantOK || host != wantHost || path != wantPath {
			t.Errorf("splitPlainReferrer(%q) = %q, %q; url.Parse says %q, %q, %v", s.raw, host, path, wantHost, wantPath, wantOK)
		}
	}
}

func TestParseReferrerPlain(t *testing.T) {
	for _, c := range []struct{ raw, host, referrer string }{
		{"https://www.google.com/", "google.com", "google.com"},
		{"  https://News.YCombinator.com/item/?id=1  ", "news.ycombinator.com", "news.ycombinator.com/item"},
		{"http://example.com./a/b/", "example.com", "example.com/a/b"},
		{"https://example.com/caf%C3%A9/", "example.com", "example.com/café"},
		{"https://example.com:8443/x", "example.com", "example.com/x"},
		{"https:///x", "", ""},
		{"mailto:someone@example.com", "", ""},
	} {
		host, referrer := parseReferrer(c.raw)
		if host != c.host || referrer != c.referrer {
			t.Errorf("parseReferrer(%q) = %q, %q; want %q, %q", c.raw, host, referrer, c.host, c.referrer)
		}
	}
}

// The referrer nearly every beacon carries is split without allocating.
func TestParseReferrerPlainDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { parseReferrer("https://www.google.com/") }); n != 0 {
		t.Fatalf("parseReferrer allocates %v times for a plain referrer; want 0", n)
	}
}

// FuzzSplitPlainReferrer: whatever splitPlainReferrer takes, url.Parse splits the same way.
func FuzzSplitPlainReferrer(f *testing.F) {
	for _, s := range referrerSamples {
		f.Add(s.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		host, path, ok := splitPlainReferrer(raw)
		if !ok {
			return
		}
		wantHost, wantPath, wantOK := splitReferrerURL(raw)
		if !wantOK || host != wantHost || path != wantPath {
			t.Fatalf("splitPlainReferrer(%q) = %q, %q; url.Parse says %q, %q, %v", raw, host, path, wantHost, wantPath, wantOK)
		}
	})
}
