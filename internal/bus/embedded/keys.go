package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// Key layout of the bus's own Pebble database. Topic names are restricted to Kafka's legal
// characters and group names may not contain NUL, so NUL separates the variable parts and
// a topic's keys never interleave with another topic's.
//
//	t/<topic>                          → uvarint partition count (fixed on first use)
//	m/<topic>\0<part u32><offset u64>  → message record (see appendRecord)
//	w/<topic>\0<part u32>              → u64 low watermark: first offset retention kept
//	c/<topic>\0<group>\0<part u32>     → u64 committed offset, u64 commit time (Unix ms)
//
// Integers are big-endian so that key order is offset order.
const (
	prefixTopic  = "t/"
	prefixMsg    = "m/"
	prefixLow    = "w/"
	prefixCommit = "c/"
)

// PartitionFor returns the partition of a message with key among n partitions.
//
// It is the 32-bit FNV-1a hash of the key, read as a signed int32, modulo n, made
// non-negative: the same function as kafka-go's kafka.Hash{} balancer (and Sarama's hash
// partitioner), so a key lands in the same partition number on the embedded bus and on a
// Kafka topic with as many partitions written through that balancer. An empty key always
// maps to the same partition.
func PartitionFor(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	// FNV-1a written out: hash/fnv's hasher costs an allocation per message.
	h := uint32(fnvOffset32)
	for _, c := range key {
		h ^= uint32(c)
		h *= fnvPrime32
	}
	p := int32(h) % int32(n)
	if p < 0 {
		p = -p
	}
	return int(p)
}

// The 32-bit FNV-1a parameters (hash/fnv).
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// maxNameLen is Kafka's limit on topic names; group names get the same bound here.
const maxNameLen = 249

// validateTopic accepts the names Kafka accepts, so a configuration that works on the
// embedded bus also works on a broker.
func validateTopic(topic string) error {
	if topic == "" || topic == "." || topic == ".." || len(topic) > maxNameLen {
		return fmt.Errorf("bus: invalid topic name %q: 1 to %d characters, not \".\" or \"..\"", topic, maxNameLen)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("bus: invalid topic name %q: only ASCII letters, digits, '.', '_' and '-' are allowed", topic)
		}
	}
	return nil
}

func validateGroup(group string) error {
	if group == "" || len(group) > maxNameLen {
		return fmt.Errorf("bus: invalid group name %q: 1 to %d bytes", group, maxNameLen)
	}
	for i := 0; i < len(group); i++ {
		if group[i] == 0 {
			return fmt.Errorf("bus: invalid group name %q: NUL is not allowed", group)
		}
	}
	return nil
}

func topicKey(topic string) []byte {
	return append([]byte(prefixTopic), topic...)
}

// partitionPrefix is the common prefix of the message keys of one partition.
func appendPartitionPrefix(dst []byte, topic string, p int) []byte {
	dst = append(dst, prefixMsg...)
	dst = append(dst, topic...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

func appendMsgKey(dst []byte, topic string, p int, offset int64) []byte {
	dst = appendPartitionPrefix(dst, topic, p)
	return binary.BigEndian.AppendUint64(dst, uint64(offset))
}

// msgKeyOffset returns the offset of a message key of any partition.
func msgKeyOffset(key []byte) int64 {
	return int64(binary.BigEndian.Uint64(key[len(key)-8:]))
}

func lowKey(topic string, p int) []byte {
	dst := append([]byte(prefixLow), topic...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

func commitKey(topic, group string, p int) []byte {
	dst := append([]byte(prefixCommit), topic...)
	dst = append(dst, 0)
	dst = append(dst, group...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// parseCommitKey splits a commit key into its topic, group and partition.
func parseCommitKey(key []byte) (topic, group string, p int, ok bool) {
	rest := key[len(prefixCommit):]
	if len(rest) < 4+2 || rest[len(rest)-5] != 0 {
		return "", "", 0, false
	}
	p = int(binary.BigEndian.Uint32(rest[len(rest)-4:]))
	rest = rest[:len(rest)-5]
	for i, c := range rest {
		if c == 0 {
			return string(rest[:i]), string(rest[i+1:]), p, true
		}
	}
	return "", "", 0, false
}

func encodeCommit(next, atMillis int64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(next))
	return binary.BigEndian.AppendUint64(v, uint64(atMillis))
}

func decodeCommit(v []byte) (next, atMillis int64, err error) {
	if len(v) != 16 {
		return 0, 0, errors.New("bus: corrupt commit record")
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), nil
}

// A message record is: u64 publish time (Unix ms) · uvarint key length · key · value.
// When the time's top bit (headersFlag) is set, the key is followed by the headers:
// uvarint count, then per header uvarint key length · key · uvarint value length · value.
// Records without headers (every event) keep the original layout.
const headersFlag = uint64(1) << 63

func appendRecord(dst []byte, atMillis int64, key, value []byte, headers []bus.Header) []byte {
	at := uint64(atMillis) &^ headersFlag
	if len(headers) > 0 {
		at |= headersFlag
	}
	dst = binary.BigEndian.AppendUint64(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	if len(headers) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(headers)))
		for _, h := range headers {
			dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
			dst = append(dst, h.Value...)
		}
	}
	return append(dst, value...)
}

func recordLen(key, value []byte, headers []bus.Header) int {
	n := 8 + binary.MaxVarintLen64 + len(key) + len(value)
	if len(headers) > 0 {
		n += binary.MaxVarintLen64 + headersLen(headers)
	}
	return n
}

// headersLen is the encoded size of headers, for the size limit of a message.
func headersLen(headers []bus.Header) int {
	n := 0
	for _, h := range headers {
		n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
	}
	return n
}

var errCorruptRecord = errors.New("bus: corrupt message record")

// decodeRecord splits a record. key, value and the headers' values alias rec.
func decodeRecord(rec []byte) (atMillis int64, key, value []byte, headers []bus.Header, err error) {
	if len(rec) < 9 {
		return 0, nil, nil, nil, errCorruptRecord
	}
	at := binary.BigEndian.Uint64(rec)
	atMillis = int64(at &^ headersFlag)
	rest := rec[8:]
	if key, rest, err = cutBytes(rest); err != nil {
		return 0, nil, nil, nil, err
	}
	if at&headersFlag != 0 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)) {
			return 0, nil, nil, nil, errCorruptRecord
		}
		rest = rest[w:]
		headers = make([]bus.Header, n)
		for i := range headers {
			var k, v []byte
			if k, rest, err = cutBytes(rest); err != nil {
				return 0, nil, nil, nil, err
			}
			if v, rest, err = cutBytes(rest); err != nil {
				return 0, nil, nil, nil, err
			}
			headers[i] = bus.Header{Key: string(k), Value: v}
		}
	}
	return atMillis, key, rest, headers, nil
}

// cutBytes reads a uvarint length and that many bytes from b.
func cutBytes(b []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, errCorruptRecord
	}
	return b[w : w+int(n) : w+int(n)], b[w+int(n):], nil
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func appendBEUint64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }
