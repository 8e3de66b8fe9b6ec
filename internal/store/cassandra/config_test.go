package cassandra

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Config
	c.RegisterFlags(fs)
	if d := DefaultConfig(); !slices.Equal(c.Hosts, d.Hosts) || c.Keyspace != d.Keyspace || c.MinuteTTL != d.MinuteTTL || c.HourTTL != d.HourTTL || c.PageSize != d.PageSize {
		t.Fatalf("registered defaults %+v differ from DefaultConfig %+v", c, d)
	}
	fs.VisitAll(func(f *flag.Flag) {
		// The retention settings apply to every store engine, so they are not cassandra.*.
		if !strings.HasPrefix(f.Name, "cassandra.") && !strings.HasPrefix(f.Name, "retention.") {
			t.Errorf("flag %s lacks the cassandra. prefix", f.Name)
		}
	})
	for _, name := range []string{"cassandra.hosts", "cassandra.keyspace", "cassandra.consistency", "cassandra.timeout", "cassandra.connect-timeout",
		"cassandra.replication", "cassandra.create-schema", "retention.minute", "retention.hour", "retention.day", "retention.events",
		"cassandra.max-concurrent-reads", "cassandra.username", "cassandra.password"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag %s is not registered", name)
		}
	}
	if got := fs.Lookup("retention.hour").DefValue; got != "400d" {
		t.Errorf("retention.hour default shows as %q, want 400d", got)
	}
	err := fs.Parse([]string{
		"--cassandra.hosts=10.0.0.1:9042, 10.0.0.2 ,[::1]:9043",
		"--cassandra.keyspace=analytics",
		"--cassandra.consistency=quorum",
		"--cassandra.replication=NetworkTopologyStrategy:dc1=3,dc2=2",
		"--cassandra.create-schema",
		"--retention.minute=36h",
		"--retention.day=5y",
		"--retention.events=0",
		"--cassandra.timeout=3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:9042", "10.0.0.2", "[::1]:9043"}; !slices.Equal(c.Hosts, want) {
		t.Errorf("hosts = %q, want %q", c.Hosts, want)
	}
	if c.Keyspace != "analytics" || c.Consistency != "quorum" || !c.CreateSchema || c.Timeout != 3*time.Second {
		t.Errorf("parsed %+v", c)
	}
	if c.MinuteTTL != 36*time.Hour || c.DayTTL != 5*365*24*time.Hour || c.EventsTTL != 0 || c.HourTTL != 400*24*time.Hour {
		t.Errorf("TTLs = %v %v %v %v", c.MinuteTTL, c.HourTTL, c.DayTTL, c.EventsTTL)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range [][]string{
		{"--retention.hour=forever"},
		{"--retention.hour=21y"},
		{"--retention.hour=-1d"},
		{"--cassandra.hosts= , "},
		{"--cassandra.hosts=host:port"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var c Config
		c.RegisterFlags(fs)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v parsed without error", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // substring of the error
	}{
		{"no hosts", func(c *Config) { c.Hosts = nil }, "cassandra.hosts"},
		{"bad port", func(c *Config) { c.Hosts = []string{"h:99999"} }, "bad port"},
		{"upper-case keyspace", func(c *Config) { c.Keyspace = "Glimpse" }, "cassandra.keyspace"},
		{"keyspace with a dash", func(c *Config) { c.Keyspace = "glimpse-prod" }, "cassandra.keyspace"},
		{"long keyspace", func(c *Config) { c.Keyspace = strings.Repeat("k", 49) }, "cassandra.keyspace"},
		{"unknown consistency", func(c *Config) { c.Consistency = "MOST" }, "cassandra.consistency"},
		{"write-only consistency", func(c *Config) { c.Consistency = "ANY" }, "only applies to writes"},
		{"each quorum", func(c *Config) { c.Consistency = "EACH_QUORUM" }, "only applies to writes"},
		{"serial", func(c *Config) { c.SerialConsistency = "QUORUM" }, "cassandra.serial-consistency"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "cassandra.timeout"},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "cassandra.connect-timeout"},
		{"replication", func(c *Config) { c.Replication = "SimpleStrategy" }, "cassandra.replication"},
		{"ttl fraction", func(c *Config) { c.HourTTL = 1500 * time.Millisecond }, "whole seconds"},
		{"ttl too long", func(c *Config) { c.DayTTL = 21 * 365 * 24 * time.Hour }, "20y"},
		{"reads", func(c *Config) { c.MaxConcurrentReads = 0 }, "cassandra.max-concurrent-reads"},
		{"batch bytes", func(c *Config) { c.MaxBatchBytes = 10 }, "cassandra.max-batch-bytes"},
		{"page size", func(c *Config) { c.PageSize = 0 }, "cassandra.page-size"},
		{"retries", func(c *Config) { c.Retries = -1 }, "cassandra.retries"},
		{"user without password", func(c *Config) { c.Username = "glimpse" }, "set together"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Consistency = "local_one"
	cfg.SerialConsistency = "serial"
	cfg.Hosts = []string{"cassandra-0.cassandra", "::1", "[::1]:9042"}
	cfg.Username, cfg.Password = "glimpse", "secret"
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	if c, _ := parseConsistency("local_one"); c != gocql.LocalOne {
		t.Errorf("local_one parsed as %v", c)
	}
}

func TestParseReplication(t *testing.T) {
	cases := []struct {
		in, cql string
	}{
		{"SimpleStrategy:1", "{'class': 'SimpleStrategy', 'replication_factor': 1}"},
		{"simple:3", "{'class': 'SimpleStrategy', 'replication_factor': 3}"},
		{"NetworkTopologyStrategy:dc1=3", "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"},
		{"NetworkTopologyStrategy: eu-west=3 , us_east.1=2", "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us_east.1': 2}"},
	}
	for _, c := range cases {
		r, err := parseReplication(c.in)
		if err != nil {
			t.Errorf("parseReplication(%q): %v", c.in, err)
			continue
		}
		if got := r.cql(); got != c.cql {
			t.Errorf("parseReplication(%q).cql() = %s, want %s", c.in, got, c.cql)
		}
	}
	for _, bad := range []string{"", "SimpleStrategy", "SimpleStrategy:0", "SimpleStrategy:x", "NetworkTopologyStrategy:", "NetworkTopologyStrategy:dc1",
		"NetworkTopologyStrategy:dc1=3,dc1=2", "NetworkTopologyStrategy:dc'1=3", "EverywhereStrategy:1"} {
		if _, err := parseReplication(bad); err == nil {
			t.Errorf("parseReplication(%q) succeeded", bad)
		}
	}

	simple, _ := parseReplication("SimpleStrategy:3")
	if !simple.matches(map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}) {
		t.Error("SimpleStrategy:3 does not match its stored form")
	}
	if simple.matches(map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"}) {
		t.Error("SimpleStrategy:3 matches a factor of 1")
	}
	nts, _ := parseReplication("NetworkTopologyStrategy:dc1=3,dc2=2")
	if !nts.matches(map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3", "dc2": "2"}) {
		t.Error("NTS does not match its stored form")
	}
	if nts.matches(map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"}) {
		t.Error("NTS matches a stored form lacking a data centre")
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "7d": 7 * day, "400d": 400 * day, "2w": 14 * day, "5y": 5 * year, "36h": 36 * time.Hour, "90m": 90 * time.Minute,
	} {
		got, err := ParseTTL(in)
		if err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseTTL(formatTTL(got)); err != nil || back != got {
			t.Errorf("formatTTL(%v) = %q does not parse back", got, formatTTL(got))
		}
	}
	for _, bad := range []string{"", "d", "1.5d", "-3d", "7 days", "forever", "99999999999999999y"} {
		if _, err := ParseTTL(bad); err == nil {
			t.Errorf("ParseTTL(%q) succeeded", bad)
		}
	}
}
