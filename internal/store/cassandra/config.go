package cassandra

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Config configures the Cassandra store. Build it with DefaultConfig or from RegisterFlags;
// every flag is named "cassandra.<name>".
type Config struct {
	// Hosts are the contact points, "host" or "host:port" (default port 9042). The driver
	// discovers the rest of the ring from them.
	Hosts []string
	// Keyspace holds the tables. Lower-case letters, digits and underscores.
	Keyspace string
	// Consistency is the consistency level of every read and write (LOCAL_QUORUM, QUORUM,
	// LOCAL_ONE, ONE, TWO, THREE or ALL).
	Consistency string
	// SerialConsistency is the consistency of the Paxos phase of PutMetaIfAbsent
	// (LOCAL_SERIAL or SERIAL).
	SerialConsistency string
	// LocalDC, when set, keeps requests in that data centre (DC-aware routing); otherwise
	// every node is a candidate. Token-aware routing applies in both cases.
	LocalDC string
	// Timeout bounds one request to a node; ConnectTimeout bounds dialling a node.
	Timeout        time.Duration
	ConnectTimeout time.Duration
	// Replication is the keyspace replication used when the keyspace is created:
	// "SimpleStrategy:<factor>" or "NetworkTopologyStrategy:<dc>=<factor>[,<dc>=<factor>...]".
	Replication string
	// CreateSchema creates the keyspace and applies missing schema versions at Open.
	// Without it, Open refuses a keyspace whose schema is older than this binary needs.
	CreateSchema bool

	// TTLs of rollup rows by granularity and of stored events, counted from a row's last
	// write: the retention settings (flags retention.*, shared with the other engines, see
	// store.Retention). 0 keeps data forever. Cassandra caps a TTL at 20 years.
	MinuteTTL time.Duration
	HourTTL   time.Duration
	DayTTL    time.Duration
	EventsTTL time.Duration

	// MaxConcurrentReads and MaxConcurrentWrites bound the requests one Store has in flight
	// (pages of scans and point reads; single writes and batches).
	MaxConcurrentReads  int
	MaxConcurrentWrites int
	// MaxBatchRows and MaxBatchBytes bound one unlogged batch. A batch only ever holds rows
	// of one partition.
	MaxBatchRows  int
	MaxBatchBytes int
	// PageSize is the number of rows fetched per page of a scan.
	PageSize int
	// Retries is how often a failed idempotent request (timeout, unavailable, overloaded,
	// lost connection) is retried, on the next host, with exponential backoff.
	Retries int
	// ConnectionsPerHost is the size of the connection pool to each node.
	ConnectionsPerHost int

	// Username and Password, when set, authenticate with PasswordAuthenticator.
	Username string
	Password string
}

// DefaultConfig returns the configuration used when no flag is set: a single local node,
// keyspace "glimpse", LOCAL_QUORUM.
func DefaultConfig() Config {
	return Config{
		Hosts:               []string{"127.0.0.1:9042"},
		Keyspace:            "glimpse",
		Consistency:         "LOCAL_QUORUM",
		SerialConsistency:   "LOCAL_SERIAL",
		Timeout:             10 * time.Second,
		ConnectTimeout:      5 * time.Second,
		Replication:         "SimpleStrategy:1",
		MinuteTTL:           store.DefaultRetention().Minute,
		HourTTL:             store.DefaultRetention().Hour,
		DayTTL:              store.DefaultRetention().Day,
		EventsTTL:           store.DefaultRetention().Events,
		MaxConcurrentReads:  32,
		MaxConcurrentWrites: 32,
		MaxBatchRows:        100,
		MaxBatchBytes:       256 << 10,
		PageSize:            1000,
		Retries:             3,
		ConnectionsPerHost:  2,
	}
}

const (
	day  = 24 * time.Hour
	year = 365 * day

	// maxTTL is Cassandra's limit on a TTL (20 years).
	maxTTL = 20 * year
)

