package collector

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

func TestParseUserAgent(t *testing.T) {
	cases := []struct {
		ua   string
		want UserAgent
	}{
		{chromeMac, UserAgent{Browser: "Chrome", BrowserVersion: "124.0", OS: "macOS", OSVersion: "10.15", Device: "Desktop"}},
		{safariIOS, UserAgent{Browser: "Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", Device: "Mobile"}},
		{firefoxWin, UserAgent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
			UserAgent{Browser: "Chrome", BrowserVersion: "109.0", OS: "Windows", OSVersion: "7", Device: "Desktop"}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
			UserAgent{Browser: "Edge", BrowserVersion: "124.0", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
			UserAgent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Android", OSVersion: "14.0", Device: "Mobile"}},
		{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			UserAgent{Browser: "Safari", BrowserVersion: "17.4", OS: "iOS", OSVersion: "17.4", Device: "Tablet"}},
		{"Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			UserAgent{Browser: "Chrome", BrowserVersion: "124.0", OS: "Android", OSVersion: "13.0", Device: "Tablet"}},
		{"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
			UserAgent{Browser: "Samsung Browser", BrowserVersion: "24.0", OS: "Android", OSVersion: "14.0", Device: "Mobile"}},
		{"Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
			UserAgent{Browser: "Chrome", BrowserVersion: "120.0", OS: "Android", OSVersion: "10.0", Device: "Mobile"}},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			UserAgent{Browser: "Firefox", BrowserVersion: "125.0", OS: "Linux", Device: "Desktop"}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
			UserAgent{Browser: "Opera", BrowserVersion: "109.0", OS: "Windows", OSVersion: "10", Device: "Desktop"}},
		{"Mozilla/5.0", UserAgent{}},
		// Bots.
		{"", UserAgent{Bot: true}},
		{"   ", UserAgent{Bot: true}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", UserAgent{Browser: "Googlebot", BrowserVersion: "2.1", Bot: true}},
		{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", UserAgent{Browser: "Bingbot", BrowserVersion: "2.0", Bot: true}},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", UserAgent{Browser: "GPTBot", BrowserVersion: "1.2", Bot: true}},
		{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", UserAgent{Browser: "facebookexternalhit", BrowserVersion: "1.1", Bot: true}},
		{"python-requests/2.31.0", UserAgent{Browser: "python-requests", BrowserVersion: "2.31", Bot: true}},
		{"Go-http-client/1.1", UserAgent{Browser: "Go-http-client", BrowserVersion: "1.1", Bot: true}},
		{"curl/8.5.0", UserAgent{Browser: "curl", BrowserVersion: "8.5", Bot: true}},
		{"Wget/1.21.4", UserAgent{Browser: "Wget", BrowserVersion: "1.21", Bot: true}},
	}
	for _, tc := range cases {
		if got := ParseUserAgent(tc.ua); got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.ua, got, tc.want)
		}
	}
	// Automation that looks like a browser.
	for _, ua := range []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Lighthouse",
		"Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
		"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
		"Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
		"Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
		"Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
		"WhatsApp/2.23.20.0",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
	} {
		if !ParseUserAgent(ua).Bot {
			t.Errorf("%q is not flagged as a bot", ua)
		}
	}
	long := "Mozilla/5.0 (Windows NT 10.0) " + strings.Repeat("X", 5000)
	if got := ParseUserAgent(long); len(got.Browser) > maxUANameLen {
		t.Errorf("browser name of a huge agent is %d bytes", len(got.Browser))
	}
}

func TestUAParserCache(t *testing.T) {
	p := NewUAParser(32)
	if got, want := p.Parse(chromeMac), ParseUserAgent(chromeMac); got != want {
		t.Fatalf("cached %+v; want %+v", got, want)
	}
	// Many distinct agents from many goroutines: results stay right, size stays bounded.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ua := fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0) Chrome/%d.%d Safari/537.36", g+1, i)
				if got := p.Parse(ua); got.BrowserVersion != fmt.Sprintf("%d.%d", g+1, i) {
					t.Errorf("%q: %+v", ua, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range p.shards {
		if n := len(p.shards[i].m); n > p.perShard {
			t.Errorf("shard %d holds %d entries; bound %d", i, n, p.perShard)
		}
	}
	if got := NewUAParser(0).Parse(safariIOS); got.Browser != "Safari" {
		t.Errorf("uncached parser: %+v", got)
	}
}

func TestSourceOf(t *testing.T) {
	const page = "https://example.com/pricing"
	cases := []struct {
		ref, page           string
		wantSource, wantRef string
	}{
		{"", page, "", ""},
		{"https://www.google.com/", page, "Google", "google.com"},
		{"https://www.google.co.uk/search?q=glimpse", page, "Google", "google.co.uk/search"},
		{"https://google.de", page, "Google", "google.de"},
		{"https://www.google.com.br/", page, "Google", "google.com.br"},
		{"android-app://com.google.android.googlequicksearchbox/", page, "Google", "com.google.android.googlequicksearchbox"},
		{"https://mail.google.com/mail/u/0/", page, "Gmail", "mail.google.com/mail/u/0"},
		{"https://www.bing.com/search?q=x", page, "Bing", "bing.com/search"},
		{"https://duckduckgo.com/", page, "DuckDuckGo", "duckduckgo.com"},
		{"https://search.yahoo.co.jp/", page, "Yahoo!", "search.yahoo.co.jp"},
		{"https://yandex.ru/search/?text=x", page, "Yandex", "yandex.ru/search"},
		{"https://www.baidu.com/link?url=x", page, "Baidu", "baidu.com/link"},
		{"https://www.ecosia.org/search?q=x", page, "Ecosia", "ecosia.org/search"},
		{"https://m.facebook.com/", page, "Facebook", "m.facebook.com"},
		{"https://l.facebook.com/l.php?u=x", page, "Facebook", "l.facebook.com/l.php"},
		{"https://t.co/abc123", page, "Twitter", "t.co/abc123"},
		{"https://x.com/someone/status/1", page, "Twitter", "x.com/someone/status/1"},
		{"https://twitter.com/", page, "Twitter", "twitter.com"},
		{"https://www.linkedin.com/feed/", page, "LinkedIn", "linkedin.com/feed"},
		{"https://old.reddit.com/r/golang/", page, "Reddit", "old.reddit.com/r/golang"},
		{"https://l.instagram.com/", page, "Instagram", "l.instagram.com"},
		{"https://www.youtube.com/watch?v=1", page, "YouTube", "youtube.com/watch"},
		{"https://github.com/glimpse-analytics/glimpse", page, "GitHub", "github.com/glimpse-analytics/glimpse"},
		{"https://news.ycombinator.com/item?id=1", page, "Hacker News", "news.ycombinator.com/item"},
		{"https://en.m.wikipedia.org/wiki/Web_analytics", page, "Wikipedia", "en.m.wikipedia.org/wiki/Web_analytics"},
		{"https://WWW.Some-Blog.dev/posts/1/?utm=1#top", page, "some-blog.dev", "some-blog.dev/posts/1"},
		{"https://blog.example.com/", page, "blog.example.com", "blog.example.com"},
		{"https://google.evil.com/", page, "google.evil.com", "google.evil.com"},
		// Self-referrals: internal navigation is not a source.
		{"https://example.com/", page, "", ""},
		{"https://www.example.com/features", page, "", ""},
		{"https://www.example.com/features", "https://WWW.EXAMPLE.COM/x", "", ""},
		// Unusable referrers.
		{"about:blank", page, "", ""},
		{"file:///C:/index.html", page, "", ""},
		{"chrome-extension://abcdef/popup.html", page, "", ""},
		{"not a url at all", page, "", ""},
		{"https://%zz/", page, "", ""},
		// utm_source (or source, ref) overrides the source, canonicalised when known.
		{"https://www.google.com/", page + "?utm_source=newsletter&utm_medium=email", "newsletter", "google.com"},
		{"", page + "?utm_source=fb", "Facebook", ""},
		{"", page + "?utm_source=GOOGLE", "Google", ""},
		{"", page + "?utm_source=news.ycombinator.com", "Hacker News", ""},
		{"", page + "?ref=producthunt", "Product Hunt", ""},
		{"", page + "?source=my%20podcast", "my podcast", ""},
		{"", page + "?ref=a&utm_source=b&source=c", "b", ""},
		{"", page + "?source=c&ref=a", "c", ""},
		{"https://example.com/", page + "?utm_source=newsletter", "newsletter", ""},
		{"", page + "?utm_source=", "", ""},
	}
	for _, tc := range cases {
		src, ref := SourceOf(tc.ref, tc.page)
		if src != tc.wantSource || ref != tc.wantRef {
			t.Errorf("SourceOf(%q, %q) = %q, %q; want %q, %q", tc.ref, tc.page, src, ref, tc.wantSource, tc.wantRef)
		}
	}
}

func TestPageNormalisation(t *testing.T) {
	cases := []struct {
		url  string
		hash bool
		host string
		path string
		utm  [5]string
	}{
		{"https://example.com", false, "example.com", "/", [5]string{}},
		{"https://WWW.Example.COM./Docs/?q=1", false, "example.com", "/Docs/", [5]string{}},
		{"https://example.com:8443/a/b", false, "example.com", "/a/b", [5]string{}},
		{"http://[::1]:8080/x", false, "::1", "/x", [5]string{}},
		{"https://www.example.com/caf%C3%A9/men%C3%BC", false, "example.com", "/café/menü", [5]string{}},
		{"https://example.com/a%20b", false, "example.com", "/a b", [5]string{}},
		{"https://example.com/a%2Fb%2fc%3F%23%25", false, "example.com", "/a%2Fb%2Fc%3F%23%25", [5]string{}},
		{"https://example.com/%00x%0A", false, "example.com", "/%00x%0A", [5]string{}},
		{"https://example.com/%FF%FE", false, "example.com", "/%FF%FE", [5]string{}},
		{"https://example.com/#/route", false, "example.com", "/", [5]string{}},
		{"https://example.com/#/route", true, "example.com", "/#/route", [5]string{}},
		{"https://example.com/app#", true, "example.com", "/app", [5]string{}},
		{"https://example.com/app#/caf%C3%A9", true, "example.com", "/app#/café", [5]string{}},
		{"https://example.com/?utm_source=Twitter&utm_medium=social&utm_campaign=launch%20day&utm_term=go+analytics&utm_content=hero&utm_source=ignored",
			false, "example.com", "/", [5]string{"Twitter", "social", "launch day", "go analytics", "hero"}},
		{"app://local/screen/settings", false, "local", "/screen/settings", [5]string{}},
		{"mailto:someone@example.com", false, "", "/", [5]string{}},
	}
	for _, tc := range cases {
		u, err := parsePageURL(tc.url)
		if err != nil {
			t.Errorf("%q: %v", tc.url, err)
			continue
		}
		p := pageOf(u, tc.hash)
		if p.Hostname != tc.host || p.Path != tc.path || p.UTM != tc.utm {
			t.Errorf("%q (h=%v): host %q path %q utm %q; want %q %q %q", tc.url, tc.hash, p.Hostname, p.Path, p.UTM, tc.host, tc.path, tc.utm)
		}
	}

	// A long path is cut to the limit without splitting a character or an escape.
	u, _ := parsePageURL("https://example.com/" + strings.Repeat("é", 600))
	if p := pageOf(u, false); len(p.Path) > event.MaxPathLen || !strings.HasSuffix(p.Path, "é") {
		t.Errorf("long path: %d bytes, ends %q", len(p.Path), p.Path[len(p.Path)-4:])
	}
	u, _ = parsePageURL("https://example.com/" + strings.Repeat("%2F", 600))
	if p := pageOf(u, false); len(p.Path) > event.MaxPathLen || !strings.HasSuffix(p.Path, "%2F") {
		t.Errorf("long escaped path: %d bytes, ends %q", len(p.Path), p.Path[len(p.Path)-4:])
	}
}

func TestNormalizeSite(t *testing.T) {
	good := map[string]string{
		"example.com":               "example.com",
		"  Example.COM ":            "example.com",
		"www.example.com":           "example.com",
		"https://www.example.com/":  "example.com",
		"http://shop.example.co.uk": "shop.example.co.uk",
		"example.com.":              "example.com",
		"localhost:3000":            "localhost:3000",
		"bücher.de":                 "bücher.de",
	}
	for in, want := range good {
		if got, err := NormalizeSite(in); err != nil || got != want {
			t.Errorf("NormalizeSite(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", " ", "www.", "https://", "exa mple.com", "example.com/blog", "a@b.com", "a\x00b", strings.Repeat("a", 256)} {
		if got, err := NormalizeSite(in); err == nil {
			t.Errorf("NormalizeSite(%q) = %q; want an error", in, got)
		}
	}
}

func TestNormalizeAmount(t *testing.T) {
	good := map[string]string{"9.99": "9.99", "10": "10", "0.5": "0.5", "0019.90": "19.90", " 1 ": "1", ".5": "0.5",
		"123456789012345.123456": "123456789012345.123456"}
	for in, want := range good {
		if got, ok := normalizeAmount(in); !ok || got != want {
			t.Errorf("normalizeAmount(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "0.00", "-1", "+1", "1.", ".", "1e3", "1,5", "NaN", "Inf", "1.2.3", "1234567890123456", "1.1234567", "١"} {
		if got, ok := normalizeAmount(in); ok {
			t.Errorf("normalizeAmount(%q) = %q; want rejected", in, got)
		}
	}
}
