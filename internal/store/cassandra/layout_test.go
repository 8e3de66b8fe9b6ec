package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

func TestPeriods(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min int) int64 {
		return time.Date(y, m, d, h, min, 0, 0, time.UTC).Unix()
	}
	cases := []struct {
		bucket int64
		want   int64
	}{
		{0, 0},
		{secondsPerDay - 1, 0},
		{secondsPerDay, 1},
		{utc(2025, 1, 1, 0, 0), 20089},
		{utc(2024, 12, 31, 23, 59), 20088},
		{utc(2024, 2, 29, 12, 0), 19782},
		{maxBucket - 1, 2932896},
		{-1, -1},
	}
	for _, c := range cases {
		if got := periodOf(c.bucket); got != c.want {
			t.Errorf("periodOf(%d) = %d, want %d", c.bucket, got, c.want)
		}
	}
	// The period never decreases with the bucket, at any granularity's bucket starts.
	for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
		prev := int64(math.MinInt64)
		w := int64(g.Duration() / time.Second)
		for b := utc(2024, 12, 30, 0, 0); b < utc(2025, 1, 3, 0, 0); b += w {
			p := periodOf(g.Truncate(b * 1000))
			if p < prev {
				t.Fatalf("%s: period of %d is %d, after %d", g, b, p, prev)
			}
			prev = p
		}
	}

	ranges := []struct {
		from, to    int64
		first, last int64
		ok          bool
	}{
		{utc(2025, 1, 1, 0, 0), utc(2025, 1, 2, 0, 0), 20089, 20089, true}, // To is exclusive
		{utc(2025, 1, 1, 0, 0), utc(2025, 1, 2, 0, 0) + 1, 20089, 20090, true},
		{utc(2024, 12, 31, 23, 0), utc(2025, 1, 1, 1, 0), 20088, 20089, true},
		{utc(2025, 1, 1, 0, 0), utc(2025, 1, 31, 0, 0), 20089, 20118, true}, // 30 days
		{5, 5, 0, 0, false},
		{6, 5, 0, 0, false},
		{-100, 0, 0, 0, false},                                 // before 1970: nothing stored
		{math.MinInt64, 1, 0, 0, true},                         // clamped to 1970
		{maxBucket - 1, math.MaxInt64, 2932896, 2932896, true}, // clamped to 9999
		{maxBucket, math.MaxInt64, 0, 0, false},                // after 9999
		{math.MinInt64, math.MaxInt64, 0, maxBucket/secondsPerDay - 1, true},
	}
	for _, r := range ranges {
		first, last, ok := periodRange(r.from, r.to)
		if ok != r.ok || (ok && (first != r.first || last != r.last)) {
			t.Errorf("periodRange(%d, %d) = %d, %d, %v; want %d, %d, %v", r.from, r.to, first, last, ok, r.first, r.last, r.ok)
		}
	}
}

func TestDayOf(t *testing.T) {
	for _, c := range []struct{ t, d int64 }{{0, 0}, {msPerDay - 1, 0}, {msPerDay, 1}, {-1, -1}, {-msPerDay, -1}, {-msPerDay - 1, -2}, {math.MinInt64, math.MinInt64/msPerDay - 1}} {
		if got := dayOf(c.t); got != c.d {
			t.Errorf("dayOf(%d) = %d, want %d", c.t, got, c.d)
		}
	}
}

func TestCheckRowKey(t *testing.T) {
	ok := store.RowKey{Site: "example.com", Granularity: store.Hour, Dimension: "event:page", Bucket: 3600, Value: "/\x00é"}
	if err := checkRowKey(&ok); err != nil {
		t.Errorf("checkRowKey(%+v) = %v", ok, err)
	}
	for _, edit := range []func(*store.RowKey){
		func(k *store.RowKey) { k.Site = "" },
		func(k *store.RowKey) { k.Granularity = 4 },
		func(k *store.RowKey) { k.Bucket = -1 },
		func(k *store.RowKey) { k.Bucket = maxBucket },
		func(k *store.RowKey) { k.Value = "\xc3" },
		func(k *store.RowKey) { k.Dimension = "event:props:\xff" },
		func(k *store.RowKey) { k.Value = strings.Repeat("v", maxKeyBytes+1) },
	} {
		k := ok
		edit(&k)
		if err := checkRowKey(&k); err == nil {
			t.Errorf("checkRowKey(%+.80v) accepted", k)
		}
	}
}

func mkRow(site string, g store.Granularity, bucket int64, value string, shard int32, n int64) store.Row {
	return store.Row{RowKey: store.RowKey{Site: site, Granularity: g, Dimension: "d", Bucket: bucket, Value: value, Shard: shard}, Aggregate: store.Aggregate{Pageviews: n}}
}

func TestGroupRows(t *testing.T) {
	d0 := int64(20089 * secondsPerDay)
	rows := []store.Row{
		mkRow("a", store.Minute, d0, "x", 0, 1),
		mkRow("a", store.Minute, d0+60, "x", 0, 2),
		mkRow("a", store.Minute, d0+secondsPerDay, "x", 0, 3), // next day: another partition
		mkRow("a", store.Hour, d0, "x", 0, 4),                 // another granularity
		mkRow("b", store.Minute, d0, "x", 0, 5),               // another site
		mkRow("a", store.Minute, d0, "x", 0, 6),               // the first key again: wins
		mkRow("a", store.Minute, d0, "x", 1, 7),               // another shard, same partition
	}
	groups := groupRows(rows)
	var got []string
	for _, g := range groups {
		var s []string
		p := partOf(&g[0].RowKey)
		for _, r := range g {
			if partOf(&r.RowKey) != p {
				t.Errorf("group of %+v holds a row of %+v", p, partOf(&r.RowKey))
			}
			s = append(s, fmt.Sprint(r.Pageviews))
		}
		got = append(got, strings.Join(s, ","))
	}
	if want := "2,6,7|3|4|5"; strings.Join(got, "|") != want {
		t.Errorf("groups = %s, want %s", strings.Join(got, "|"), want)
	}
}

func TestGroupEvents(t *testing.T) {
	t0 := int64(20089 * msPerDay)
	evs := []store.StoredEvent{
		{Site: "a", Shard: 0, Offset: 1, Time: t0},
		{Site: "a", Shard: 0, Offset: 2, Time: t0 + msPerDay}, // next day
		{Site: "a", Shard: 1, Offset: 1, Time: t0},            // other shard
		{Site: "a", Shard: 0, Offset: 3, Time: t0 + 5},
		{Site: "a", Shard: 0, Offset: 1, Time: t0, Payload: []byte("again")}, // same id: wins
	}
	parts, groups := groupEvents(evs)
	var got []string
	for i, g := range groups {
		var s []string
		for _, e := range g {
			s = append(s, fmt.Sprintf("%d%s", e.Offset, e.Payload))
		}
		got = append(got, fmt.Sprintf("%s/%d/%d:%s", parts[i].site, parts[i].day, parts[i].shard, strings.Join(s, ",")))
	}
	if want := "a/20090/0:2|a/20089/1:1|a/20089/0:3,1again"; strings.Join(got, "|") != want {
		t.Errorf("groups = %s, want %s", strings.Join(got, "|"), want)
	}
}

func TestChunk(t *testing.T) {
	ws := func(sizes ...int) []write {
		out := make([]write, len(sizes))
		for i, s := range sizes {
			out[i] = write{size: s}
		}
		return out
	}
	shape := func(chunks [][]write) string {
		var parts []string
		for _, c := range chunks {
			var s []string
			for _, w := range c {
				s = append(s, fmt.Sprint(w.size))
			}
			parts = append(parts, strings.Join(s, ","))
		}
		return strings.Join(parts, "|")
	}
	cases := []struct {
		in            []write
		maxRows, maxB int
		want          string
	}{
		{nil, 3, 100, ""},
		{ws(1, 1, 1, 1, 1, 1, 1), 3, 100, "1,1,1|1,1,1|1"},
		{ws(40, 40, 40, 40), 10, 100, "40,40|40,40"},
		{ws(500, 1, 1), 10, 100, "500|1,1"}, // an oversized write goes alone
		{ws(1, 500, 1), 10, 100, "1|500|1"},
		{ws(100, 100), 10, 100, "100|100"},
	}
	for _, c := range cases {
		if got := shape(chunk(c.in, c.maxRows, c.maxB)); got != c.want {
			t.Errorf("chunk(%s, %d rows, %d bytes) = %s, want %s", shape([][]write{c.in}), c.maxRows, c.maxB, got, c.want)
		}
	}
}

func TestIndexCache(t *testing.T) {
	var c indexCache
	now := time.Now()
	parts := []eventPart{{"a", 1, 0}, {"a", 1, 2}, {"a", 2, 0}, {"b", 1, 0}}
	m := c.missing(parts, now)
	if len(m) != 3 || len(m[eventDay{"a", 1}]) != 2 {
		t.Fatalf("missing on an empty cache = %v", m)
	}
	c.done(eventDay{"a", 1}, []int32{0, 2}, now)
	m = c.missing(parts, now.Add(time.Minute))
	if len(m) != 2 || m[eventDay{"a", 1}] != nil {
		t.Errorf("missing after writing a/1 = %v, want a/2 and b/1", m)
	}
	m = c.missing(parts, now.Add(indexRefresh))
	if len(m) != 3 {
		t.Errorf("missing after the refresh interval = %v, want all", m)
	}
}

func TestLoadMigrations(t *testing.T) {
	if len(migrations) == 0 || migrations[0].version != 1 || migrations[0].name != "0001_init" {
		t.Fatalf("embedded migrations = %+v", migrations)
	}
	var tables []string
	for _, st := range migrations[0].stmts {
		if f := strings.Fields(st); len(f) > 5 && strings.EqualFold(f[0], "CREATE") {
			tables = append(tables, f[5])
		}
	}
	if got := strings.Join(tables, ","); got != "rollups,events,event_days,meta" {
		t.Errorf("0001 creates %s", got)
	}
	for _, c := range []struct {
		files map[string]string
		want  string // error substring, "" for success
	}{
		{map[string]string{"schema/0001_a.cql": "CREATE TABLE a (k int PRIMARY KEY);", "schema/0002_b.cql": "CREATE TABLE b (k int PRIMARY KEY)"}, ""},
		{map[string]string{"schema/0001_a.cql": "CREATE TABLE a (k int PRIMARY KEY);", "schema/0003_c.cql": "CREATE TABLE c (k int PRIMARY KEY)"}, "without gaps"},
		{map[string]string{"schema/0002_b.cql": "CREATE TABLE b (k int PRIMARY KEY)"}, "without gaps"},
		{map[string]string{"schema/1_a.cql": "CREATE TABLE a (k int PRIMARY KEY)"}, "NNNN_name"},
		{map[string]string{"schema/0001_a.cql": "-- only a comment\n"}, "no statement"},
		{map[string]string{"schema/0001_a.cql": "INSERT INTO a (k) VALUES ('x)"}, "unterminated"},
	} {
		fsys := fstest.MapFS{}
		for name, body := range c.files {
			fsys[name] = &fstest.MapFile{Data: []byte(body)}
		}
		ms, err := loadMigrations(fsys)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("loadMigrations(%v): %v", c.files, err)
		case c.want == "" && (len(ms) != 2 || ms[1].version != 2):
			t.Errorf("loadMigrations(%v) = %+v", c.files, ms)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("loadMigrations(%v) = %v, want an error mentioning %q", c.files, err, c.want)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	src := `-- header; with a semicolon
CREATE TABLE a (k text PRIMARY KEY) WITH comment = 'it''s; fine'; // trailing
/* block;
   comment */ CREATE TABLE "B" (k int PRIMARY KEY)
;;
INSERT INTO a (k) VALUES ('http://x--y')`
	got, err := splitStatements(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE a (k text PRIMARY KEY) WITH comment = 'it''s; fine'",
		`CREATE TABLE "B" (k int PRIMARY KEY)`,
		"INSERT INTO a (k) VALUES ('http://x--y')",
	}
	if len(got) != len(want) {
		t.Fatalf("split into %d statements %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if strings.Join(strings.Fields(got[i]), " ") != want[i] {
			t.Errorf("statement %d = %q, want %q", i, got[i], want[i])
		}
	}
	if _, err := splitStatements("/* open"); err == nil {
		t.Error("an unterminated comment was accepted")
	}
}

// netTimeout is a net.Error that timed out.
type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		err       error
		kind      string
		transient bool
	}{
		{&gocql.RequestErrUnavailable{}, kindUnavailable, true},
		{&gocql.RequestErrWriteTimeout{}, kindTimeout, true},
		{&gocql.RequestErrReadTimeout{}, kindTimeout, true},
		{&gocql.RequestErrReadFailure{}, kindFailure, true},
		{gocql.ErrTimeoutNoResponse, kindTimeout, true},
		{gocql.ErrNoConnections, kindConnection, true},
		{gocql.ErrSessionClosed, kindConnection, true},
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), kindConnection, true},
		{netTimeout{}, kindTimeout, true},
		{io.EOF, kindConnection, true},
		{ErrClosed, kindClosed, true},
		{context.Canceled, kindCanceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), kindCanceled, false},
		{errors.New("cassandra: row has an empty site"), kindOther, false},
	}
	for _, c := range cases {
		kind := errorKind(c.err)
		if kind != c.kind || transient(kind) != c.transient {
			t.Errorf("errorKind(%v) = %s (transient %v), want %s (transient %v)", c.err, kind, transient(kind), c.kind, c.transient)
		}
		wrapped := wrapErr("op", c.err)
		if errors.Is(wrapped, store.ErrUnavailable) != c.transient {
			t.Errorf("wrapErr(%v) = %v: wraps ErrUnavailable %v, want %v", c.err, wrapped, !c.transient, c.transient)
		}
		if !errors.Is(wrapped, c.err) {
			t.Errorf("wrapErr(%v) = %v lost the cause", c.err, wrapped)
		}
	}
	if wrapErr("op", nil) != nil {
		t.Error("wrapErr(nil) != nil")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 4: 400 * time.Millisecond, 10: 1600 * time.Millisecond} {
		for range 20 {
			if d := backoff(n); d < want/2 || d >= want*3/2 {
				t.Errorf("backoff(%d) = %v, want within [%v, %v)", n, d, want/2, want*3/2)
			}
		}
	}
}

func TestClock(t *testing.T) {
	var c clock
	prev := c.next()
	for range 10_000 {
		n := c.next()
		if n <= prev {
			t.Fatalf("clock went from %d to %d", prev, n)
		}
		prev = n
	}
	if d := time.Since(time.UnixMicro(prev)); d > time.Second || d < -time.Second {
		t.Errorf("clock is %v away from the wall clock", d)
	}
}
