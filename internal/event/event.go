// Package event defines the enriched event that travels from the collector over the bus to
// the processor, and its versioned wire encoding.
//
// The collector is the only producer and the processor the only consumer. Both sides share
// this one type so a field can never be misread; the wire form carries a version byte so a
// processor that meets an event written by a newer collector stops loudly instead of guessing.
package event

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the wire version this binary writes: the compact binary form of wire.go.
// Bump it whenever a field changes meaning or a new field must not be ignored.
const Version byte = 2

// VersionJSON is the first wire version: a version byte followed by the event as JSON.
// Nothing writes it any more, but bus topics and stored events written by earlier
// releases hold it, so Decode still reads it.
const VersionJSON byte = 1

// PageviewName is the event name of a page view; every other name but EngagementName is a
// custom event.
const PageviewName = "pageview"

// EngagementName is the event name under which trackers report how long a page was visible
// ("e"). An engagement event is not a custom event: it is counted in no metric and no
// breakdown, never starts a visit, and only extends the visit it belongs to (see
// docs/metrics.md).
const EngagementName = "engagement"

// Limits every collector enforces before an event reaches the bus.
const (
	MaxSiteLen     = 255
	MaxNameLen     = 120
	MaxURLLen      = 2048
	MaxPathLen     = 1024
	MaxPropKeys    = 30
	MaxPropKeyLen  = 300
	MaxPropValLen  = 2000
	MaxCurrencyLen = 3
	MaxIDLen       = 64 // event id ("eid"): 1 to 64 printable ASCII characters, no spaces
)

// Event is one enriched page view or custom event. It holds no IP address: the visitor id is
// a salted hash computed at the collector (or a first-party id in cookie mode).
type Event struct {
	Site      string `json:"site"`          // site id, the normalised domain ("example.com")
	VisitorID uint64 `json:"vid"`           // salted hash of (site, IP, User-Agent) or first-party id
	Time      int64  `json:"ts"`            // server receive time, Unix milliseconds UTC
	Name      string `json:"n"`             // "pageview" or a custom event name
	Hostname  string `json:"host"`          // normalised hostname of the page URL (no "www.")
	Path      string `json:"path"`          // normalised page path, no query string or fragment
	Referrer  string `json:"ref,omitempty"` // referrer host + path, empty for direct/self-referrals
	Source    string `json:"src,omitempty"` // traffic source ("Google", "news.ycombinator.com", utm_source, "" = Direct / None)

	UTMSource   string `json:"us,omitempty"`
	UTMMedium   string `json:"um,omitempty"`
	UTMCampaign string `json:"uc,omitempty"`
	UTMTerm     string `json:"ut,omitempty"`
	UTMContent  string `json:"uo,omitempty"`

	Browser        string `json:"br,omitempty"`
	BrowserVersion string `json:"brv,omitempty"`
	OS             string `json:"os,omitempty"`
	OSVersion      string `json:"osv,omitempty"`
	Device         string `json:"dev,omitempty"` // "Desktop", "Mobile", "Tablet"

	Country string `json:"cc,omitempty"` // ISO 3166-1 alpha-2, empty when unknown
	Region  string `json:"rg,omitempty"`
	City    string `json:"ct,omitempty"`

	Props   map[string]string `json:"p,omitempty"`
	Revenue *Revenue          `json:"rev,omitempty"`

	// Interactive is false for custom events that must not turn a bounce into an engaged
	// visit (Plausible's "i": false). Page views ignore it.
	Interactive bool `json:"i,omitempty"`
	// EngagementMS is visible time on the page reported by the tracker when the page is hidden.
	EngagementMS int64 `json:"eng,omitempty"`

	// ID is the sender's id of the event ("eid"), the same on every resend of it; empty when
	// the sender gave none. The processor drops an event whose id was already seen in the
	// open visit of its site and visitor, so a resent event counts once. Older processors
	// ignore it.
	ID string `json:"eid,omitempty"`
}

