package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// ErrClosed is returned (wrapping bus.ErrUnavailable) by every operation after Close.
var ErrClosed = fmt.Errorf("kafka bus closed: %w", bus.ErrUnavailable)

// errBufferFull is returned when MaxBuffered messages already wait for their ack.
var errBufferFull = fmt.Errorf("kafka bus: too many messages waiting for the broker's acknowledgement (--kafka.max-buffered): %w", bus.ErrUnavailable)

// errRevoked is returned by a Claim whose handler has returned.
var errRevoked = errors.New("kafka bus: claim is no longer held (its handler returned)")

// unavailableCodes are Kafka errors that say "the cluster cannot do this right now", on top
// of the ones kafka-go marks temporary (leader elections, timeouts, not enough replicas,
// coordinator moves, ...).
var unavailableCodes = []kafkago.Error{
	kafkago.BrokerNotAvailable,
	kafkago.ReplicaNotAvailable,
	kafkago.RebalanceInProgress,
	kafkago.KafkaStorageError,
	kafkago.NotEnoughReplicas,
	kafkago.NotEnoughReplicasAfterAppend,
	kafkago.ThrottlingQuotaExceeded,
}

// unavailable reports whether err means the cluster cannot serve the request right now
// but may later: broker or network down, leader election, timeouts, too few in-sync
// replicas. Errors a retry cannot fix (message too large, authorization, invalid topic)
// are not.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, bus.ErrUnavailable) {
		return true
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		found := false
		for _, e := range werrs {
			if e == nil {
				continue
			}
			if !unavailable(e) {
				return false
			}
			found = true
		}
		return found
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		if kerr.Temporary() {
			return true
		}
		for _, c := range unavailableCodes {
			if kerr == c {
				return true
			}
		}
		return false
	}
	switch {
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition), errors.Is(err, protocol.ErrNoLeader):
		// The client's metadata does not know the topic or its leader yet.
		return true
	case errors.Is(err, context.DeadlineExceeded):
		// A deadline of the bus's own (write timeout, request timeout).
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe), errors.Is(err, net.ErrClosed):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ECONNABORTED):
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true // DNS failures, dial and I/O timeouts
	}
	var operr *net.OpError
	return errors.As(err, &operr)
}

// wrapErr adds what failed to err and marks it bus.ErrUnavailable when it is.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) && !errors.Is(err, bus.ErrUnavailable) {
		return fmt.Errorf("kafka bus: %s: %w (%w)", what, bus.ErrUnavailable, err)
	}
	return fmt.Errorf("kafka bus: %s: %w", what, err)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// parseCompression maps a codec name to kafka-go's constant.
func parseCompression(name string) (kafkago.Compression, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none", "":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "zstd":
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use none, gzip, snappy, lz4 or zstd", name)
}
