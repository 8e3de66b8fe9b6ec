package cassandra

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

// The tests against a real node run when GLIMPSE_TEST_CASSANDRA names one:
//
//	deploy/local/cassandra.sh start
//	GLIMPSE_TEST_CASSANDRA=127.0.0.1:9042 go test ./internal/store/cassandra/
//
// They work in keyspaces named glimpse_test_<random>, dropped when the tests end.
const envNode = "GLIMPSE_TEST_CASSANDRA"

var (
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	// testKeyspace is the keyspace of the conformance suite and most other tests.
	testKeyspace string
)

func TestMain(m *testing.M) {
	node := os.Getenv(envNode)
	if node == "" {
		os.Exit(m.Run())
	}
	testKeyspace = fmt.Sprintf("glimpse_test_%08x", rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	_, err := Migrate(ctx, testConfig(testKeyspace))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "migrate test keyspace %s on %s: %v\n", testKeyspace, node, err)
		os.Exit(1)
	}
	code := m.Run()
	dropKeyspaces()
	os.Exit(code)
}

// testConfig is a config for the node under test.
func testConfig(keyspace string) Config {
	cfg := DefaultConfig()
	cfg.Hosts = []string{os.Getenv(envNode)}
	cfg.Keyspace = keyspace
	cfg.Consistency = "ONE" // works with the single node whatever its data centre is called
	cfg.SerialConsistency = "SERIAL"
	cfg.Timeout = 20 * time.Second // a busy two-core machine
	return cfg
}

// needNode skips t unless a node is given.
func needNode(t testing.TB) {
	t.Helper()
	if os.Getenv(envNode) == "" {
		t.Skipf("no Cassandra node: run `deploy/local/cassandra.sh start`, then %s=127.0.0.1:9042 go test ./internal/store/cassandra/", envNode)
	}
}

// extraKeyspaces are keyspaces tests created besides testKeyspace; all are dropped at exit.
var extraKeyspaces []string

func newKeyspace(suffix string) string {
	ks := fmt.Sprintf("%s_%s%d", testKeyspace, suffix, len(extraKeyspaces))
	extraKeyspaces = append(extraKeyspaces, ks)
	return ks
}

func dropKeyspaces() {
	sess, err := connect(testConfig(testKeyspace), "", quiet, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "drop test keyspaces: %v\n", err)
		return
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ks := range append([]string{testKeyspace}, extraKeyspaces...) {
		if err := ddl(ctx, sess, "DROP KEYSPACE IF EXISTS "+ks); err != nil {
			fmt.Fprintf(os.Stderr, "drop keyspace %s: %v\n", ks, err)
		}
	}
}

func openTest(t testing.TB, cfg Config, opts Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Keyspace, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	needNode(t)
	cfg := testConfig(testKeyspace)
	cfg.PageSize = 97 // several pages per partition in the larger subtests
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := openTest(t, cfg, Options{})
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, func() store.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			s = openTest(t, cfg, Options{})
			return s
		}
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	cfg := testConfig(newKeyspace("migrate"))
	res, err := Migrate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.CreatedKeyspace || res.From != 0 || res.To != latestVersion() || len(res.Applied) != latestVersion() {
		t.Errorf("first Migrate = %+v, want the keyspace created and versions 0 -> %d applied", res, latestVersion())
	}
	res, err = Migrate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.CreatedKeyspace || res.From != latestVersion() || res.To != latestVersion() || len(res.Applied) != 0 {
		t.Errorf("second Migrate = %+v, want a no-op at version %d", res, latestVersion())
	}
	// One version row per version, not two.
	sess, err := connect(cfg, cfg.Keyspace, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var n int
	if err := sess.Query(`SELECT count(*) FROM schema_version WHERE id = ?`, schemaID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != latestVersion() {
		t.Errorf("schema_version holds %d rows after migrating twice, want %d", n, latestVersion())
	}
	openTest(t, cfg, Options{}).Close()
}

func TestOpenMissingKeyspace(t *testing.T) {
	needNode(t)
	cfg := testConfig(newKeyspace("missing"))
	_, err := Open(context.Background(), cfg, Options{Logger: quiet})
	if !errors.Is(err, ErrSchemaTooOld) {
		t.Fatalf("Open of a missing keyspace = %v, want ErrSchemaTooOld", err)
	}
	for _, want := range []string{"schema version 0", fmt.Sprintf("this binary needs %d", latestVersion()), "run `glimpse migrate --store=cassandra`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// create-schema creates it.
	cfg.CreateSchema = true
	openTest(t, cfg, Options{}).Close()
}

// withExtraMigration makes this binary need one more schema version for the test.
func withExtraMigration(t *testing.T) {
	t.Helper()
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	next := len(saved) + 1
	migrations = append(slices.Clone(saved), migration{
		version: next,
		name:    fmt.Sprintf("%04d_test_extra", next),
		stmts:   []string{`CREATE TABLE IF NOT EXISTS test_extra (id text PRIMARY KEY, note text)`},
	})
}

func TestSchemaTooOld(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	cfg := testConfig(newKeyspace("old"))
	if _, err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	have := latestVersion()
	withExtraMigration(t)

	_, err := Open(ctx, cfg, Options{Logger: quiet})
	if !errors.Is(err, ErrSchemaTooOld) {
		t.Fatalf("Open of an older schema = %v, want ErrSchemaTooOld", err)
	}
	want := fmt.Sprintf("schema version %d, this binary needs %d: run `glimpse migrate --store=cassandra`", have, have+1)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	t.Log(err)

	res, err := Migrate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != have || res.To != have+1 || len(res.Applied) != 1 {
		t.Errorf("Migrate = %+v, want %d -> %d", res, have, have+1)
	}
	openTest(t, cfg, Options{}).Close()

	// With create-schema, Open migrates by itself.
	cfg2 := testConfig(newKeyspace("old2"))
	if _, err := Migrate(ctx, cfg2); err != nil {
		t.Fatal(err)
	}
	cfg2.CreateSchema = true
	openTest(t, cfg2, Options{}).Close()
}

func TestSchemaTooNew(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	cfg := testConfig(newKeyspace("new"))
	if _, err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	sess, err := connect(cfg, cfg.Keyspace, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	newer := latestVersion() + 5
	err = sess.Query(`INSERT INTO schema_version (id, version, name, applied_at) VALUES (?, ?, ?, toTimestamp(now()))`,
		schemaID, newer, "9999_future").Exec()
	sess.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, cfg, Options{Logger: quiet})
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade glimpse") {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew telling to upgrade", err)
	}
	t.Log(err)
	if _, err := Migrate(ctx, cfg); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Migrate of a newer schema = %v, want ErrSchemaTooNew", err)
	}
	cfg.CreateSchema = true
	if _, err := Open(ctx, cfg, Options{Logger: quiet}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open with create-schema of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestTTL(t *testing.T) {
	needNode(t)
	t.Run("defaults", func(t *testing.T) {
		cfg := testConfig(testKeyspace)
		cfg.MinuteTTL, cfg.HourTTL, cfg.DayTTL, cfg.EventsTTL = 7*day, 400*day, 0, 30*day
		checkTTLs(t, cfg)
	})
	t.Run("retention flags", func(t *testing.T) {
		cfg := testConfig(testKeyspace)
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse([]string{"--retention.minute=3d", "--retention.hour=90d", "--retention.day=2y", "--retention.events=12d"}); err != nil {
			t.Fatal(err)
		}
		hosts, ks := testConfig(testKeyspace).Hosts, testKeyspace
		cfg.Hosts, cfg.Keyspace, cfg.Consistency, cfg.SerialConsistency, cfg.Timeout = hosts, ks, "ONE", "SERIAL", 20*time.Second
		if r := cfg.Retention(); r.Minute != 3*day || r.Hour != 90*day || r.Day != 2*year || r.Events != 12*day {
			t.Fatalf("retention from flags = %+v", r)
		}
		checkTTLs(t, cfg)
	})
}

// checkTTLs writes a row of every granularity and an event, and reads TTL(column) back:
// it must be the configured retention.
func checkTTLs(t *testing.T, cfg Config) {
	ctx := context.Background()
	s := openTest(t, cfg, Options{})
	defer s.Close()

	site := fmt.Sprintf("ttl-%x.example", rand.Uint64())
	b := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
	rows := []store.Row{
		{RowKey: store.RowKey{Site: site, Granularity: store.Minute, Bucket: b}, Aggregate: store.Aggregate{Pageviews: 1, Visitors: []byte{1}}},
		{RowKey: store.RowKey{Site: site, Granularity: store.Hour, Bucket: b}, Aggregate: store.Aggregate{Pageviews: 2}},
		{RowKey: store.RowKey{Site: site, Granularity: store.Day, Bucket: b}, Aggregate: store.Aggregate{Pageviews: 3}},
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ev := store.StoredEvent{Site: site, Shard: 2, Offset: 7, Time: b * 1000, Payload: []byte("x")}
	if err := s.WriteEvents(ctx, []store.StoredEvent{ev}); err != nil {
		t.Fatal(err)
	}

	// ttl reads TTL(column) of one row: -1 when the cell has none.
	ttl := func(stmt string, args ...any) int {
		t.Helper()
		var v *int
		if err := s.sess.Query(stmt, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		if v == nil {
			return -1
		}
		return *v
	}
	near := func(what string, got int, want time.Duration) {
		t.Helper()
		w := ttlSeconds(want)
		if want == 0 {
			if got != -1 {
				t.Errorf("%s: TTL %d s, want none", what, got)
			}
			return
		}
		if got > w || got < w-120 {
			t.Errorf("%s: TTL %d s, want about %d s", what, got, w)
		}
	}
	for _, r := range rows {
		for _, col := range []string{"pageviews", "visitors", "bus_offset"} {
			got := ttl(`SELECT TTL(`+col+`) FROM rollups WHERE site = ? AND granularity = ? AND dimension = ? AND period = ? AND bucket = ? AND value = ? AND shard = ?`,
				site, int8(r.Granularity), r.Dimension, periodOf(r.Bucket), r.Bucket, r.Value, r.Shard)
			near(fmt.Sprintf("%s row %s", r.Granularity, col), got, map[store.Granularity]time.Duration{store.Minute: cfg.MinuteTTL, store.Hour: cfg.HourTTL, store.Day: cfg.DayTTL}[r.Granularity])
		}
	}
	got := ttl(`SELECT TTL(payload) FROM events WHERE site = ? AND day = ? AND shard = ? AND time_ms = ? AND bus_offset = ?`,
		site, dayOf(ev.Time), ev.Shard, ev.Time, ev.Offset)
	near("event payload", got, cfg.EventsTTL)
	// The index of the day outlives the events (TTL of a set gives one TTL per element).
	var shardsTTL []int
	if err := s.sess.Query(`SELECT TTL(shards) FROM event_days WHERE site = ? AND day = ?`, site, dayOf(ev.Time)).Scan(&shardsTTL); err != nil {
		t.Fatal(err)
	}
	if len(shardsTTL) != 1 || shardsTTL[0] <= ttlSeconds(cfg.EventsTTL)+ttlSeconds(indexRefresh) {
		t.Errorf("event_days TTL = %v, want one entry longer than the events' %d s plus %v", shardsTTL, ttlSeconds(cfg.EventsTTL), indexRefresh)
	}
}

func TestClosed(t *testing.T) {
	needNode(t)
	s := openTest(t, testConfig(testKeyspace), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ctx := context.Background()
	if err := s.WriteRows(ctx, []store.Row{{RowKey: store.RowKey{Site: "s", Granularity: store.Day}}}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WriteRows after Close = %v, want ErrUnavailable", err)
	}
	if err := s.ScanRows(ctx, store.RowRange{Site: "s", Granularity: store.Day, To: 1}, func(store.Row) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ScanRows after Close = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.GetMeta(ctx, "ns", "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetMeta after Close = %v, want ErrUnavailable", err)
	}
}

func TestUnreachable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hosts = []string{"127.0.0.1:1"} // nothing listens on port 1
	cfg.ConnectTimeout = time.Second
	_, err := Open(context.Background(), cfg, Options{Logger: quiet})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "--cassandra.hosts") {
		t.Fatalf("Open of an unreachable cluster = %v, want ErrUnavailable naming --cassandra.hosts", err)
	}
	if _, err := Migrate(context.Background(), cfg); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Migrate of an unreachable cluster = %v, want ErrUnavailable", err)
	}
}

func TestRefusedRows(t *testing.T) {
	needNode(t)
	s := openTest(t, testConfig(testKeyspace), Options{})
	defer s.Close()
	ctx := context.Background()
	for _, k := range []store.RowKey{
		{Site: "", Granularity: store.Day},
		{Site: "s", Granularity: 0},
		{Site: "s", Granularity: store.Day, Bucket: -86400},
		{Site: "s", Granularity: store.Day, Bucket: maxBucket},
		{Site: "s", Granularity: store.Day, Value: "\xff"},
	} {
		if err := s.WriteRows(ctx, []store.Row{{RowKey: k}}); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("WriteRows(%+v) = %v, want a plain error", k, err)
		}
		if rows, err := s.GetRows(ctx, []store.RowKey{k}); err != nil || len(rows) != 0 {
			t.Errorf("GetRows(%+v) = %v, %v; want nothing", k, rows, err)
		}
	}
	// A full-range scan is clamped to the supported years; day rows fit in the limit.
	n := 0
	err := s.ScanRows(ctx, store.RowRange{Site: "refused.example", Granularity: store.Minute, From: -1 << 62, To: 1 << 62}, func(store.Row) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "shorter range") {
		t.Errorf("ScanRows of all time = %v, want a range-too-wide error", err)
	}
}