// Revenue attached to a custom event. Amount is a decimal string so no precision is lost
// between the browser and the store.
type Revenue struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// IsPageview reports whether e is a page view.
func (e *Event) IsPageview() bool { return e.Name == PageviewName }

// IsEngagement reports whether e is an engagement event (neither a page view nor a custom
// event).
func (e *Event) IsEngagement() bool { return e.Name == EngagementName }

// Key is the bus key of an event: site + visitor id. It keeps one visitor's events in one
// partition so exactly one processor owns that visitor's sessions.
func (e *Event) Key() []byte { return Key(e.Site, e.VisitorID) }

// Key builds the bus key for a site and visitor id.
func Key(site string, visitorID uint64) []byte {
	return appendKey(make([]byte, 0, len(site)+9), site, visitorID)
}

func appendKey(dst []byte, site string, visitorID uint64) []byte {
	dst = append(dst, site...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, visitorID)
}

// EncodeMessage returns e's bus key (as Key) and wire form (as Encode) from one allocation:
// the collector publishes both and the bus never changes them, so they may share memory.
// The key's capacity ends where the wire form starts, so an append to the key copies it
// instead of overwriting the wire form.
func EncodeMessage(e *Event) (key, value []byte, err error) {
	n := encodedLen(e)
	if n > MaxEncodedLen {
		return nil, nil, errTooLarge(n)
	}
	keyLen := len(e.Site) + 9
	buf := appendKey(make([]byte, 0, keyLen+n), e.Site, e.VisitorID)
	buf = appendBinary(buf, e)
	return buf[:keyLen:keyLen], buf[keyLen:], nil
}

func errTooLarge(n int) error {
	return fmt.Errorf("event: encoded event would be %d bytes, more than the limit of %d", n, MaxEncodedLen)
}

// ErrUnknownVersion is returned by Decode for an event written by a different wire version.
// A processor that sees it must stop: a newer collector is writing events it cannot read.
var ErrUnknownVersion = errors.New("event: unknown wire version")

// maxFutureVersion bounds the first bytes read as a newer wire version. Versions grow by one,
// so a first byte above it (a '{', text, random bytes) marks a message that is no event of
// any version: the processor sets such a message aside instead of stopping on it.
const maxFutureVersion = 31

// Encode returns the wire form of e: the version byte followed by the binary body of
// wire.go. It fails only for an event larger than MaxEncodedLen, which Decode would refuse.
func Encode(e *Event) ([]byte, error) {
	n := encodedLen(e)
	if n > MaxEncodedLen {
		return nil, errTooLarge(n)
	}
	return appendBinary(make([]byte, 0, n), e), nil
}

// Decode parses the wire form written by Encode, and by earlier releases (VersionJSON).
// It never panics: any input gives an event or an error.
func Decode(b []byte) (*Event, error) {
	if len(b) == 0 {
		return nil, errors.New("event: empty message")
	}
	switch b[0] {
	case Version:
		if len(b) > MaxEncodedLen {
			return nil, fmt.Errorf("event: message is %d bytes, more than the limit of %d", len(b), MaxEncodedLen)
		}
		return decodeBinary(b[1:])
	case VersionJSON:
		var e Event
		if err := json.Unmarshal(b[1:], &e); err != nil {
			return nil, fmt.Errorf("event: malformed body: %w", err)
		}
		return &e, nil
	}
	if b[0] > Version && b[0] <= maxFutureVersion {
		return nil, fmt.Errorf("%w %d (this binary reads versions %d and %d): upgrade the processor before the collectors", ErrUnknownVersion, b[0], VersionJSON, Version)
	}
	// Not a version any collector writes: a message that is not an event at all (written
	// by another producer, or damaged). It is set aside, not a reason to stop.
	return nil, fmt.Errorf("event: not an event (first byte 0x%02x is no wire version)", b[0])
}
