package collector

import (
	"net/url"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// SourceOf returns the traffic source and the referrer of a page view, the way Plausible
// derives them:
//
//   - referrer is the referrer URL's host (lowercased, without "www.") and path, without
//     query string, fragment or trailing slash ("news.ycombinator.com/item"). It is empty for
//     direct traffic, for referrers that are not http(s) or android-app URLs, and for
//     self-referrals (the referrer's host is the page's host).
//   - source is, in order: the page URL's utm_source, source or ref query parameter (known
//     names and aliases such as "fb" or "google.com" are canonicalised to "Facebook",
//     "Google"); the well-known name of the referrer's host ("Google", "Hacker News", ...);
//     or the referrer's host itself. Empty means Direct / None.
func SourceOf(referrerURL, pageURL string) (source, referrer string) {
	var pageHost, refParam string
	if u, err := url.Parse(pageURL); err == nil {
		pageHost = normalizeHost(u.Hostname())
		if u.RawQuery != "" {
			_, refParam = queryParams(u.RawQuery)
		}
	}
	return sourceOf(referrerURL, pageHost, refParam)
}

// sourceOf is SourceOf for a page already parsed.
func sourceOf(rawRef, pageHost, refParam string) (source, referrer string) {
	var refHost string
	if rawRef != "" {
		refHost, referrer = parseReferrer(rawRef)
		if refHost != "" && refHost == pageHost {
			refHost, referrer = "", ""
		}
	}
	if refParam != "" {
		return canonicalSourceParam(refParam), referrer
	}
	if refHost == "" {
		return "", referrer
	}
	if name := sourceName(refHost); name != "" {
		return name, referrer
	}
	return refHost, referrer
}

// parseReferrer returns the normalised host of a referrer URL and its host+path form. Both
// are empty when the referrer is unusable.
func parseReferrer(raw string) (host, referrer string) {
	raw = strings.TrimSpace(raw)
	rawHost, path, ok := splitPlainReferrer(raw)
	if !ok {
		if rawHost, path, ok = splitReferrerURL(raw); !ok {
			return "", ""
		}
	}
	host = normalizeHost(rawHost)
	if host == "" {
		return "", ""
	}
	path = strings.TrimRight(path, "/")
	return host, truncate(host+path, event.MaxURLLen)
}

// splitReferrerURL returns the host and the safely unescaped path of an http(s) or
// android-app URL, by url.Parse.
func splitReferrerURL(raw string) (host, path string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "android-app":
	default:
		return "", "", false
	}
	return u.Hostname(), unescapeSafe(u.EscapedPath()), true
}

// splitPlainReferrer is splitReferrerURL without url.Parse, which allocates a URL per call,
// for the referrers nearly every beacon carries ("https://www.google.com/"). It takes only
// URLs on which both agree, and reports ok == false for anything else: a lower-case http or
// https scheme; a host of ASCII letters, digits, dots and hyphens; a path of those,
// underscores, tildes and slashes (nothing to unescape); then nothing, or a query or
// fragment without control characters and percent signs (which url.Parse would check).
func splitPlainReferrer(raw string) (host, path string, ok bool) {
	rest, found := strings.CutPrefix(raw, "https://")
	if !found {
		if rest, found = strings.CutPrefix(raw, "http://"); !found {
			return "", "", false
		}
	}
	i := 0
	for i < len(rest) && isPlainHostByte(rest[i]) {
		i++
	}
	if i == 0 || i < len(rest) && rest[i] != '/' && rest[i] != '?' && rest[i] != '#' {
		return "", "", false
	}
	j := i
	for j < len(rest) && (isPlainHostByte(rest[j]) || rest[j] == '/' || rest[j] == '_' || rest[j] == '~') {
		j++
	}
	if tail := rest[j:]; tail != "" {
		if tail[0] != '?' && tail[0] != '#' {
			return "", "", false
		}
		for k := 0; k < len(tail); k++ {
			if c := tail[k]; c < 0x20 || c == 0x7f || c == '%' {
				return "", "", false
			}
		}
	}
	return rest[:i], rest[i:j], true
}

func isPlainHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// sourceName returns the well-known name of a referrer host, or "".
func sourceName(host string) string {
	// Exact host, then ever shorter parent domains: m.facebook.com → facebook.com.
	for h := host; h != ""; {
		if name, ok := sourceHosts[h]; ok {
			return name
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	// Brands with a domain per country: google.co.uk, yandex.ru, search.yahoo.co.jp.
	labels := strings.Split(host, ".")
	for i, l := range labels {
		name, ok := sourceBrands[l]
		if !ok || i == len(labels)-1 {
			continue
		}
		if isCountrySuffix(labels[i+1:]) {
			return name
		}
	}
	return ""
}

// isCountrySuffix reports whether labels look like a public suffix: "com", "de", "co.uk",
// "com.br".
func isCountrySuffix(labels []string) bool {
	switch len(labels) {
	case 1:
		return len(labels[0]) == 2 || labels[0] == "com" || labels[0] == "org" || labels[0] == "net"
	case 2:
		switch labels[0] {
		case "co", "com", "org", "net", "ne", "or", "ac", "gov", "edu":
			return len(labels[1]) == 2
		}
	}
	return false
}

// canonicalSourceParam maps a utm_source/source/ref value to a well-known source name when it
// names one ("google", "fb", "news.ycombinator.com"), and otherwise returns it unchanged.
func canonicalSourceParam(v string) string {
	lv := strings.ToLower(v)
	if name, ok := sourceAliases[lv]; ok {
		return name
	}
	if strings.IndexByte(lv, '.') > 0 && !strings.ContainsAny(lv, " /") {
		if name := sourceName(normalizeHost(lv)); name != "" {
			return name
		}
	}
	return v
}

// sourceHosts maps referrer hosts (and, through parent-domain lookup, their subdomains) to
// source names.
var sourceHosts = map[string]string{
	// Search
	"duckduckgo.com":        "DuckDuckGo",
	"bing.com":              "Bing",
	"cn.bing.com":           "Bing",
	"search.yahoo.com":      "Yahoo!",
	"yahoo.com":             "Yahoo!",
	"ya.ru":                 "Yandex",
	"baidu.com":             "Baidu",
	"m.baidu.com":           "Baidu",
	"ecosia.org":            "Ecosia",
	"qwant.com":             "Qwant",
	"startpage.com":         "Startpage",
	"search.brave.com":      "Brave",
	"naver.com":             "Naver",
	"seznam.cz":             "Seznam",
	"sogou.com":             "Sogou",
	"so.com":                "360 Search",
	"ask.com":               "Ask",
	"aol.com":               "AOL",
	"kagi.com":              "Kagi",
	"perplexity.ai":         "Perplexity",
	"chatgpt.com":           "ChatGPT",
	"chat.openai.com":       "ChatGPT",
	"gemini.google.com":     "Gemini",
	"copilot.microsoft.com": "Microsoft Copilot",
	"mail.google.com":       "Gmail",
	"news.google.com":       "Google News",
	"com.google.android.gm": "Gmail",
	"com.google.android.googlequicksearchbox": "Google",

	// Social and communities
	"facebook.com":               "Facebook",
	"fb.com":                     "Facebook",
	"fb.me":                      "Facebook",
	"messenger.com":              "Facebook Messenger",
	"com.facebook.katana":        "Facebook",
	"t.co":                       "Twitter",
	"twitter.com":                "Twitter",
	"x.com":                      "Twitter",
	"com.twitter.android":        "Twitter",
	"linkedin.com":               "LinkedIn",
	"lnkd.in":                    "LinkedIn",
	"com.linkedin.android":       "LinkedIn",
	"reddit.com":                 "Reddit",
	"redd.it":                    "Reddit",
	"com.reddit.frontpage":       "Reddit",
	"instagram.com":              "Instagram",
	"youtube.com":                "YouTube",
	"youtu.be":                   "YouTube",
	"com.google.android.youtube": "YouTube",
	"github.com":                 "GitHub",
	"gitlab.com":                 "GitLab",
	"news.ycombinator.com":       "Hacker News",
	"wikipedia.org":              "Wikipedia",
	"pinterest.com":              "Pinterest",
	"pin.it":                     "Pinterest",
	"tiktok.com":                 "TikTok",
	"threads.net":                "Threads",
	"threads.com":                "Threads",
	"bsky.app":                   "Bluesky",
	"mastodon.social":            "Mastodon",
	"quora.com":                  "Quora",
	"medium.com":                 "Medium",
	"substack.com":               "Substack",
	"stackoverflow.com":          "Stack Overflow",
	"stackexchange.com":          "Stack Exchange",
	"producthunt.com":            "Product Hunt",
	"lobste.rs":                  "Lobsters",
	"dev.to":                     "DEV Community",
	"vk.com":                     "VKontakte",
	"t.me":                       "Telegram",
	"web.telegram.org":           "Telegram",
	"org.telegram.messenger":     "Telegram",
	"whatsapp.com":               "WhatsApp",
	"discord.com":                "Discord",
	"discordapp.com":             "Discord",
	"slack.com":                  "Slack",
	"com.slack":                  "Slack",
	"teams.microsoft.com":        "Microsoft Teams",
	"outlook.live.com":           "Outlook.com",
	"outlook.office.com":         "Outlook.com",
	"outlook.office365.com":      "Outlook.com",
	"mail.yahoo.com":             "Yahoo! Mail",
	"weibo.com":                  "Sina Weibo",
	"xing.com":                   "XING",
	"tumblr.com":                 "Tumblr",
	"flipboard.com":              "Flipboard",
	"feedly.com":                 "Feedly",
	"indiehackers.com":           "Indie Hackers",
}

// sourceBrands are second-level labels that name a source under any country suffix.
var sourceBrands = map[string]string{
	"google":     "Google",
	"bing":       "Bing",
	"yahoo":      "Yahoo!",
	"yandex":     "Yandex",
	"baidu":      "Baidu",
	"duckduckgo": "DuckDuckGo",
	"ecosia":     "Ecosia",
	"facebook":   "Facebook",
	"linkedin":   "LinkedIn",
	"instagram":  "Instagram",
	"youtube":    "YouTube",
	"pinterest":  "Pinterest",
	"reddit":     "Reddit",
	"naver":      "Naver",
	"qwant":      "Qwant",
}

// sourceAliases maps lowercased utm_source values to source names.
var sourceAliases = func() map[string]string {
	m := map[string]string{
		"fb":            "Facebook",
		"ig":            "Instagram",
		"yt":            "YouTube",
		"li":            "LinkedIn",
		"tw":            "Twitter",
		"hn":            "Hacker News",
		"hackernews":    "Hacker News",
		"ddg":           "DuckDuckGo",
		"gh":            "GitHub",
		"wiki":          "Wikipedia",
		"yandex.ru":     "Yandex",
		"google.com":    "Google",
		"stackoverflow": "Stack Overflow",
		"producthunt":   "Product Hunt",
	}
	// Every known name stands for itself, whatever its case ("google" → "Google").
	for _, t := range []map[string]string{sourceHosts, sourceBrands} {
		for _, name := range t {
			m[strings.ToLower(name)] = name
		}
	}
	return m
}()
