package kafka

import (
	"context"
	"fmt"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

var _ bus.DeadLetterer = (*Bus)(nil)

// DeadLetterTopic is Config.DeadLetterTopic, or topic + ".dead-letter" when it is empty.
func (b *Bus) DeadLetterTopic(topic string) string {
	if b.cfg.DeadLetterTopic != "" {
		return b.cfg.DeadLetterTopic
	}
	return topic + bus.DeadLetterSuffix
}

// DeadLetter appends m, read from topic, to DeadLetterTopic(topic) with acks=all: same key
// and value, with headers naming reason and m's source topic, partition and offset. The
// dead-letter topic is created like any other on first use. It returns nil once every
// in-sync replica has the dead letter.
func (b *Bus) DeadLetter(ctx context.Context, topic string, m bus.Message, reason string) error {
	dlq := b.DeadLetterTopic(topic)
	if _, loaded := b.deadLetterTopics.LoadOrStore(dlq, struct{}{}); !loaded {
		b.log.Info(fmt.Sprintf("setting aside messages of %s that cannot be processed on topic %s", topic, dlq), "topic", topic, "dead_letter_topic", dlq)
	}
	dl := bus.Message{Key: m.Key, Value: m.Value, Headers: bus.DeadLetterHeaders(topic, m, reason)}
	if err := b.Publish(ctx, dlq, dl); err != nil {
		return fmt.Errorf("kafka bus: set aside %s/%d offset %d on %s: %w", topic, m.Partition, m.Offset, dlq, err)
	}
	b.m.deadLetters.WithLabelValues(topic).Inc()
	return nil
}
