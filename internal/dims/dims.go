// Package dims names the query dimensions and says, for each, whether it belongs to the
// event (event:page) or to the visit the event is part of (visit:source), and how to read its
// value. The processor (which writes rollups) and the query engine (which scans events when
// no rollup fits) both read values through this package, so they can never disagree.
package dims

import (
	"strconv"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// Dimension names, as the query API spells them.
const (
	Page        = "event:page"
	Hostname    = "event:hostname"
	Name        = "event:name"
	PropsPrefix = "event:props:"
	Goal        = "event:goal"
	EntryPage   = "visit:entry_page"
	ExitPage    = "visit:exit_page"
	Source      = "visit:source"
	Referrer    = "visit:referrer"
	UTMSource   = "visit:utm_source"
	UTMMedium   = "visit:utm_medium"
	UTMCampaign = "visit:utm_campaign"
	UTMTerm     = "visit:utm_term"
	UTMContent  = "visit:utm_content"
	Browser     = "visit:browser"
	BrowserVer  = "visit:browser_version"
	OS          = "visit:os"
	OSVersion   = "visit:os_version"
	Device      = "visit:device"
	Country     = "visit:country"
	Region      = "visit:region"
	City        = "visit:city"
	// DurationBucket groups visits by their length: its values are the lower bounds of
	// DurationBounds in seconds ("0", "10", "30", ...).
	DurationBucket = "visit:duration_bucket"
	TimePrefix     = "time:"
	TimeMinute     = "time:minute"
	TimeHour       = "time:hour"
	TimeDay        = "time:day"
	TimeWeek       = "time:week"
	TimeMonth      = "time:month"
)

// Rolled are the dimensions the processor keeps hour and day rollups for. Other
// dimensions, and any filter combined with a breakdown, are answered by scanning events.
// Minute rollups hold only the totals row.
var Rolled = []string{
	Page, Name, EntryPage, ExitPage, Source, Referrer,
	UTMSource, UTMMedium, UTMCampaign, Browser, OS, Device, Country,
}

// IsRolled reports whether hour and day rollups exist for d: the dimensions of Rolled and
// every custom property (event:props:<key>).
func IsRolled(d string) bool {
	for _, r := range Rolled {
		if r == d {
			return true
		}
	}
	return strings.HasPrefix(d, PropsPrefix) && len(d) > len(PropsPrefix)
}

// IsEvent reports whether d is a property of the single event (event:*); otherwise it is a
// property of the visit (visit:*).
func IsEvent(d string) bool { return strings.HasPrefix(d, "event:") }

// Known reports whether d is a dimension the query API accepts.
func Known(d string) bool {
	switch d {
	case Page, Hostname, Name, EntryPage, ExitPage, Source, Referrer, UTMSource, UTMMedium,
		UTMCampaign, UTMTerm, UTMContent, Browser, BrowserVer, OS, OSVersion, Device,
		Country, Region, City, DurationBucket, TimeMinute, TimeHour, TimeDay, TimeWeek, TimeMonth:
		return true
	}
	return strings.HasPrefix(d, PropsPrefix) && len(d) > len(PropsPrefix)
}

// Visit holds the attributes a visit takes from its first event, plus its exit page.
type Visit struct {
	EntryPage, ExitPage string
	First               *event.Event // the visit's first event: source, UTM, device, ...
	DurationMS          int64        // first to last event; only the query engine's scan sets it
}

// DurationBounds are the lower bounds, in seconds, of the visit-length buckets of
// DurationBucket: 0–10 s, 10–30 s, 30 s–1 min, 1–3 min, 3–10 min, 10–30 min, 30 min and more.
var DurationBounds = []int64{0, 10, 30, 60, 180, 600, 1800}

// DurationBucketOf returns the DurationBucket value of a visit lasting ms milliseconds.
func DurationBucketOf(ms int64) string {
	b := DurationBounds[0]
	for _, lo := range DurationBounds {
		if ms >= lo*1000 {
			b = lo
		}
	}
	return strconv.FormatInt(b, 10)
}

// EventValue returns the value of event dimension d for e ("" when e has none).
// ok is false when d is not an event dimension.
func EventValue(d string, e *event.Event) (v string, ok bool) {
	switch d {
	case Page:
		return e.Path, true
	case Hostname:
		return e.Hostname, true
	case Name:
		return e.Name, true
	}
	if strings.HasPrefix(d, PropsPrefix) {
		return e.Props[d[len(PropsPrefix):]], true
	}
	return "", false
}

// VisitValue returns the value of visit dimension d for a visit ("" when it has none).
// ok is false when d is not a visit dimension.
func VisitValue(d string, v *Visit) (string, bool) {
	f := v.First
	switch d {
	case EntryPage:
		return v.EntryPage, true
	case ExitPage:
		return v.ExitPage, true
	case Source:
		return f.Source, true
	case Referrer:
		return f.Referrer, true
	case UTMSource:
		return f.UTMSource, true
	case UTMMedium:
		return f.UTMMedium, true
	case UTMCampaign:
		return f.UTMCampaign, true
	case UTMTerm:
		return f.UTMTerm, true
	case UTMContent:
		return f.UTMContent, true
	case Browser:
		return f.Browser, true
	case BrowserVer:
		return f.BrowserVersion, true
	case OS:
		return f.OS, true
	case OSVersion:
		return f.OSVersion, true
	case Device:
		return f.Device, true
	case Country:
		return f.Country, true
	case Region:
		return f.Region, true
	case City:
		return f.City, true
	case DurationBucket:
		return DurationBucketOf(v.DurationMS), true
	}
	return "", false
}

// OtherValue is the value a custom property takes in rollups and stored events when its key
// already has as many distinct values on that UTC day as the processor keeps
// (--processor.max-prop-values): the values beyond the limit are counted together under it.
const OtherValue = "(other)"
