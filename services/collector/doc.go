// Package collector receives tracking beacons on POST /api/event, validates and enriches them
// and publishes one event.Event per site to the bus. It answers 202 only once the bus holds
// every event of the request.
//
// # Request format
//
// The body is one JSON object, sent as application/json or as text/plain (what
// navigator.sendBeacon uses); application/*+json, application/octet-stream and a missing
// Content-Type are accepted too. It is Plausible's event format, so Plausible's script and
// server-side clients written for Plausible's Events API work unchanged. Short and long field
// names are both accepted:
//
//	field             alias          meaning
//	"n"               "name"         event name: "pageview" or a custom event name (required, ≤ 120 bytes)
//	"u"               "url"          absolute URL of the page (required, ≤ 2048 bytes)
//	"d"               "domain"       site id, or a comma-separated list of up to Config.MaxSites site ids;
//	                                 one event is published per site
//	"r"               "referrer"     document.referrer (optional; ignored when it is not an http(s) or
//	                                 android-app URL)
//	"p"               "props", "m", "meta"
//	                                 custom properties: an object (or a JSON string holding one) of
//	                                 string, number or boolean values; null and "" values are dropped;
//	                                 ≤ 30 keys, keys ≤ 300 bytes, values ≤ 2000 bytes
//	"revenue"         "$"            {"amount":"9.99","currency":"EUR"}; amount is a positive decimal
//	                                 (string or number) with at most 15 integer and 6 fractional
//	                                 digits, currency a 3-letter ISO 4217 code (case-insensitive)
//	"i"               "interactive"  false marks a custom event that must not turn a bounce into an
//	                                 engaged visit; default true
//	"h"                              true (or 1) keeps the URL fragment in the path, for sites that
//	                                 route with location.hash
//
// Glimpse's own tracker (and any other sender) may also send three fields of its own:
//
//	"vid"   first-party visitor id for sites that opt into cookie mode: 1 to 64 printable ASCII
//	        characters (no spaces), random and kept by the tracker in a first-party cookie or
//	        localStorage. When present, the visitor id is a keyed hash of (site, vid) that is
//	        stable across days, instead of the daily-salted hash of (site, IP, User-Agent).
//	"e"     engagement time: milliseconds the page was visible, a number from 0 to 86 400 000
//	        (24 h; fractions are truncated). Sent with the "engagement" event when the page is
//	        hidden. Plausible's script sends the same field on the same event name. Events
//	        named "engagement" never count as interaction, whatever "i" says, and are not
//	        custom events: they only extend the visit they belong to (docs/metrics.md).
//	"eid"   event id: 1 to 64 printable ASCII characters (no spaces), unique per event of a
//	        visitor and the same on every resend of that event. A 503 does not prove that
//	        nothing reached the bus (a broker may have stored the event before the publish
//	        timed out), so a sender that retries should set it: the processor counts an event
//	        whose id it has already seen in the same open visit only once. Without it an event
//	        is counted every time it is accepted.
//
// Unknown fields (such as Plausible's "sd", scroll depth) are ignored.
//
// # Responses
//
//	202 "ok"                      every event of the request is on the bus, or it was dropped for a
//	                              reason the browser cannot fix: the header X-Glimpse-Dropped says
//	                              why ("bot", "unknown_site: ...", "foreign_hostname: ...")
//	400 {"error":"..."}           a field is missing, malformed or over a limit; the message names
//	                              the field and the limit
//	404 {"error":"..."}           a path other than /api/event
//	405 {"error":"..."}           not POST (OPTIONS answers 204); the Allow header lists the methods
//	413 {"error":"..."}           the body is larger than Config.MaxBodyBytes
//	415 {"error":"..."}           the Content-Type cannot carry JSON (multipart/form-data, ...)
//	503 {"error":"..."}           the bus (or the salt store) cannot take the event right now; retry
//	                              after the Retry-After header's seconds. Nothing was acknowledged.
//	500 {"error":"..."}           the bus failed for another reason. Nothing was acknowledged.
//
// # Sites
//
// Events count only for sites in the site list (internal/sites, managed with `glimpse sites
// add|list|remove`), and only from pages on one of the site's hostnames (by default the
// domain and its subdomains). Events for a site that was never added are dropped and counted
// as result="unknown_site", events from pages on another hostname as
// result="foreign_hostname"; the sender gets 202 either way. With Config.OpenSites (on by
// default in `glimpse all` only) a site is created on its first event instead, allowing that
// event's page hostname too. A collector reloads the list every Config.SitesRefresh, so a
// site added from the command line is noticed within seconds by every collector of a fleet.
//
// # Enrichment
//
// The page URL gives the hostname (lowercased, without "www.") and the path (no query string;
// no fragment unless "h" is set; percent-escapes decoded where that cannot change the path's
// meaning; truncated to event.MaxPathLen) and the utm_* parameters. The referrer gives the
// referrer (host + path) and the source (see SourceOf). The User-Agent gives browser, OS and
// device (see UAParser); requests from bots are dropped and counted. The event time is the
// collector's receive time. With Config.GeoIPDB (--geoip.db), the client IP gives the
// country, region and city (see internal/geo); without it they are empty. The IP is then
// dropped: the event carries the location, never the address.
//
// # Visitor id
//
// Without "vid", the visitor id is SipHash-2-4 of (site, client IP, User-Agent) keyed with a
// random salt of the current UTC day. Salts live in the store's meta table (namespace
// "salts", key "2006-01-02") so every collector of a fleet computes the same id; a collector
// creates each day's salt a day ahead and deletes the salts of the days before yesterday, so
// a salt exists for at most three days, after which its ids cannot be linked back to an IP
// address. The raw IP address is never stored or logged. The client IP is the connection's
// peer address, or the right-most X-Forwarded-For address that is not a trusted proxy when
// the peer is one (Config.TrustedProxies). Server-side senders that pass their visitors'
// addresses in X-Forwarded-For, as Plausible's Events API asks them to, must therefore be
// listed as trusted proxies.
//
// With "vid", the visitor id is SipHash-2-4 of (site, vid) keyed with a secret that never
// rotates (namespace "salts", key "first-party"), so it stays the same across days.
package collector
