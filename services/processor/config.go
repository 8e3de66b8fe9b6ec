package processor

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures the processor. Build it with DefaultConfig or from RegisterFlags.
type Config struct {
	// Topic and Group name the bus topic the collectors publish to and the consumer group
	// the processors share. Both are part of the checkpoint key.
	Topic string
	Group string

	// FlushInterval is how often each partition writes its events and dirty rollup rows.
	FlushInterval time.Duration
	// CheckpointInterval is how often each partition stores its position and open
	// sessions and commits the bus offset. It is rounded up to a multiple of FlushInterval
	// in effect, because a checkpoint always follows a flush.
	CheckpointInterval time.Duration
	// FlushEvents makes a partition flush before FlushInterval has passed once it holds
	// this many events not yet written (0: by the interval only). Everything a flush
	// writes waits in memory until then; while a processor catches up on a backlog it
	// applies events far faster than live traffic arrives, and a long interval alone would
	// let the waiting events and changed rows grow with its speed.
	FlushEvents int
	// Lateness is how far behind the newest event of a partition an event may be and
	// still be counted. Older events are dropped and counted in a metric.
	Lateness time.Duration
	// SessionGrace keeps a visit that has been idle for 30 minutes joinable for this much
	// longer (measured on the partition's event-time watermark), so an event delayed on
	// the way does not split its visit in two.
	SessionGrace time.Duration

	// MaxBatch is the largest number of messages fetched from the bus at once.
	MaxBatch int
	// MaxCachedRows bounds the rollup rows kept in memory per partition; rows beyond it
	// that are clean and idle are evicted after a flush (and reloaded when touched again).
	// A partition that receives no event for a few seconds releases all its clean rows
	// (see releaseRowsAfter).
	MaxCachedRows int
	// MaxPropValues is how many distinct values one custom-property key may have per UTC
	// day in one partition; further values are counted as dims.OtherValue. A topic with P
	// partitions keeps at most P × MaxPropValues values per key and day. 0 disables the
	// limit.
	MaxPropValues int

	// RetryMin and RetryMax bound the exponential backoff between store attempts.
	RetryMin time.Duration
	RetryMax time.Duration
	// StopTimeout bounds the final flush, checkpoint and commit of a partition when it is
	// revoked or the processor stops.
	StopTimeout time.Duration
}

// maxMaxPropValues bounds Config.MaxPropValues: every value costs rollup rows per hour and
// day, and memory in the partition for the day.
const maxMaxPropValues = 1_000_000

// DefaultConfig returns the configuration used when no flag is set.
func DefaultConfig() Config {
	return Config{
		Topic:              "glimpse-events",
		Group:              "glimpse-processor",
		FlushInterval:      time.Second,
		CheckpointInterval: 5 * time.Second,
		Lateness:           48 * time.Hour,
		SessionGrace:       time.Minute,
		MaxBatch:           1000,
		MaxCachedRows:      100_000,
		MaxPropValues:      1000,
		RetryMin:           100 * time.Millisecond,
		RetryMax:           10 * time.Second,
		StopTimeout:        20 * time.Second,
	}
}

// RegisterFlags registers the processor's flags on fs with the prefix "processor." and
// the defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Topic, "processor.topic", d.Topic, "bus topic to consume events from")
	fs.StringVar(&c.Group, "processor.group", d.Group, "consumer group shared by all processors")
	fs.DurationVar(&c.FlushInterval, "processor.flush-interval", d.FlushInterval, "how often each partition writes events and rollup rows to the store")
	fs.DurationVar(&c.CheckpointInterval, "processor.checkpoint-interval", d.CheckpointInterval, "how often each partition checkpoints its position and open sessions and commits the bus offset (a multiple of the flush interval)")
	fs.IntVar(&c.FlushEvents, "processor.flush-events", d.FlushEvents, "a partition also flushes, before its flush interval has passed, once it holds this many events not yet written (bounds memory while catching up on a backlog); 0: by the interval only")
	fs.DurationVar(&c.Lateness, "processor.lateness", d.Lateness, "events older than this behind the newest event of their partition are dropped")
	fs.DurationVar(&c.SessionGrace, "processor.session-grace", d.SessionGrace, "extra event time an idle visit stays joinable by delayed events after its 30 minutes")
	fs.IntVar(&c.MaxBatch, "processor.max-batch", d.MaxBatch, "largest number of messages fetched from the bus at once")
	fs.IntVar(&c.MaxCachedRows, "processor.max-cached-rows", d.MaxCachedRows, "rollup rows kept in memory per partition before idle ones are evicted (a partition that receives no event for 5 s, and at least 5 flush intervals, releases them all)")
	fs.IntVar(&c.MaxPropValues, "processor.max-prop-values", d.MaxPropValues, "distinct values a custom-property key keeps per UTC day in each partition (a topic with P partitions keeps up to P times this); further values are counted as \"(other)\"; 0 disables the limit")
	fs.DurationVar(&c.RetryMin, "processor.store-retry-min", d.RetryMin, "first backoff after a failed store operation")
	fs.DurationVar(&c.RetryMax, "processor.store-retry-max", d.RetryMax, "longest backoff between store attempts")
	fs.DurationVar(&c.StopTimeout, "processor.stop-timeout", d.StopTimeout, "time allowed for the final flush and checkpoint of a partition on revocation or shutdown")
}

// Validate reports a configuration the processor cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("processor.topic must not be empty"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("processor.group must not be empty"))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("processor.flush-interval must be positive, got %v", c.FlushInterval))
	}
	if c.CheckpointInterval < c.FlushInterval {
		errs = append(errs, fmt.Errorf("processor.checkpoint-interval (%v) must be at least processor.flush-interval (%v)", c.CheckpointInterval, c.FlushInterval))
	}
	if c.FlushEvents < 0 {
		errs = append(errs, fmt.Errorf("processor.flush-events must not be negative (0: flush by the interval only), got %d", c.FlushEvents))
	}
	if c.Lateness <= 0 {
		errs = append(errs, fmt.Errorf("processor.lateness must be positive, got %v", c.Lateness))
	}
	if c.SessionGrace < 0 {
		errs = append(errs, fmt.Errorf("processor.session-grace must not be negative, got %v", c.SessionGrace))
	}
	if c.MaxBatch <= 0 {
		errs = append(errs, fmt.Errorf("processor.max-batch must be positive, got %d", c.MaxBatch))
	}
	if c.MaxCachedRows < 0 {
		errs = append(errs, fmt.Errorf("processor.max-cached-rows must not be negative, got %d", c.MaxCachedRows))
	}
	if c.MaxPropValues < 0 || c.MaxPropValues > maxMaxPropValues {
		errs = append(errs, fmt.Errorf("processor.max-prop-values must be between 0 (no limit) and %d, got %d", maxMaxPropValues, c.MaxPropValues))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("processor.store-retry-min (%v) must be positive and at most processor.store-retry-max (%v)", c.RetryMin, c.RetryMax))
	}
	if c.StopTimeout <= 0 {
		errs = append(errs, fmt.Errorf("processor.stop-timeout must be positive, got %v", c.StopTimeout))
	}
	return errors.Join(errs...)
}
