package pebblestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions() Options {
	return Options{Logger: quiet, CacheSize: 4 << 20, MemTableSize: 4 << 20}
}

func mustOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir := t.TempDir()
		s := mustOpen(t, dir, testOptions())
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, func() store.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			s = mustOpen(t, dir, testOptions())
			return s
		}
	})
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOptions())
	defer s.Close()
	_, err := Open(dir, testOptions())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir+" is locked by another process") || !strings.Contains(msg, "is another glimpse running with the same --data-dir?") {
		t.Errorf("error %q does not tell the user what to check", msg)
	}
	// Once the first store is closed the directory opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, testOptions())
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write anywhere")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	_, err := Open(dir, testOptions())
	if err == nil || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("Open of a read-only directory = %v, want a not-writable error naming --data-dir", err)
	}

	if err := os.Chmod(parent, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(parent, 0o700) })
	_, err = Open(filepath.Join(parent, "new"), testOptions())
	if err == nil || !strings.Contains(err.Error(), "cannot create data directory") {
		t.Fatalf("Open under a read-only parent = %v, want a cannot-create error", err)
	}
}

func TestOpenEmptyDir(t *testing.T) {
	if _, err := Open("", testOptions()); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestFormatVersionMismatch(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOptions())
	if err := s.db.Set(formatKey, []byte("99"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, testOptions())
	if err == nil || !strings.Contains(err.Error(), "format") {
		t.Fatalf("Open of a newer format = %v, want a format error", err)
	}
	// The failed Open released the lock: a second try fails the same way, not as locked.
	s2, err := Open(dir, testOptions())
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a newer format succeeded")
	}
	if errors.Is(err, ErrLocked) {
		t.Fatalf("a failed Open left the directory locked: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
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

// A callback may call into the store, and Close waits for a running scan to finish.
func TestReentrantCallbackAndCloseDuringScan(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	ctx := context.Background()
	rows := []store.Row{
		{RowKey: store.RowKey{Site: "s", Granularity: store.Day, Bucket: 0, Shard: 0}},
		{RowKey: store.RowKey{Site: "s", Granularity: store.Day, Bucket: 86400, Shard: 0}},
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	calls := 0
	err := s.ScanRows(ctx, store.RowRange{Site: "s", Granularity: store.Day, From: 0, To: 2 * 86400}, func(r store.Row) error {
		calls++
		if calls == 1 {
			r.Pageviews = 5
			if err := s.WriteRows(ctx, []store.Row{r}); err != nil {
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

func TestUnknownGranularity(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	defer s.Close()
	err := s.WriteRows(context.Background(), []store.Row{{RowKey: store.RowKey{Site: "s", Granularity: 0}}})
	if err == nil {
		t.Fatal("WriteRows with granularity 0 succeeded")
	}
}

// Ranges at the ends of the int64 line: no overflow in bounds or seeks.
func TestExtremeRanges(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOptions())
	defer s.Close()
	ctx := context.Background()
	var rows []store.Row
	for _, b := range []int64{math.MinInt64, -86400, 0, 86400, math.MaxInt64} {
		for _, v := range []string{"a", "b"} {
			rows = append(rows, store.Row{RowKey: store.RowKey{Site: "s", Granularity: store.Day, Bucket: b, Value: v, Shard: math.MaxInt32}})
		}
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	count := func(r store.RowRange) int {
		n := 0
		if err := s.ScanRows(ctx, r, func(store.Row) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	all := store.RowRange{Site: "s", Granularity: store.Day, From: math.MinInt64, To: math.MaxInt64}
	if n := count(all); n != 8 { // To is exclusive: the MaxInt64 bucket is out
		t.Errorf("full range: %d rows, want 8", n)
	}
	all.Values = []string{"b"}
	if n := count(all); n != 4 {
		t.Errorf("full range, one value: %d rows, want 4", n)
	}
	all.Values = []string{"a"}
	all.From = 0
	if n := count(all); n != 2 {
		t.Errorf("[0, max) value a: %d rows, want 2", n)
	}

	var evs []store.StoredEvent
	for i, tm := range []int64{math.MinInt64, -1, 0, 1, math.MaxInt64 - 1} {
		for _, sh := range []int32{math.MinInt32, 0, math.MaxInt32} {
			evs = append(evs, store.StoredEvent{Site: "s", Shard: sh, Offset: int64(i), Time: tm})
		}
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	countEv := func(from, to int64) int {
		n := 0
		if err := s.ScanEvents(ctx, store.EventRange{Site: "s", From: from, To: to}, func(store.StoredEvent) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countEv(math.MinInt64, math.MaxInt64); n != 15 {
		t.Errorf("all events: %d, want 15", n)
	}
	if n := countEv(-1, 1); n != 6 {
		t.Errorf("events in [-1, 1): %d, want 6", n)
	}
	if n := countEv(1, math.MaxInt64); n != 6 {
		t.Errorf("events in [1, max): %d, want 6", n)
	}
}

func TestKeyOrder(t *testing.T) {
	strs := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01", "a", "a\x00", "a\x00\x00", "a\x00b", "a\x01", "ab", "b", "\xff", "\xff\xff"}
	for i := range strs {
		for j := range strs {
			a, b := appendString(nil, strs[i]), appendString(nil, strs[j])
			if got, want := strings.Compare(string(a), string(b)), strings.Compare(strs[i], strs[j]); got != want {
				t.Errorf("order of %q vs %q: encoded %d, raw %d", strs[i], strs[j], got, want)
			}
			if i != j && strings.HasPrefix(string(b), string(a)) {
				t.Errorf("encoding of %q is a prefix of the encoding of %q", strs[i], strs[j])
			}
		}
		got, rest, err := readString(append(appendString(nil, strs[i]), 7))
		if err != nil || got != strs[i] || len(rest) != 1 || rest[0] != 7 {
			t.Errorf("readString round trip of %q = %q, %v, %v", strs[i], got, rest, err)
		}
	}
	ints := []int64{math.MinInt64, -1 << 40, -2, -1, 0, 1, 2, 1 << 40, math.MaxInt64}
	for i := 1; i < len(ints); i++ {
		if string(appendInt64(nil, ints[i-1])) >= string(appendInt64(nil, ints[i])) {
			t.Errorf("int64 %d does not sort before %d", ints[i-1], ints[i])
		}
		v, _, _ := readInt64(appendInt64(nil, ints[i]))
		if v != ints[i] {
			t.Errorf("int64 round trip %d = %d", ints[i], v)
		}
	}
	if _, _, err := readString([]byte("abc")); err == nil {
		t.Error("readString of an unterminated string succeeded")
	}
	if _, _, err := readString([]byte{'a', 0, 7}); err == nil {
		t.Error("readString of a bad escape succeeded")
	}
	if prefixEnd([]byte{0xff, 0xff}) != nil {
		t.Error("prefixEnd of all-0xff should be nil")
	}
	if got := prefixEnd([]byte{1, 0xff}); string(got) != "\x02" {
		t.Errorf("prefixEnd(01 ff) = %x", got)
	}
}

func TestDayOf(t *testing.T) {
	for _, c := range []struct{ t, d int64 }{{0, 0}, {dayMillis - 1, 0}, {dayMillis, 1}, {-1, -1}, {-dayMillis, -1}, {-dayMillis - 1, -2}} {
		if got := dayOf(c.t); got != c.d {
			t.Errorf("dayOf(%d) = %d, want %d", c.t, got, c.d)
		}
	}
}

func TestValueCodec(t *testing.T) {
	r := store.Row{Aggregate: store.Aggregate{Pageviews: -5, Events: math.MaxInt64, Visitors: []byte{}}, Offset: math.MinInt64}
	v := appendRowValue(nil, &r)
	var got store.Row
	if err := decodeRowValue(v, &got); err != nil {
		t.Fatal(err)
	}
	if got.Pageviews != -5 || got.Events != math.MaxInt64 || got.Offset != math.MinInt64 || got.Visitors == nil || len(got.Visitors) != 0 {
		t.Errorf("round trip = %+v", got)
	}
	for i := range v {
		if err := decodeRowValue(v[:i], &got); err == nil {
			t.Errorf("decoding a value cut at %d bytes succeeded", i)
		}
	}
	v[0] = 2
	if err := decodeRowValue(v, &got); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("decoding format 2 = %v, want a newer-format error", err)
	}
	if _, err := decodeMetaValue(nil); err == nil {
		t.Error("decoding an empty meta value succeeded")
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

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	opts := testOptions()
	opts.Metrics = reg
	dir := t.TempDir()
	s := mustOpen(t, dir, opts)
	ctx := context.Background()
	rows := []store.Row{
		{RowKey: store.RowKey{Site: "s", Granularity: store.Hour, Bucket: 0}},
		{RowKey: store.RowKey{Site: "s", Granularity: store.Hour, Bucket: 3600}},
	}
	if err := s.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanRows(ctx, store.RowRange{Site: "s", Granularity: store.Hour, From: 0, To: 7200}, func(store.Row) error { return nil }); err != nil {
		t.Fatal(err)
	}
	errCb := errors.New("callback")
	_ = s.ScanRows(ctx, store.RowRange{Site: "s", Granularity: store.Hour, From: 0, To: 7200}, func(store.Row) error { return errCb })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = s.WriteRows(cctx, rows)
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
	for _, name := range []string{"glimpse_store_write_seconds", "glimpse_store_read_seconds", "glimpse_store_rows_written_total", "glimpse_store_disk_usage_bytes", "glimpse_store_read_amplification"} {
		if byName[name] == nil {
			t.Errorf("metric %s not exported", name)
		}
	}
	if f := byName["glimpse_store_errors_total"]; f != nil && len(f.GetMetric()) > 0 {
		t.Errorf("callback error or cancellation counted as a store error: %v", f)
	}
	if f := byName["glimpse_store_write_seconds"]; f != nil {
		if len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram().GetSampleCount() != 2 {
			t.Errorf("write_seconds = %v, want 2 write_rows samples (one done, one cancelled)", f)
		}
	}

	// Reopening in the same process with the same registry keeps counting.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, opts)
	defer s.Close()
	if err := s.WriteRows(ctx, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, s.m.RowsWritten); got != 3 {
		t.Errorf("rows written after reopen = %v, want 3", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather after reopen: %v", err)
	}
}

// TestOpenLockedByOtherProcess holds the directory in a child process, the way a second
// `glimpse all` started on the same --data-dir would find it.
func TestOpenLockedByOtherProcess(t *testing.T) {
	if dir := os.Getenv("PEBBLESTORE_HOLD_DIR"); dir != "" {
		s, err := Open(dir, testOptions())
		if err != nil {
			fmt.Println("open failed:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
		s.Close()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLockedByOtherProcess$")
	cmd.Env = append(os.Environ(), "PEBBLESTORE_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	_, err = Open(dir, testOptions())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "is another glimpse running with the same --data-dir?") {
		t.Fatalf("Open while another process holds the directory = %v, want ErrLocked asking about --data-dir", err)
	}
	t.Log(err)
}

func TestOpenPathIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(f, testOptions())
	if err == nil || !strings.Contains(err.Error(), "cannot create data directory") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("Open of a regular file = %v, want a cannot-create error naming --data-dir", err)
	}
}

// TestKill9 writes from a child process that is killed without warning: every WriteRows and
// WriteEvents call that returned before the kill is in the store afterwards.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("PEBBLESTORE_KILL_DIR"); dir != "" {
		s, err := Open(dir, testOptions())
		if err != nil {
			fmt.Println("open failed:", err)
			os.Exit(1)
		}
		ctx := context.Background()
		for i := int64(0); ; i++ {
			rows := make([]store.Row, 50)
			for j := range rows {
				rows[j] = store.Row{RowKey: store.RowKey{Site: "s", Granularity: store.Minute, Bucket: 60 * i, Value: fmt.Sprint(j)}, Offset: i}
			}
			if err := s.WriteRows(ctx, rows); err != nil {
				fmt.Println("write failed:", err)
				os.Exit(1)
			}
			if err := s.WriteEvents(ctx, []store.StoredEvent{{Site: "s", Offset: i, Time: 1000 * i}}); err != nil {
				fmt.Println("write failed:", err)
				os.Exit(1)
			}
			fmt.Println(i) // acknowledged
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "PEBBLESTORE_KILL_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	acked := int64(-1)
	for acked < 30 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("child stopped after %d acknowledged writes: %v", acked+1, err)
		}
		if _, err := fmt.Sscan(line, &acked); err != nil {
			t.Fatalf("child: %q", line)
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no flush
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := mustOpen(t, dir, testOptions())
	defer s.Close()
	ctx := context.Background()
	rows := 0
	if err := s.ScanRows(ctx, store.RowRange{Site: "s", Granularity: store.Minute, From: 0, To: 60 * (acked + 1)}, func(store.Row) error { rows++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := 50 * int(acked+1); rows != want {
		t.Errorf("after kill -9: %d rows of the acknowledged batches, want %d", rows, want)
	}
	evs := 0
	if err := s.ScanEvents(ctx, store.EventRange{Site: "s", From: 0, To: 1000 * (acked + 1)}, func(store.StoredEvent) error { evs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := int(acked + 1); evs != want {
		t.Errorf("after kill -9: %d acknowledged events, want %d", evs, want)
	}
}
