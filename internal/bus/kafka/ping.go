package kafka

import (
	"context"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// Ping sends an ApiVersions request to a broker of the cluster. Unlike a metadata request,
// which kafka-go answers from its cache while the cluster is gone, it is a round trip: it
// proves a broker answers now. /readyz uses it.
func (b *Bus) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	res, err := b.client.ApiVersions(ctx, &kafkago.ApiVersionsRequest{})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("kafka does not answer (brokers %v): %w", b.cfg.Brokers, err)
	}
	return nil
}
