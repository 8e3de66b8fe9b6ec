package collector

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"

	"github.com/mileusna/useragent"
)

// UserAgent is what the collector keeps of a User-Agent header.
type UserAgent struct {
	Browser        string // "Chrome", "Firefox", "Safari", ...; "" when unknown
	BrowserVersion string // major.minor, "124.0"
	OS             string // "Windows", "macOS", "iOS", "Android", "Linux", ...
	OSVersion      string // major.minor ("17.4"); Windows by name ("10", "8.1", "7", "XP")
	Device         string // "Desktop", "Mobile", "Tablet"; "" when unknown
	Bot            bool   // crawler, headless browser, HTTP library or empty User-Agent
}

// Device classes.
const (
	DeviceDesktop = "Desktop"
	DeviceMobile  = "Mobile"
	DeviceTablet  = "Tablet"
)

const (
	maxUAParseLen  = 1024 // longer headers are parsed by their first bytes only
	maxUACachedLen = 512  // longer headers are parsed every time instead of cached
	maxUANameLen   = 64   // browser and OS names and versions are cut to this
)

// ParseUserAgent classifies a User-Agent header with github.com/mileusna/useragent, plus
// the bot signatures that library does not know. It is pure and safe for concurrent use;
// UAParser adds a cache in front of it.
func ParseUserAgent(s string) UserAgent {
	s = strings.TrimSpace(s)
	if s == "" {
		return UserAgent{Bot: true}
	}
	if len(s) > maxUAParseLen {
		s = s[:maxUAParseLen]
	}
	ua := useragent.Parse(s)
	out := UserAgent{Bot: ua.Bot || looksLikeBot(s)}
	if ua.Name != s { // the library names an unknown agent by the whole string
		out.Browser = truncate(ua.Name, maxUANameLen)
		out.BrowserVersion = majorMinor(ua.VersionNo)
	}
	out.OS = truncate(ua.OS, maxUANameLen)
	if ua.OS == useragent.Windows {
		out.OSVersion = windowsVersion(ua.OSVersion)
	} else {
		out.OSVersion = majorMinor(ua.OSVersionNo)
	}
	switch {
	case ua.Tablet || ua.OS == useragent.Android && !strings.Contains(s, "Mobile"):
		// Android browsers say "Mobile" on phones only.
		out.Device = DeviceTablet
	case ua.Mobile:
		out.Device = DeviceMobile
	case ua.Desktop:
		out.Device = DeviceDesktop
	}
	return out
}

func majorMinor(v useragent.VersionNo) string {
	if v.Major == 0 && v.Minor == 0 && v.Patch == 0 {
		return ""
	}
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
}

// windowsVersion names a Windows NT version the way users know it. Windows 11 still says
// "NT 10.0", so it is reported as "10".
func windowsVersion(nt string) string {
	switch nt {
	case "10.0":
		return "10"
	case "6.3":
		return "8.1"
	case "6.2":
		return "8"
	case "6.1":
		return "7"
	case "6.0":
		return "Vista"
	case "5.1", "5.2":
		return "XP"
	}
	return truncate(nt, maxUANameLen)
}

// botSignatures are lowercase substrings of agents that are not people: crawlers and link
// previewers the library misses, headless and automated browsers, HTTP libraries and
// monitoring services.
var botSignatures = []string{
	"bot", "crawl", "spider", "slurp", "scraper", "archiver", "headless", "phantomjs",
	"selenium", "webdriver", "puppeteer", "playwright", "cypress", "lighthouse",
	"pagespeed", "pingdom", "uptime", "statuscake", "gtmetrix", "site24x7", "monitor",
	"preview", "facebookexternalhit", "facebookcatalog", "mediapartners", "feedfetcher",
	"curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp",
	"go-http-client", "okhttp", "java/", "apache-httpclient", "libwww-perl", "node-fetch",
	"axios/", "undici", "httpclient", "scrapy", "guzzlehttp", "postmanruntime", "insomnia",
	"whatsapp/", "validator", "checker",
}

// humanBotLookalikes contain "bot" but are real devices.
var humanBotLookalikes = []string{"cubot"}

func looksLikeBot(s string) bool {
	ls := lowerASCII(s)
	for _, sig := range botSignatures {
		if strings.Contains(ls, sig) {
			if sig == "bot" && containsAny(ls, humanBotLookalikes) && strings.Count(ls, "bot") == 1 {
				continue
			}
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

// UAParser is ParseUserAgent behind a bounded, concurrency-safe cache. User-Agent strings
// repeat a lot, so most requests are a map lookup. The cache is split into shards, each a
// map that is emptied when it reaches its share of the size: no per-entry bookkeeping on the
// hot path, and a full reset costs one re-parse per agent still in use.
type UAParser struct {
	seed     maphash.Seed
	perShard int
	shards   [uaShards]uaShard
}

const uaShards = 16

type uaShard struct {
	mu sync.RWMutex
	m  map[string]UserAgent
}

// NewUAParser returns a parser that caches up to size distinct agents (0: no cache).
func NewUAParser(size int) *UAParser {
	p := &UAParser{seed: maphash.MakeSeed(), perShard: (size + uaShards - 1) / uaShards}
	if size > 0 {
		for i := range p.shards {
			p.shards[i].m = make(map[string]UserAgent, min(p.perShard, 1024))
		}
	}
	return p
}

// Parse returns ParseUserAgent(s), from the cache when it can.
func (p *UAParser) Parse(s string) UserAgent {
	if p.perShard == 0 || len(s) > maxUACachedLen {
		return ParseUserAgent(s)
	}
	sh := &p.shards[maphash.String(p.seed, s)%uaShards]
	sh.mu.RLock()
	ua, ok := sh.m[s]
	sh.mu.RUnlock()
	if ok {
		return ua
	}
	ua = ParseUserAgent(s)
	sh.mu.Lock()
	if len(sh.m) >= p.perShard {
		clear(sh.m)
	}
	sh.m[strings.Clone(s)] = ua
	sh.mu.Unlock()
	return ua
}
