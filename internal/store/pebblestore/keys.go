package pebblestore

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Key layout. Every key starts with a one-byte table tag, then the Cassandra partition key
// components, then the clustering components, each encoded so that bytewise key order is
// the tuple order (the order Cassandra keeps clustering columns in):
//
//	rollups:  'r' str(site) u8(granularity) str(dimension) i64(bucket) str(value) i32(shard)
//	events:   'E' str(site) i64(day) i64(time ms) i32(shard) i64(offset)
//	meta:     'm' str(namespace) str(key)
//	system:   's' str(name)
//
// str(s) escapes every 0x00 byte as 0x00 0xff and ends with 0x00 0x01, so strings may hold
// any byte (NUL included), no string's encoding is a prefix of another's, and a string
// sorts before every longer string it is a prefix of. i64 and i32 are big-endian with the
// sign bit flipped, so negative numbers sort before positive ones.
//
// The rollup partition in Cassandra also carries a time period (it only bounds partition
// size there); the period is a monotone function of the bucket, so leaving it out keeps
// exactly the same order. The event day is kept: it is the unit of retention.
//
// Events are ordered by time before shard, unlike Cassandra's clustering: new events then
// sort after nearly everything already stored, so the store's compactions move files
// instead of rewriting a whole day of events on every flush (with the shard first, each
// flush held new events of every shard and overlapped all of the day). Format 1 stores kept
// events under 'e' in (day, shard, time, offset) order; Open converts them (see migrate.go).
const (
	tagRows     byte = 'r'
	tagEvents   byte = 'E'
	tagEventsV1 byte = 'e' // format 1 only
	tagMeta     byte = 'm'
	tagSystem   byte = 's'
)

const (
	escByte   = 0x00
	escEscape = 0xff // 0x00 inside a string
	escEnd    = 0x01 // end of a string
)

var errCorruptKey = errors.New("pebblestore: corrupt key")

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == escByte {
			b = append(b, escByte, escEscape)
		} else {
			b = append(b, c)
		}
	}
	return append(b, escByte, escEnd)
}

// readString decodes a str() at the start of b and returns it and the rest of b.
func readString(b []byte) (string, []byte, error) {
	// Fast path: no NUL inside the string.
	for i := 0; i+1 < len(b); i++ {
		if b[i] != escByte {
			continue
		}
		if b[i+1] == escEnd {
			return string(b[:i]), b[i+2:], nil
		}
		return readEscapedString(b)
	}
	return "", nil, errCorruptKey
}

// lendString is readString returning a string that shares b's memory when no byte needed
// unescaping: valid only as long as b is.
func lendString(b []byte) (string, []byte, error) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != escByte {
			continue
		}
		if b[i+1] == escEnd {
			if i == 0 {
				return "", b[2:], nil
			}
			return unsafe.String(&b[0], i), b[i+2:], nil
		}
		return readEscapedString(b)
	}
	return "", nil, errCorruptKey
}

func readEscapedString(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i+1 < len(b); i++ {
		c := b[i]
		if c != escByte {
			out = append(out, c)
			continue
		}
		switch b[i+1] {
		case escEnd:
			return string(out), b[i+2:], nil
		case escEscape:
			out = append(out, escByte)
			i++
		default:
			return "", nil, errCorruptKey
		}
	}
	return "", nil, errCorruptKey
}

func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

func readInt64(b []byte) (int64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, errCorruptKey
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
}

func appendInt32(b []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(v)^(1<<31))
}

func readInt32(b []byte) (int32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, errCorruptKey
	}
	return int32(binary.BigEndian.Uint32(b) ^ (1 << 31)), b[4:], nil
}

// prefixEnd returns the smallest key greater than every key that starts with p, or nil when
// there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// rowPartition is the key prefix of one (site, granularity, dimension).
func rowPartition(b []byte, site string, g store.Granularity, dim string) []byte {
	b = append(b, tagRows)
	b = appendString(b, site)
	b = append(b, byte(g))
	return appendString(b, dim)
}

func rowKey(b []byte, k *store.RowKey) []byte {
	b = rowPartition(b, k.Site, k.Granularity, k.Dimension)
	b = appendInt64(b, k.Bucket)
	b = appendString(b, k.Value)
	return appendInt32(b, k.Shard)
}

// readRowClustering decodes the (bucket, value, shard) that follows a row partition prefix.
func readRowClustering(b []byte) (bucket int64, value string, shard int32, err error) {
	return readRowClusteringAs(b, false)
}

// readRowClusteringAs is readRowClustering; with lend, value points into b unless it had to
// be unescaped.
func readRowClusteringAs(b []byte, lend bool) (bucket int64, value string, shard int32, err error) {
	if bucket, b, err = readInt64(b); err != nil {
		return
	}
	if lend {
		value, b, err = lendString(b)
	} else {
		value, b, err = readString(b)
	}
	if err != nil {
		return
	}
	if shard, b, err = readInt32(b); err != nil {
		return
	}
	if len(b) != 0 {
		err = errCorruptKey
	}
	return
}

const dayMillis = 24 * 60 * 60 * 1000

// dayOf is the UTC day number (days since 1970-01-01) of t in Unix ms.
func dayOf(tMillis int64) int64 {
	d := tMillis / dayMillis
	if tMillis%dayMillis < 0 {
		d--
	}
	return d
}

func eventSite(b []byte, site string) []byte {
	b = append(b, tagEvents)
	return appendString(b, site)
}

func eventKey(b []byte, e *store.StoredEvent) []byte {
	b = eventSite(b, e.Site)
	b = appendInt64(b, dayOf(e.Time))
	b = appendInt64(b, e.Time)
	b = appendInt32(b, e.Shard)
	return appendInt64(b, e.Offset)
}

// readEventClustering decodes the (day, time, shard, offset) that follows an event site prefix.
func readEventClustering(b []byte) (day, tMillis int64, shard int32, offset int64, err error) {
	if day, b, err = readInt64(b); err != nil {
		return
	}
	if tMillis, b, err = readInt64(b); err != nil {
		return
	}
	if shard, b, err = readInt32(b); err != nil {
		return
	}
	if offset, b, err = readInt64(b); err != nil {
		return
	}
	if len(b) != 0 {
		err = errCorruptKey
	}
	return
}

func metaNamespace(b []byte, ns string) []byte {
	b = append(b, tagMeta)
	return appendString(b, ns)
}

func metaKey(b []byte, ns, key string) []byte {
	return appendString(metaNamespace(b, ns), key)
}

func systemKey(name string) []byte {
	return appendString([]byte{tagSystem}, name)
}
