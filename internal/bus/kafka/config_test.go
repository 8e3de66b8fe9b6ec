package kafka

import (
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.BatchTimeout >= 10*time.Millisecond {
		t.Errorf("default batch timeout %v: every publish waits up to that long", cfg.BatchTimeout)
	}
	if cfg.HeartbeatInterval*3 > cfg.SessionTimeout {
		t.Errorf("heartbeat %v is more than a third of the session timeout %v", cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
}

func TestRegisterFlagsDefaultsMatchDefaultConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("flag defaults = %+v\nDefaultConfig() = %+v", cfg, want)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "kafka.") {
			t.Errorf("flag %q lacks the kafka. prefix", f.Name)
		}
		if f.Usage == "" {
			t.Errorf("flag %q has no help", f.Name)
		}
	})
	if f := fs.Lookup("kafka.replication-factor"); f == nil || !strings.Contains(f.Usage, "3 recommended in a fleet") {
		t.Errorf("--kafka.replication-factor help should recommend 3 in a fleet")
	}
}

func TestRegisterFlagsParse(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-kafka.brokers", " k1:9092, k2:9092 ,,k3:9092",
		"-kafka.partitions", "24",
		"-kafka.replication-factor", "3",
		"-kafka.min-insync-replicas", "2",
		"-kafka.batch-timeout", "5ms",
		"-kafka.compression", "snappy",
		"-kafka.max-buffered", "500",
		"-kafka.session-timeout", "45s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1:9092", "k2:9092", "k3:9092"}; !reflect.DeepEqual(cfg.Brokers, want) {
		t.Errorf("Brokers = %q, want %q", cfg.Brokers, want)
	}
	if cfg.Partitions != 24 || cfg.ReplicationFactor != 3 || cfg.MinInsyncReplicas != 2 ||
		cfg.BatchTimeout != 5*time.Millisecond || cfg.Compression != "snappy" || cfg.MaxBuffered != 500 ||
		cfg.SessionTimeout != 45*time.Second {
		t.Errorf("parsed config = %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if got := fs.Lookup("kafka.brokers").Value.String(); got != "k1:9092,k2:9092,k3:9092" {
		t.Errorf("brokers flag String() = %q", got)
	}
}

func TestValidateNamesEveryBadFlag(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*Config)
		flag   string
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, "--kafka.brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"localhost"} }, "--kafka.brokers"},
		{"zero partitions", func(c *Config) { c.Partitions = 0 }, "--kafka.partitions"},
		{"zero replication", func(c *Config) { c.ReplicationFactor = 0 }, "--kafka.replication-factor"},
		{"min isr above replication", func(c *Config) { c.MinInsyncReplicas = 2 }, "--kafka.min-insync-replicas"},
		{"zero batch size", func(c *Config) { c.BatchSize = 0 }, "--kafka.batch-size"},
		{"zero batch timeout", func(c *Config) { c.BatchTimeout = 0 }, "--kafka.batch-timeout"},
		{"tiny batch bytes", func(c *Config) { c.BatchBytes = 10 }, "--kafka.batch-bytes"},
		{"unknown compression", func(c *Config) { c.Compression = "brotli" }, "--kafka.compression"},
		{"zero max buffered", func(c *Config) { c.MaxBuffered = 0 }, "--kafka.max-buffered"},
		{"zero write timeout", func(c *Config) { c.WriteTimeout = 0 }, "--kafka.write-timeout"},
		{"zero dial timeout", func(c *Config) { c.DialTimeout = 0 }, "--kafka.dial-timeout"},
		{"zero request timeout", func(c *Config) { c.RequestTimeout = 0 }, "--kafka.request-timeout"},
		{"zero rebalance timeout", func(c *Config) { c.RebalanceTimeout = 0 }, "--kafka.rebalance-timeout"},
		{"heartbeat too slow", func(c *Config) { c.HeartbeatInterval = 5 * time.Second }, "--kafka.heartbeat-interval"},
		{"zero fetch min", func(c *Config) { c.FetchMinBytes = 0 }, "--kafka.fetch-min-bytes"},
		{"fetch max below min", func(c *Config) { c.FetchMinBytes = 1 << 20; c.FetchMaxBytes = 2048 }, "--kafka.fetch-max-bytes"},
		{"zero fetch wait", func(c *Config) { c.FetchMaxWait = 0 }, "--kafka.fetch-max-wait"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.flag) {
				t.Errorf("Validate() = %v, want an error naming %s", err, c.flag)
			}
			if _, err := New(cfg, Options{}); err == nil {
				t.Errorf("New accepted an invalid config")
			}
		})
	}
	// Several problems are reported together.
	cfg := DefaultConfig()
	cfg.Partitions, cfg.Compression = 0, "brotli"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--kafka.partitions") || !strings.Contains(err.Error(), "--kafka.compression") {
		t.Errorf("Validate() = %v, want both problems", err)
	}
}

func TestParseCompression(t *testing.T) {
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd", "LZ4", ""} {
		if _, err := parseCompression(name); err != nil {
			t.Errorf("parseCompression(%q) = %v", name, err)
		}
	}
	if _, err := parseCompression("brotli"); err == nil {
		t.Errorf("parseCompression(brotli) accepted")
	}
}
