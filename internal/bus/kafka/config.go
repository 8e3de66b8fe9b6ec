package kafka

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Defaults of Config, chosen for a collector that waits for the broker's acknowledgement
// before it answers 202, and for processors that should take over partitions within
// seconds. See docs/adr/0006-kafka-bus.md for the reasoning behind each.
const (
	DefaultBrokers           = "127.0.0.1:9092"
	DefaultClientID          = "glimpse"
	DefaultPartitions        = 12
	DefaultReplicationFactor = 1
	DefaultBatchSize         = 1000
	DefaultBatchTimeout      = time.Millisecond
	DefaultBatchBytes        = 1 << 20
	DefaultCompression       = "lz4"
	DefaultMaxBuffered       = 10000
	DefaultWriteTimeout      = 5 * time.Second
	DefaultDialTimeout       = 3 * time.Second
	DefaultRequestTimeout    = 5 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultHeartbeat         = time.Second
	DefaultFetchMinBytes     = 1
	DefaultFetchMaxBytes     = 4 << 20
	DefaultFetchMaxWait      = 500 * time.Millisecond
)

// Config configures the Kafka bus. DefaultConfig returns the defaults; RegisterFlags binds
// every field to a flag under the prefix "kafka.".
type Config struct {
	// Brokers are the bootstrap brokers (host:port). Any reachable one is enough; the
	// client learns the rest of the cluster from it.
	Brokers []string
	// ClientID is sent with every request; brokers use it in logs and quotas.
	ClientID string

	// Partitions is the partition count of a topic the bus creates. Existing topics keep
	// theirs. It bounds how many processors share the work.
	Partitions int
	// ReplicationFactor of a topic the bus creates: 1 on a single broker, 3 in a fleet.
	ReplicationFactor int
	// MinInsyncReplicas, when positive, is set as min.insync.replicas on a topic the bus
	// creates (2 with a replication factor of 3). Zero keeps the broker's default.
	MinInsyncReplicas int

	// BatchSize is the largest number of messages of one partition sent in one produce
	// request.
	BatchSize int
	// BatchTimeout is how long a partition's batch may wait for more messages before it is
	// sent. Every Publish waits up to this long plus the broker's acknowledgement.
	BatchTimeout time.Duration
	// BatchBytes bounds the uncompressed size of one partition's batch; it must not exceed
	// the broker's message.max.bytes (1 MiB by default). A larger message is refused.
	BatchBytes int
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	Compression string
	// MaxBuffered bounds the messages of Publish calls waiting for their acknowledgement.
	// Beyond it, Publish fails at once with bus.ErrUnavailable instead of queueing.
	MaxBuffered int
	// WriteTimeout bounds one Publish, retries included. A Publish not acknowledged in
	// time fails with bus.ErrUnavailable.
	WriteTimeout time.Duration

	// DialTimeout bounds opening a connection to a broker.
	DialTimeout time.Duration
	// RequestTimeout bounds metadata, topic creation, offset and group coordinator
	// requests (commit, heartbeat, leave).
	RequestTimeout time.Duration

	// SessionTimeout is how long the group coordinator waits for a heartbeat before it
	// declares a member dead and hands its partitions to the others.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member to rejoin during
	// a rebalance. It must exceed the time a handler takes to flush and commit after its
	// partition is revoked (the processor's stop timeout).
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often a member heartbeats; it is also how quickly a member
	// notices that a rebalance began. At most a third of SessionTimeout.
	HeartbeatInterval time.Duration

	// FetchMinBytes is how much data the broker waits for before answering a fetch.
	FetchMinBytes int
	// FetchMaxBytes bounds one fetch response of one partition.
	FetchMaxBytes int
	// FetchMaxWait is how long the broker holds a fetch that has less than FetchMinBytes.
	FetchMaxWait time.Duration

	// DeadLetterTopic receives the messages a consumer cannot process (see
	// bus.DeadLetterer). Empty means "<topic>.dead-letter" for each consumed topic. The bus
	// creates it like any topic when it is missing.
	DeadLetterTopic string
}

