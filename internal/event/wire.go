package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The binary body of wire version 2, after the version byte:
//
//	flags         1 byte: bit 0 Interactive, bit 1 Revenue follows; the other bits are 0
//	VisitorID     8 bytes, big-endian
//	Time          signed varint (encoding/binary's zig-zag form)
//	EngagementMS  signed varint
//	20 strings    Site, Name, Hostname, Path, Referrer, Source, UTMSource, UTMMedium,
//	              UTMCampaign, UTMTerm, UTMContent, Browser, BrowserVersion, OS, OSVersion,
//	              Device, Country, Region, City, ID; each an unsigned varint length and bytes
//	Props         unsigned varint count, then count (key, value) strings, keys sorted
//	Revenue       Amount and Currency strings, when flag bit 1 is set
//
// and nothing after. The field order is the format: a new field or a changed meaning needs a
// new version, and a decoder refuses set reserved flag bits and trailing bytes instead of
// guessing. Decoding it costs a fraction of the JSON of version 1 and allocates only the
// event, one string that all its string fields share, and its props.

// MaxEncodedLen bounds the wire form of one event, version byte included: Encode refuses to
// write more and Decode to read more. It is the embedded bus's and Kafka's default message
// limit; the collector's field limits keep real events far below it.
const MaxEncodedLen = 1 << 20

const (
	flagInteractive = 1 << 0
	flagRevenue     = 1 << 1
	flagsKnown      = flagInteractive | flagRevenue
)

// stringFieldCount is how many plain string fields the body carries, in stringFields order.
const stringFieldCount = 20

// stringFields lists e's plain string fields in wire order.
func stringFields(e *Event) [stringFieldCount]*string {
	return [stringFieldCount]*string{
		&e.Site, &e.Name, &e.Hostname, &e.Path, &e.Referrer, &e.Source,
		&e.UTMSource, &e.UTMMedium, &e.UTMCampaign, &e.UTMTerm, &e.UTMContent,
		&e.Browser, &e.BrowserVersion, &e.OS, &e.OSVersion, &e.Device,
		&e.Country, &e.Region, &e.City, &e.ID,
	}
}

// encodedLen is the exact length of e's wire form.
func encodedLen(e *Event) int {
	n := 1 + 1 + 8 + varintLen(e.Time) + varintLen(e.EngagementMS)
	for _, f := range stringFields(e) {
		n += stringLen(*f)
	}
	n += uvarintLen(uint64(len(e.Props)))
	for k, v := range e.Props {
		n += stringLen(k) + stringLen(v)
	}
	if e.Revenue != nil {
		n += stringLen(e.Revenue.Amount) + stringLen(e.Revenue.Currency)
	}
	return n
}

// appendBinary appends the version byte and the binary body of e to dst.
func appendBinary(dst []byte, e *Event) []byte {
	var flags byte
	if e.Interactive {
		flags |= flagInteractive
	}
	if e.Revenue != nil {
		flags |= flagRevenue
	}
	dst = append(dst, Version, flags)
	dst = binary.BigEndian.AppendUint64(dst, e.VisitorID)
	dst = binary.AppendVarint(dst, e.Time)
	dst = binary.AppendVarint(dst, e.EngagementMS)
	for _, f := range stringFields(e) {
		dst = appendString(dst, *f)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Props)))
	if len(e.Props) > 0 {
		// Sorted, so that one event always has one wire form. Events within the limit of
		// MaxPropKeys sort their keys on the stack: this runs once per event.
		var stack [MaxPropKeys]string
		keys := stack[:0]
		if len(e.Props) > len(stack) {
			keys = make([]string, 0, len(e.Props))
		}
		for k := range e.Props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = appendString(dst, k)
			dst = appendString(dst, e.Props[k])
		}
	}
	if e.Revenue != nil {
		dst = appendString(dst, e.Revenue.Amount)
		dst = appendString(dst, e.Revenue.Currency)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// errTruncated and errOverflow describe a body that ends inside a field or carries a
// number that does not fit.
var (
	errTruncated = errors.New("body ends inside a field")
	errOverflow  = errors.New("a number does not fit in 64 bits")
)

// wireReader reads the binary body, bounds-checked: every read checks the bytes left. s holds
// the same bytes as b, copied once, so every string field is a substring of it: decoding
// allocates one string for all fields instead of one per field. A field kept alone keeps
// the whole body (a few hundred bytes) alive, which is cheaper than twenty allocations.
type wireReader struct {
	b   []byte
	s   string
	pos int
	err error
}

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wireReader) left() int { return len(r.b) - r.pos }

func (r *wireReader) byte() byte {
	if r.err != nil || r.left() < 1 {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *wireReader) uint64BE() uint64 {
	if r.err != nil || r.left() < 8 {
		r.fail(errTruncated)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.pos:])
	r.pos += 8
	return v
}

func (r *wireReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.pos:])
	if !r.took(n) {
		return 0
	}
	return v
}

// took advances past a varint of n bytes as binary.Varint and Uvarint report it, and
// reports whether there was one (n <= 0: the body ends in it, or it overflows 64 bits).
func (r *wireReader) took(n int) bool {
	switch {
	case n == 0:
		r.fail(errTruncated)
		return false
	case n < 0:
		r.fail(errOverflow)
		return false
	}
	r.pos += n
	return true
}

// length reads an unsigned varint that counts something in the rest of the body, each at
// least minSize bytes long, so a count can never promise more than the body holds.
func (r *wireReader) length(minSize int) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if !r.took(n) {
		return 0
	}
	if v > uint64(r.left()/minSize) {
		r.fail(errTruncated)
		return 0
	}
	return int(v)
}

func (r *wireReader) string() string {
	n := r.length(1)
	if r.err != nil || n == 0 {
		return ""
	}
	s := internString(r.s[r.pos : r.pos+n])
	r.pos += n
	return s
}

// internString returns the shared constant for the event names nearly every event carries,
// so that they do not keep their body alive.
func internString(s string) string {
	switch s {
	case PageviewName:
		return PageviewName
	case EngagementName:
		return EngagementName
	}
	return s
}

// decodeBinary parses the body of version 2 (b without the version byte).
func decodeBinary(b []byte) (*Event, error) {
	r := wireReader{b: b, s: string(b)}
	flags := r.byte()
	if r.err == nil && flags&^flagsKnown != 0 {
		return nil, fmt.Errorf("event: malformed body: unknown flags 0x%02x", flags)
	}
	e := &Event{Interactive: flags&flagInteractive != 0}
	e.VisitorID = r.uint64BE()
	e.Time = r.varint()
	e.EngagementMS = r.varint()
	for _, f := range stringFields(e) {
		*f = r.string()
	}
	// Each prop takes at least two bytes: the lengths of its key and value.
	if n := r.length(2); n > 0 {
		e.Props = make(map[string]string, min(n, MaxPropKeys))
		for range n {
			k := r.string()
			e.Props[k] = r.string()
		}
	}
	if flags&flagRevenue != 0 {
		e.Revenue = &Revenue{Amount: r.string(), Currency: r.string()}
	}
	if r.err != nil {
		return nil, fmt.Errorf("event: malformed body: %w", r.err)
	}
	if r.left() != 0 {
		return nil, fmt.Errorf("event: malformed body: %d bytes after the last field", r.left())
	}
	return e, nil
}