func TestValuesFilterWithoutServerFiltering(t *testing.T) {
	needNode(t)
	s := openTest(t, testConfig(testKeyspace), Options{})
	defer s.Close()
	s.noFiltering.Store(true) // as after a cluster refused ALLOW FILTERING
	ctx := context.Background()
	site := fmt.Sprintf("nofilter-%x.example", rand.Uint64())
	b := time.Date(2025, 3, 10, 23, 0, 0, 0, time.UTC).Unix()
	var rows []store.Row
	for i := int64(0); i < 4; i++ { // crosses midnight
		for _, v := range []string{"/a", "/b", "/c"} {
			rows = append(rows, store.Row{RowKey: store.RowKey{Site: site, Granularity: store.Hour, Dimension: "event:page", Bucket: b + 3600*i, Value: v}})
		}
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Hour, Dimension: "event:page", From: b, To: b + 4*3600, Values: []string{"/c", "/a"}},
		func(r store.Row) error {
			got = append(got, fmt.Sprintf("%d%s", (r.Bucket-b)/3600, r.Value))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0/a", "0/c", "1/a", "1/c", "2/a", "2/c", "3/a", "3/c"}; !slices.Equal(got, want) {
		t.Errorf("filtered scan = %v, want %v", got, want)
	}
}

func TestMetrics(t *testing.T) {
	needNode(t)
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig(testKeyspace)
	s := openTest(t, cfg, Options{Metrics: reg})
	ctx := context.Background()
	site := fmt.Sprintf("metrics-%x.example", rand.Uint64())
	rows := []store.Row{
		{RowKey: store.RowKey{Site: site, Granularity: store.Hour, Bucket: 0}},
		{RowKey: store.RowKey{Site: site, Granularity: store.Hour, Bucket: 3600}},
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Hour, From: 0, To: 7200}, func(store.Row) error { return nil }); err != nil {
		t.Fatal(err)
	}
	errCb := errors.New("callback")
	_ = s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Hour, From: 0, To: 7200}, func(store.Row) error { return errCb })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = s.WriteRows(cctx, rows)
	_ = s.WriteRows(ctx, []store.Row{{RowKey: store.RowKey{Site: site, Granularity: 9}}}) // refused: an "other" error

	if got := counterValue(t, s.m.RowsWritten); got != 2 {
		t.Errorf("rows written = %v, want 2", got)
	}
	if got := counterValue(t, s.m.RowsRead); got != 3 {
		t.Errorf("rows read = %v, want 3", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather (pedantic): %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	for _, name := range []string{"glimpse_store_write_seconds", "glimpse_store_read_seconds", "glimpse_store_rows_written_total", "glimpse_store_cassandra_requests_total"} {
		if byName[name] == nil {
			t.Errorf("metric %s not exported", name)
		}
	}
	if f := byName["glimpse_store_errors_total"]; f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Errorf("errors_total = %v, want exactly the refused write (callback errors and cancellations excluded)", f)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening with the same registry keeps counting.
	s = openTest(t, cfg, Options{Metrics: reg})
	defer s.Close()
	if err := s.WriteRows(ctx, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, s.m.RowsWritten); got != 3 {
		t.Errorf("rows written after reopen = %v, want 3", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A callback may call into the store, and Close waits for a running scan to finish.
func TestReentrantCallbackAndCloseDuringScan(t *testing.T) {
	needNode(t)
	s := openTest(t, testConfig(testKeyspace), Options{})
	ctx := context.Background()
	site := fmt.Sprintf("reentrant-%x.example", rand.Uint64())
	rows := []store.Row{
		{RowKey: store.RowKey{Site: site, Granularity: store.Day, Bucket: 0}},
		{RowKey: store.RowKey{Site: site, Granularity: store.Day, Bucket: 86400}},
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	calls := 0
	err := s.ScanRows(ctx, store.RowRange{Site: site, Granularity: store.Day, From: 0, To: 2 * 86400}, func(r store.Row) error {
		calls++
		if calls == 1 {
			r.Pageviews = 5
			if err := s.WriteRows(ctx, []store.Row{r}); err != nil {
				return err
			}
			if _, err := s.GetRows(ctx, []store.RowKey{r.RowKey}); err != nil {
				return err
			}
			go func() { closed <- s.Close() }()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("scan delivered %d rows, want 2", calls)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestTTLBeyond2038(t *testing.T) {
	needNode(t)
	cfg := testConfig(testKeyspace)
	cfg.DayTTL = 20 * year
	s, err := Open(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		if !strings.Contains(err.Error(), "retention.day is longer than this cluster accepts") {
			t.Fatalf("Open with a 20y TTL = %v, want an error naming retention.day", err)
		}
		t.Log(err)
		return
	}
	// A cluster in storage_compatibility_mode NONE takes it.
	defer s.Close()
	if err := s.WriteRows(context.Background(), []store.Row{{RowKey: store.RowKey{Site: "ttl20.example", Granularity: store.Day, Bucket: 0}}}); err != nil {
		t.Fatal(err)
	}
}

// A keyspace created by a glimpse that knew only schema version 1 keeps its rows and gets
// tiered compaction on the rollups from `glimpse migrate` (schema version 2).
func TestMigrateFromVersion1(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	cfg := testConfig(newKeyspace("v1"))
	saved := migrations
	migrations = saved[:1]
	_, err := Migrate(ctx, cfg)
	migrations = saved
	if err != nil {
		t.Fatal(err)
	}
	compaction := func() map[string]string {
		t.Helper()
		sess, err := connect(cfg, "", quiet, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var c map[string]string
		if err := sess.Query(`SELECT compaction FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'rollups'`, cfg.Keyspace).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := compaction(); c["scaling_parameters"] != "L10" {
		t.Fatalf("rollups compaction at schema version 1 = %v, want UCS L10", c)
	}
	sess, err := connect(cfg, cfg.Keyspace, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	row := store.Row{
		RowKey:    store.RowKey{Site: "v1.example", Granularity: store.Hour, Dimension: "event:page", Bucket: 1_767_225_600, Value: "/", Shard: 3},
		Aggregate: store.Aggregate{Pageviews: 7, Visits: 2, Visitors: []byte{1, 2, 3}},
		Offset:    41,
	}
	err = sess.Query(insertRow, row.Site, int8(row.Granularity), row.Dimension, periodOf(row.Bucket), row.Bucket, row.Value, row.Shard,
		row.Pageviews, row.Events, row.Visits, row.Bounces, row.DurationMS, row.Visitors, row.Offset, 0).Exec()
	sess.Close()
	if err != nil {
		t.Fatal(err)
	}

	res, err := Migrate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 1 || res.To != latestVersion() || len(res.Applied) != latestVersion()-1 {
		t.Errorf("Migrate from version 1 = %+v, want 1 -> %d", res, latestVersion())
	}
	if c := compaction(); !strings.HasSuffix(c["class"], "UnifiedCompactionStrategy") || c["scaling_parameters"] != "T4" {
		t.Errorf("rollups compaction after Migrate = %v, want UCS T4", c)
	}
	s := openTest(t, cfg, Options{})
	defer s.Close()
	got, err := s.GetRows(ctx, []store.RowKey{row.RowKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pageviews != 7 || got[0].Offset != 41 {
		t.Errorf("row written at version 1, read after migrating = %+v, want pageviews 7, offset 41", got)
	}
}