// DefaultConfig returns the configuration used when no flag is set.
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{DefaultBrokers},
		ClientID:          DefaultClientID,
		Partitions:        DefaultPartitions,
		ReplicationFactor: DefaultReplicationFactor,
		BatchSize:         DefaultBatchSize,
		BatchTimeout:      DefaultBatchTimeout,
		BatchBytes:        DefaultBatchBytes,
		Compression:       DefaultCompression,
		MaxBuffered:       DefaultMaxBuffered,
		WriteTimeout:      DefaultWriteTimeout,
		DialTimeout:       DefaultDialTimeout,
		RequestTimeout:    DefaultRequestTimeout,
		SessionTimeout:    DefaultSessionTimeout,
		RebalanceTimeout:  DefaultRebalanceTimeout,
		HeartbeatInterval: DefaultHeartbeat,
		FetchMinBytes:     DefaultFetchMinBytes,
		FetchMaxBytes:     DefaultFetchMaxBytes,
		FetchMaxWait:      DefaultFetchMaxWait,
	}
}

// RegisterFlags registers the bus's flags on fs with the prefix "kafka." and the defaults
// of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Brokers = d.Brokers
	fs.Var((*brokerList)(&c.Brokers), "kafka.brokers", "comma-separated Kafka bootstrap brokers (host:port)")
	fs.StringVar(&c.ClientID, "kafka.client-id", d.ClientID, "client id sent to the brokers (shows in broker logs and quotas)")
	fs.IntVar(&c.Partitions, "kafka.partitions", d.Partitions, "partitions of a topic the bus creates (existing topics keep theirs); the most processors that can share the work")
	fs.IntVar(&c.ReplicationFactor, "kafka.replication-factor", d.ReplicationFactor, "replication factor of a topic the bus creates: 1 for a single broker, 3 recommended in a fleet")
	fs.IntVar(&c.MinInsyncReplicas, "kafka.min-insync-replicas", d.MinInsyncReplicas, "min.insync.replicas of a topic the bus creates (2 with replication factor 3); 0 keeps the broker default")
	fs.IntVar(&c.BatchSize, "kafka.batch-size", d.BatchSize, "most messages per partition in one produce request")
	fs.DurationVar(&c.BatchTimeout, "kafka.batch-timeout", d.BatchTimeout, "longest a partition's batch waits for more messages before it is sent; every publish waits up to this plus the broker's ack, so keep it to a few milliseconds")
	fs.IntVar(&c.BatchBytes, "kafka.batch-bytes", d.BatchBytes, "largest uncompressed partition batch in bytes; at most the broker's message.max.bytes")
	fs.StringVar(&c.Compression, "kafka.compression", d.Compression, "compression of produced batches: none, gzip, snappy, lz4 or zstd")
	fs.IntVar(&c.MaxBuffered, "kafka.max-buffered", d.MaxBuffered, "most messages waiting for the broker's ack; beyond it a publish fails at once (the collector answers 503) instead of queueing")
	fs.DurationVar(&c.WriteTimeout, "kafka.write-timeout", d.WriteTimeout, "longest a publish waits for the broker's ack, retries included, before it fails (the collector answers 503)")
	fs.DurationVar(&c.DialTimeout, "kafka.dial-timeout", d.DialTimeout, "timeout for opening a connection to a broker")
	fs.DurationVar(&c.RequestTimeout, "kafka.request-timeout", d.RequestTimeout, "timeout of metadata, topic creation, offset commit and group coordinator requests")
	fs.DurationVar(&c.SessionTimeout, "kafka.session-timeout", d.SessionTimeout, "consumer group session timeout: how long a silent processor keeps its partitions (broker allows 6s to 30m by default)")
	fs.DurationVar(&c.RebalanceTimeout, "kafka.rebalance-timeout", d.RebalanceTimeout, "how long a rebalance waits for every processor to rejoin; must exceed the processor's stop timeout")
	fs.DurationVar(&c.HeartbeatInterval, "kafka.heartbeat-interval", d.HeartbeatInterval, "consumer group heartbeat interval; how fast a processor notices a rebalance (at most a third of the session timeout)")
	fs.IntVar(&c.FetchMinBytes, "kafka.fetch-min-bytes", d.FetchMinBytes, "bytes the broker waits for before answering a fetch")
	fs.IntVar(&c.FetchMaxBytes, "kafka.fetch-max-bytes", d.FetchMaxBytes, "largest fetch response per partition in bytes")
	fs.DurationVar(&c.FetchMaxWait, "kafka.fetch-max-wait", d.FetchMaxWait, "longest the broker holds a fetch waiting for fetch-min-bytes")
	fs.StringVar(&c.DeadLetterTopic, "kafka.dead-letter-topic", d.DeadLetterTopic, "topic that receives events the processor cannot decode, with headers saying why and where they came from (default: <events topic>.dead-letter); created like the events topic when missing")
}