// RegisterFlags binds the settings to flags named cassandra.*; the defaults are those of
// DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	c.Hosts = slices.Clone(d.Hosts)
	fs.Var((*hostsValue)(&c.Hosts), "cassandra.hosts", "comma-separated Cassandra contact points, host or host:port")
	fs.StringVar(&c.Keyspace, "cassandra.keyspace", d.Keyspace, "keyspace of the store's tables")
	fs.StringVar(&c.Consistency, "cassandra.consistency", d.Consistency, "consistency level of reads and writes: LOCAL_QUORUM, QUORUM, LOCAL_ONE, ONE, TWO, THREE or ALL")
	fs.StringVar(&c.SerialConsistency, "cassandra.serial-consistency", d.SerialConsistency, "consistency of lightweight transactions: LOCAL_SERIAL or SERIAL")
	fs.StringVar(&c.LocalDC, "cassandra.local-dc", d.LocalDC, "data centre to send requests to (empty: any)")
	fs.DurationVar(&c.Timeout, "cassandra.timeout", d.Timeout, "timeout of one request to a Cassandra node")
	fs.DurationVar(&c.ConnectTimeout, "cassandra.connect-timeout", d.ConnectTimeout, "timeout of connecting to a Cassandra node")
	fs.StringVar(&c.Replication, "cassandra.replication", d.Replication, `replication of a keyspace created by migrate/create-schema: "SimpleStrategy:<n>" or "NetworkTopologyStrategy:<dc>=<n>[,<dc>=<n>]"`)
	fs.BoolVar(&c.CreateSchema, "cassandra.create-schema", d.CreateSchema, "create the keyspace and apply missing schema versions at start (otherwise run `glimpse migrate --store=cassandra`)")
	c.MinuteTTL, c.HourTTL, c.DayTTL, c.EventsTTL = d.MinuteTTL, d.HourTTL, d.DayTTL, d.EventsTTL
	// The retention settings apply to every store engine (Cassandra: the TTL of each write;
	// Pebble: a periodic sweep), so they are not named cassandra.*; Config.Retention hands
	// them to the other engines.
	fs.Var((*ttlValue)(&c.MinuteTTL), "retention.minute", "time minute rollup rows are kept (e.g. 7d; 0 = forever); every store engine")
	fs.Var((*ttlValue)(&c.HourTTL), "retention.hour", "time hour rollup rows are kept (e.g. 400d; 0 = forever); every store engine")
	fs.Var((*ttlValue)(&c.DayTTL), "retention.day", "time day rollup rows are kept (e.g. 5y; 0 = forever); every store engine")
	fs.Var((*ttlValue)(&c.EventsTTL), "retention.events", "time stored events are kept for filtered queries (e.g. 30d; 0 = forever); every store engine")
	fs.IntVar(&c.MaxConcurrentReads, "cassandra.max-concurrent-reads", d.MaxConcurrentReads, "most read requests in flight at once")
	fs.IntVar(&c.MaxConcurrentWrites, "cassandra.max-concurrent-writes", d.MaxConcurrentWrites, "most write requests (single writes or batches) in flight at once")
	fs.IntVar(&c.MaxBatchRows, "cassandra.max-batch-rows", d.MaxBatchRows, "most rows in one unlogged batch (a batch holds rows of one partition only)")
	fs.IntVar(&c.MaxBatchBytes, "cassandra.max-batch-bytes", d.MaxBatchBytes, "most bytes (estimated) in one unlogged batch")
	fs.IntVar(&c.PageSize, "cassandra.page-size", d.PageSize, "rows fetched per page when scanning")
	fs.IntVar(&c.Retries, "cassandra.retries", d.Retries, "retries of a request that failed for a transient reason (timeout, unavailable, overloaded)")
	fs.IntVar(&c.ConnectionsPerHost, "cassandra.connections-per-host", d.ConnectionsPerHost, "connections to each Cassandra node")
	fs.StringVar(&c.Username, "cassandra.username", d.Username, "user name for password authentication (empty: none)")
	fs.StringVar(&c.Password, "cassandra.password", d.Password, "password for password authentication (prefer the environment variable)")
}

// Retention is the retention settings as the engine-neutral store.Retention.
func (c Config) Retention() store.Retention {
	return store.Retention{Minute: c.MinuteTTL, Hour: c.HourTTL, Day: c.DayTTL, Events: c.EventsTTL}
}

var keyspaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Validate reports a configuration the store cannot run with, naming the flag to fix.
func (c Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("cassandra.hosts must name at least one host"))
	}
	for _, h := range c.Hosts {
		if err := validHost(h); err != nil {
			errs = append(errs, fmt.Errorf("cassandra.hosts: %w", err))
		}
	}
	if !keyspaceRE.MatchString(c.Keyspace) {
		errs = append(errs, fmt.Errorf("cassandra.keyspace %q must be 1 to 48 lower-case letters, digits or underscores, starting with a letter", c.Keyspace))
	}
	if _, err := parseConsistency(c.Consistency); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseSerialConsistency(c.SerialConsistency); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("cassandra.timeout must be positive, got %v", c.Timeout))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("cassandra.connect-timeout must be positive, got %v", c.ConnectTimeout))
	}
	if _, err := parseReplication(c.Replication); err != nil {
		errs = append(errs, err)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"minute", c.MinuteTTL}, {"hour", c.HourTTL}, {"day", c.DayTTL}, {"events", c.EventsTTL}} {
		if err := validTTL(t.d); err != nil {
			errs = append(errs, fmt.Errorf("retention.%s: %w", t.name, err))
		}
	}
	for _, p := range []struct {
		name string
		v    int
		min  int
	}{
		{"max-concurrent-reads", c.MaxConcurrentReads, 1},
		{"max-concurrent-writes", c.MaxConcurrentWrites, 1},
		{"max-batch-rows", c.MaxBatchRows, 1},
		{"max-batch-bytes", c.MaxBatchBytes, 1024},
		{"page-size", c.PageSize, 1},
		{"retries", c.Retries, 0},
		{"connections-per-host", c.ConnectionsPerHost, 1},
	} {
		if p.v < p.min {
			errs = append(errs, fmt.Errorf("cassandra.%s must be at least %d, got %d", p.name, p.min, p.v))
		}
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("cassandra.username and cassandra.password must be set together"))
	}
	return errors.Join(errs...)
}

func validHost(h string) error {
	if strings.TrimSpace(h) == "" {
		return errors.New("empty host")
	}
	if strings.ContainsAny(h, " \t,/") {
		return fmt.Errorf("%q is not a host or host:port", h)
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// A bare host (no port) or a bare IPv6 address.
		if strings.Count(h, ":") == 1 {
			return fmt.Errorf("%q is not a host or host:port: %v", h, err)
		}
		return nil
	}
	if host == "" {
		return fmt.Errorf("%q has no host name", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has a bad port", h)
	}
	return nil
}

// parseConsistency accepts the levels that work for reads and writes alike.
func parseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("cassandra.consistency %q is not a consistency level: use LOCAL_QUORUM, QUORUM, LOCAL_ONE, ONE, TWO, THREE or ALL", s)
	}
	switch c {
	case gocql.Any, gocql.EachQuorum:
		return 0, fmt.Errorf("cassandra.consistency %s only applies to writes and the store reads with the same level: use LOCAL_QUORUM, QUORUM, LOCAL_ONE, ONE, TWO, THREE or ALL", c)
	}
	return c, nil
}

func parseSerialConsistency(s string) (gocql.SerialConsistency, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "SERIAL":
		return gocql.Serial, nil
	case "LOCAL_SERIAL":
		return gocql.LocalSerial, nil
	}
	return 0, fmt.Errorf("cassandra.serial-consistency %q must be LOCAL_SERIAL or SERIAL", s)
}

// replication is a parsed cassandra.replication.
type replication struct {
	class   string         // SimpleStrategy or NetworkTopologyStrategy
	factor  int            // SimpleStrategy
	factors map[string]int // NetworkTopologyStrategy, by data centre
}

var dcRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)

