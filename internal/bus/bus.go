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
)

// Message is one record on the bus. Partition and Offset are set by the bus on consume.
type Message struct {
	Key       []byte
	Value     []byte
	Partition int
	Offset    int64
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
