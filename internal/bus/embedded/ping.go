package embedded

import "context"

// Ping reports whether the bus is open. The log lives in this process, so an open bus
// always answers; /readyz uses it like the Kafka bus's Ping.
func (b *Bus) Ping(context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return nil
}
