package embedded

import (
	"context"
	"fmt"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

var _ bus.DeadLetterer = (*Bus)(nil)

// DeadLetterTopic is topic's dead-letter topic in the same log: topic + ".dead-letter".
func (b *Bus) DeadLetterTopic(topic string) string { return topic + bus.DeadLetterSuffix }

// DeadLetter durably appends m, read from topic, to DeadLetterTopic(topic): same key and
// value, with headers naming reason and m's source topic, partition and offset. It returns
// nil once the dead letter is fsynced.
func (b *Bus) DeadLetter(ctx context.Context, topic string, m bus.Message, reason string) error {
	dlq := b.DeadLetterTopic(topic)
	dl := bus.Message{Key: m.Key, Value: m.Value, Headers: bus.DeadLetterHeaders(topic, m, reason)}
	if err := b.Publish(ctx, dlq, dl); err != nil {
		return fmt.Errorf("bus: set aside %s/%d offset %d on %s: %w", topic, m.Partition, m.Offset, dlq, err)
	}
	b.m.deadLetters.WithLabelValues(topic).Inc()
	return nil
}
