package collector

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
)

// NormalizeSite turns a site id as a sender may write it ("https://www.Example.com/") into
// its canonical form ("example.com"): trimmed, lowercased, without scheme, "www." prefix or
// trailing slash or dot. It rejects empty ids, ids longer than event.MaxSiteLen and ids with
// characters no domain has (spaces, control characters, / ? # @ \ , "). It is
// sites.NormalizeDomain, so the site list and the collector agree on every id.
func NormalizeSite(s string) (string, error) { return sites.NormalizeDomain(s) }

// page is the part of an event that comes from the page URL.
type page struct {
	Hostname string
	Path     string
	UTM      [5]string // source, medium, campaign, term, content
	// refParam is the first non-empty of utm_source, source and ref: the source override.
	refParam string
}

// parsePageURL parses the "u" field. It fails on strings that are not absolute URLs.
func parsePageURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	if u.Scheme == "" {
		return nil, errors.New("it has no scheme")
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return nil, errors.New("it has no host")
	}
	return u, nil
}

// pageOf normalises a parsed page URL.
func pageOf(u *url.URL, hashRouting bool) page {
	p := page{Hostname: normalizeHost(u.Hostname())}
	path := u.EscapedPath()
	if u.Opaque != "" && path == "" {
		path = "/"
	}
	path = unescapeSafe(path)
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	if hashRouting && u.Fragment != "" {
		path += "#" + unescapeSafe(u.EscapedFragment())
	}
	p.Path = truncate(path, event.MaxPathLen)
	if u.RawQuery != "" {
		p.UTM, p.refParam = queryParams(u.RawQuery)
	}
	return p
}

// queryParams extracts utm_* and the source override (utm_source, source or ref) from a raw
// query string without building a url.Values map.
func queryParams(q string) (utm [5]string, refParam string) {
	var source, ref string
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		var slot *string
		switch k {
		case "utm_source":
			slot = &utm[0]
		case "utm_medium":
			slot = &utm[1]
		case "utm_campaign":
			slot = &utm[2]
		case "utm_term":
			slot = &utm[3]
		case "utm_content":
			slot = &utm[4]
		case "source":
			slot = &source
		case "ref":
			slot = &ref
		default:
			continue
		}
		if *slot != "" {
			continue // the first occurrence wins, as url.Values.Get does
		}
		if d, err := url.QueryUnescape(v); err == nil {
			v = d
		}
		v = strings.TrimSpace(v)
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "")
		}
		*slot = truncate(v, event.MaxPropValLen)
	}
	switch {
	case utm[0] != "":
		refParam = utm[0]
	case source != "":
		refParam = source
	default:
		refParam = ref
	}
	return utm, refParam
}

// normalizeHost lowercases a hostname and drops "www." and a trailing dot.
func normalizeHost(h string) string {
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
			h = strings.ToLower(h)
			break
		}
	}
	h = strings.TrimSuffix(h, ".")
	return strings.TrimPrefix(h, "www.")
}

// unescapeSafe decodes the percent-escapes of an escaped URL path or fragment, except those
// whose decoding would change its structure or hide something (/, ?, #, %, \, control
// characters); those are kept, with upper-case hex. When decoding would produce invalid
// UTF-8 the escaped form is returned unchanged.
func unescapeSafe(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteByte(c)
			continue
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		if v < 0x20 || v == 0x7f || v == '/' || v == '?' || v == '#' || v == '%' || v == '\\' {
			const hexDigits = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hexDigits[v>>4])
			b.WriteByte(hexDigits[v&15])
		} else {
			b.WriteByte(v)
		}
		i += 2
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return s
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence or a
// percent-escape.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	s = s[:n]
	if i := strings.LastIndexByte(s, '%'); i >= 0 && i >= len(s)-2 {
		s = s[:i]
	}
	return s
}
