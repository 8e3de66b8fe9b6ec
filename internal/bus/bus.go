// Package bus is the durable, partitioned log between collectors and processors.
//
// The interface is shaped after Kafka's model so that the embedded log (one process, Pebble)
// and Kafka (the fleet) are interchangeable: topics split into partitions, a message's key
// picks its partition, consumers join a group and each assigned partition is handed to
// exactly one member, which reads from an offset of its choosing and commits positions.
//
// Contract every implementation keeps (checked by the bustest conformance suite):
//   - Publish returns nil only once every message is durably stored; on error, any subset of
//     the messages may have been stored, so the caller must not acknowledge any of them.
//   - Messages with the same key land in the same partition, in publish order.
//   - Offsets within a partition are dense, increasing from 0.
//   - A partition is claimed by at most one member of a group at a time.
package bus

import (
	"context"
	"errors"
	"strconv"
)

// Message is one record on the bus. Partition and Offset are set by the bus on consume.
type Message struct {
	Key       []byte
	Value     []byte
	Headers   []Header // metadata next to the value (Kafka record headers); nil for events
	Partition int
	Offset    int64
}

// Header is one piece of metadata carried with a message.
type Header struct {
	Key   string
	Value []byte
}

// DeadLetterer is implemented by buses that can set aside a message its consumer cannot
// process (bytes that do not decode), so that nothing the bus acknowledged is dropped
// silently: the message stays readable, with why and where it came from, while the
// consumer moves past it.
type DeadLetterer interface {
	// DeadLetter durably appends m, read from topic, to DeadLetterTopic(topic) with its
	// key, its value as it was and headers naming the reason and m's source topic,
	// partition and offset (see DeadLetterHeaders). It returns nil only once the dead
	// letter is stored: only then may the consumer commit past m. Errors are those of
	// Publish.
	DeadLetter(ctx context.Context, topic string, m Message, reason string) error

	// DeadLetterTopic names the topic dead letters of topic go to.
	DeadLetterTopic(topic string) string
}

// DeadLetterSuffix makes a topic's default dead-letter topic: "events" → "events.dead-letter".
const DeadLetterSuffix = ".dead-letter"

// Header keys of a dead letter.
const (
	HeaderDeadLetterReason = "glimpse-dead-letter-reason"
	HeaderSourceTopic      = "glimpse-source-topic"
	HeaderSourcePartition  = "glimpse-source-partition"
	HeaderSourceOffset     = "glimpse-source-offset"
)

// maxReasonBytes bounds the reason header: a decoder's error quoting the bad input must
// not make the dead letter larger than the message it sets aside.
const maxReasonBytes = 512

// DeadLetterHeaders returns m's own headers followed by those saying why m, read from
// topic, became a dead letter and where it came from.
func DeadLetterHeaders(topic string, m Message, reason string) []Header {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	h := make([]Header, 0, len(m.Headers)+4)
	h = append(h, m.Headers...)
	return append(h,
		Header{Key: HeaderDeadLetterReason, Value: []byte(reason)},
		Header{Key: HeaderSourceTopic, Value: []byte(topic)},
		Header{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		Header{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
	)
}

// HeaderValue returns the value of the first header named key, and whether there is one.
func HeaderValue(headers []Header, key string) ([]byte, bool) {
	for _, h := range headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// ErrUnavailable wraps errors that mean "the bus cannot take writes right now" (broker down,
// leader election, buffer full). Collectors answer 503 with Retry-After for it.
var ErrUnavailable = errors.New("bus unavailable")

// Bus is one engine behind the log (embedded or Kafka).
type Bus interface {
	// Publish durably appends msgs to topic. It returns nil only once all are stored.
	Publish(ctx context.Context, topic string, msgs ...Message) error

	// Consume joins consumer group `group` on `topic` and calls h once per partition
	// assigned to this member, each in its own goroutine. The ctx passed to h is cancelled
	// when the partition is revoked (rebalance) or Consume's ctx ends; h must then flush,
	// commit what it may and return. The claim stays usable until h returns, so the last
	// commit uses context.WithoutCancel(ctx) with a timeout. A handler that returns nil while
	// still assigned leaves its partition idle until the next rebalance. Consume blocks until
	// ctx is done (then it returns ctx.Err()) or a handler returns a non-nil error other than
	// the context's, which it returns.
	Consume(ctx context.Context, topic, group string, h Handler) error

	// Partitions returns the number of partitions of topic (creating it if needed).
	Partitions(ctx context.Context, topic string) (int, error)

	Close() error
}

// Handler consumes one claimed partition. See Bus.Consume.
type Handler func(ctx context.Context, c Claim) error

// Claim is one partition assigned to this group member.
type Claim interface {
	Topic() string
	Partition() int

	// Committed is the group's committed position for this partition: the offset of the
	// next message to read. It is 0 when nothing was ever committed.
	Committed() int64

	// SetOffset sets the offset of the next message Fetch returns; it must lie in [0, end].
	// Until SetOffset is called, Fetch starts at Committed(). Messages removed by retention
	// are skipped, so the first offset Fetch returns may be larger than the one set.
	SetOffset(offset int64) error

	// Fetch blocks until at least one message is available, then returns up to max of
	// them in offset order. It returns ctx.Err() when ctx is done first.
	Fetch(ctx context.Context, max int) ([]Message, error)

	// Commit records next (the offset of the next message to read) as the group's position.
	Commit(ctx context.Context, next int64) error
}