// brokerList is a comma-separated flag value.
type brokerList []string

func (l *brokerList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *brokerList) Set(s string) error {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	*l = out
	return nil
}

// Validate reports every invalid setting at once, each with the flag that fixes it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--kafka.%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker address (host:port) is required")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			bad("brokers", "%q is not host:port", b)
		}
	}
	if c.Partitions < 1 {
		bad("partitions", "%d, want at least 1", c.Partitions)
	}
	if c.ReplicationFactor < 1 {
		bad("replication-factor", "%d, want at least 1", c.ReplicationFactor)
	}
	if c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > c.ReplicationFactor {
		bad("min-insync-replicas", "%d, want 0 (broker default) to the replication factor %d", c.MinInsyncReplicas, c.ReplicationFactor)
	}
	if c.BatchSize < 1 {
		bad("batch-size", "%d, want at least 1", c.BatchSize)
	}
	if c.BatchTimeout <= 0 {
		bad("batch-timeout", "%v, want more than 0 (a few milliseconds)", c.BatchTimeout)
	}
	if c.BatchBytes < 1024 {
		bad("batch-bytes", "%d, want at least 1024", c.BatchBytes)
	}
	if _, err := parseCompression(c.Compression); err != nil {
		bad("compression", "%v", err)
	}
	if c.MaxBuffered < 1 {
		bad("max-buffered", "%d, want at least 1", c.MaxBuffered)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"write-timeout", c.WriteTimeout}, {"dial-timeout", c.DialTimeout}, {"request-timeout", c.RequestTimeout},
		{"session-timeout", c.SessionTimeout}, {"rebalance-timeout", c.RebalanceTimeout},
		{"heartbeat-interval", c.HeartbeatInterval}, {"fetch-max-wait", c.FetchMaxWait},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad(p.name, "%v, want more than 0", p.d)
		}
	}
	if c.HeartbeatInterval > 0 && c.SessionTimeout > 0 && c.HeartbeatInterval*3 > c.SessionTimeout {
		bad("heartbeat-interval", "%v is more than a third of --kafka.session-timeout %v", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.DeadLetterTopic != "" {
		if err := validateTopic(c.DeadLetterTopic); err != nil {
			bad("dead-letter-topic", "%v", err)
		}
	}
	if c.FetchMinBytes < 1 {
		bad("fetch-min-bytes", "%d, want at least 1", c.FetchMinBytes)
	}
	if c.FetchMaxBytes < c.FetchMinBytes || c.FetchMaxBytes < 1024 {
		bad("fetch-max-bytes", "%d, want at least 1024 and at least --kafka.fetch-min-bytes", c.FetchMaxBytes)
	}
	return errors.Join(errs...)
}