func parseReplication(s string) (replication, error) {
	bad := func(why string) (replication, error) {
		return replication{}, fmt.Errorf(`cassandra.replication %q: %s (use "SimpleStrategy:<n>" or "NetworkTopologyStrategy:<dc>=<n>[,<dc>=<n>]")`, s, why)
	}
	class, spec, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return bad("no factor")
	}
	switch strings.ToLower(class) {
	case "simplestrategy", "simple":
		n, err := strconv.Atoi(strings.TrimSpace(spec))
		if err != nil || n < 1 || n > 100 {
			return bad("the factor must be a whole number from 1 to 100")
		}
		return replication{class: "SimpleStrategy", factor: n}, nil
	case "networktopologystrategy", "networktopology":
		r := replication{class: "NetworkTopologyStrategy", factors: map[string]int{}}
		for _, part := range strings.Split(spec, ",") {
			dc, f, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				return bad(fmt.Sprintf("%q is not <dc>=<n>", part))
			}
			dc = strings.TrimSpace(dc)
			if !dcRE.MatchString(dc) {
				return bad(fmt.Sprintf("%q is not a data centre name", dc))
			}
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 || n > 100 {
				return bad(fmt.Sprintf("the factor of %s must be a whole number from 0 to 100", dc))
			}
			if _, dup := r.factors[dc]; dup {
				return bad(fmt.Sprintf("data centre %s given twice", dc))
			}
			r.factors[dc] = n
		}
		return r, nil
	}
	return bad(fmt.Sprintf("unknown strategy %q", class))
}

// cql renders r as the map literal of CREATE KEYSPACE ... WITH replication = .
func (r replication) cql() string {
	if r.class == "SimpleStrategy" {
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", r.factor)
	}
	dcs := make([]string, 0, len(r.factors))
	for dc := range r.factors {
		dcs = append(dcs, dc)
	}
	slices.Sort(dcs)
	var b strings.Builder
	b.WriteString("{'class': 'NetworkTopologyStrategy'")
	for _, dc := range dcs {
		fmt.Fprintf(&b, ", '%s': %d", dc, r.factors[dc])
	}
	b.WriteString("}")
	return b.String()
}

// matches reports whether the replication map stored in system_schema.keyspaces is r.
func (r replication) matches(stored map[string]string) bool {
	class := stored["class"]
	class = class[strings.LastIndexByte(class, '.')+1:]
	if class != r.class {
		return false
	}
	if r.class == "SimpleStrategy" {
		return stored["replication_factor"] == strconv.Itoa(r.factor)
	}
	n := 0
	for k, v := range stored {
		if k == "class" {
			continue
		}
		n++
		if f, ok := r.factors[k]; !ok || strconv.Itoa(f) != v {
			return false
		}
	}
	return n == len(r.factors)
}

func validTTL(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("must not be negative, got %v", d)
	case d%time.Second != 0:
		return fmt.Errorf("must be whole seconds, got %v", d)
	case d > maxTTL:
		return fmt.Errorf("%s is longer than Cassandra's limit of 20y (use 0 to keep data forever)", formatTTL(d))
	}
	return nil
}

// ParseTTL parses a retention period: a Go duration ("36h"), a whole number of days,
// weeks or years ("7d", "2w", "5y"; a year is 365 days), or "0" for forever.
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if n := len(s); n >= 2 {
		unit := map[byte]time.Duration{'d': day, 'w': 7 * day, 'y': year}[s[n-1]]
		if unit != 0 {
			v, err := strconv.ParseInt(s[:n-1], 10, 64)
			if err != nil || v < 0 || v > int64(maxTTL/unit)+1 {
				return 0, fmt.Errorf("%q is not a whole number of %s", s, map[byte]string{'d': "days", 'w': "weeks", 'y': "years"}[s[n-1]])
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a retention period (e.g. 7d, 400d, 5y, 36h, or 0 for forever)", s)
	}
	return d, nil
}

// formatTTL is the inverse of ParseTTL for the values it produces.
func formatTTL(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%year == 0:
		return strconv.FormatInt(int64(d/year), 10) + "y"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// ttlValue is a flag.Value for a retention period.
type ttlValue time.Duration

func (v *ttlValue) String() string {
	if v == nil {
		return "0"
	}
	return formatTTL(time.Duration(*v))
}

func (v *ttlValue) Set(s string) error {
	d, err := ParseTTL(s)
	if err != nil {
		return err
	}
	if err := validTTL(d); err != nil {
		return err
	}
	*v = ttlValue(d)
	return nil
}

// hostsValue is a flag.Value for a comma-separated host list.
type hostsValue []string

func (v *hostsValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

func (v *hostsValue) Set(s string) error {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return errors.New("no host given")
	}
	for _, h := range hosts {
		if err := validHost(h); err != nil {
			return err
		}
	}
	*v = hosts
	return nil
}

// ttlSeconds is d as the whole seconds of USING TTL (0 = none).
func ttlSeconds(d time.Duration) int {
	return int(d / time.Second)
}
