package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Values start with a format byte so a later layout can be told apart from this one.
//
//	row:   0x01 varint(pageviews) varint(events) varint(visits) varint(bounces)
//	       varint(durationMS) varint(offset) uvarint(visitors: 0 = nil, else len+1) visitors
//	event: 0x01 uvarint(sessionID) varint(sessionStart) payload (the rest)
//	meta:  0x01 value (the rest)
//
// Varints are zig-zag (binary.AppendVarint), so counts and offsets of any sign round-trip.
const valueV1 byte = 0x01

var errCorruptValue = errors.New("pebblestore: corrupt value")

func appendRowValue(b []byte, r *store.Row) []byte {
	b = append(b, valueV1)
	b = binary.AppendVarint(b, r.Pageviews)
	b = binary.AppendVarint(b, r.Events)
	b = binary.AppendVarint(b, r.Visits)
	b = binary.AppendVarint(b, r.Bounces)
	b = binary.AppendVarint(b, r.DurationMS)
	b = binary.AppendVarint(b, r.Offset)
	if r.Visitors == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Visitors))+1)
	return append(b, r.Visitors...)
}

// decodeRowValue fills the aggregate and offset of r from v. Visitors is a fresh copy.
func decodeRowValue(v []byte, r *store.Row) error { return decodeRowValueAs(v, r, false) }

// decodeRowValueAs is decodeRowValue; with lend, Visitors points into v.
func decodeRowValueAs(v []byte, r *store.Row, lend bool) error {
	if len(v) == 0 || v[0] != valueV1 {
		return unknownFormat(v)
	}
	v = v[1:]
	for _, dst := range [...]*int64{&r.Pageviews, &r.Events, &r.Visits, &r.Bounces, &r.DurationMS, &r.Offset} {
		x, n := binary.Varint(v)
		if n <= 0 {
			return errCorruptValue
		}
		*dst, v = x, v[n:]
	}
	l, n := binary.Uvarint(v)
	if n <= 0 {
		return errCorruptValue
	}
	v = v[n:]
	switch {
	case l == 0:
		r.Visitors = nil
	case l-1 != uint64(len(v)):
		return errCorruptValue
	case lend:
		r.Visitors = v[:len(v):len(v)]
	default:
		r.Visitors = append(make([]byte, 0, len(v)), v...)
	}
	return nil
}

func appendEventValue(b []byte, e *store.StoredEvent) []byte {
	b = append(b, valueV1)
	b = binary.AppendUvarint(b, e.SessionID)
	b = binary.AppendVarint(b, e.SessionStart)
	return append(b, e.Payload...)
}

// decodeEventValue fills the session fields and payload of e from v. Payload is a fresh copy.
func decodeEventValue(v []byte, e *store.StoredEvent) error {
	if len(v) == 0 || v[0] != valueV1 {
		return unknownFormat(v)
	}
	v = v[1:]
	id, n := binary.Uvarint(v)
	if n <= 0 {
		return errCorruptValue
	}
	v = v[n:]
	start, n := binary.Varint(v)
	if n <= 0 {
		return errCorruptValue
	}
	v = v[n:]
	e.SessionID, e.SessionStart = id, start
	e.Payload = nil
	if len(v) > 0 {
		e.Payload = append(make([]byte, 0, len(v)), v...)
	}
	return nil
}

func appendMetaValue(b, value []byte) []byte {
	return append(append(b, valueV1), value...)
}

func decodeMetaValue(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != valueV1 {
		return nil, unknownFormat(v)
	}
	return append(make([]byte, 0, len(v)-1), v[1:]...), nil
}

func unknownFormat(v []byte) error {
	if len(v) == 0 {
		return errCorruptValue
	}
	return fmt.Errorf("pebblestore: value format %d is newer than this glimpse understands (%d); upgrade glimpse", v[0], valueV1)
}
