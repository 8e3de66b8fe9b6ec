package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

const lockHelperEnv = "GLIMPSE_BUS_LOCK_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		lockHelper(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

// lockHelper is the child process of TestDirectoryLockedByAnotherProcess: it opens the
// bus, says so, and holds it until its stdin closes.
func lockHelper(dir string) {
	b, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("open")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = b.Close()
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(ioDiscard{}, nil))
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

func openT(t testing.TB, dir string, opts Options) *Bus {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(tb testing.TB) bustest.Open {
		dir := tb.TempDir()
		return func(tb testing.TB) bus.Bus {
			b, err := Open(dir, Options{Partitions: 4, Logger: quietLogger()})
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}, bustest.Options{})
}

func TestPartitionForMatchesKafkaGoHashBalancer(t *testing.T) {
	// Expectations of kafka-go's kafka.Hash{} balancer (its own test cases).
	for _, c := range []struct {
		key  []byte
		n    int
		want int
	}{
		{nil, 3, 0},
		{[]byte("blah"), 2, 0},
		{[]byte("blah"), 3, 1},
		{[]byte("boop"), 3, 2},
		{[]byte("20"), 16, 1}, // hash with the most significant bit set
	} {
		if got := PartitionFor(c.key, c.n); got != c.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
	for i := 0; i < 1000; i++ {
		if p := PartitionFor(fmt.Appendf(nil, "key-%d", i), 7); p < 0 || p >= 7 {
			t.Fatalf("PartitionFor out of range: %d", p)
		}
	}
}

func TestDirectoryLockedInThisProcess(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{})
	_, err := Open(dir, Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want an error saying the directory is in use", err)
	}
}

func TestDirectoryLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
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
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "open" {
		t.Fatalf("helper process: %q, %v", line, err)
	}
	_, err = Open(dir, Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "in use by another glimpse process") {
		t.Fatalf("Open while another process holds the directory = %v", err)
	}
}

func TestPartitionCountIsKeptOnReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := Open(dir, Options{Partitions: 3, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.Partitions(ctx, "events"); err != nil || n != 3 {
		t.Fatalf("Partitions = %d, %v", n, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b = openT(t, dir, Options{Partitions: 8, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if n, _ := b.Partitions(ctx, "events"); n != 3 {
		t.Errorf("after reopening with Partitions=8, Partitions = %d, want the stored 3", n)
	}
	if n, _ := b.Partitions(ctx, "other"); n != 8 {
		t.Errorf("a new topic got %d partitions, want 8", n)
	}
	if !strings.Contains(logs.String(), "keeps the partition count") {
		t.Errorf("no log line about the kept partition count; logs:\n%s", logs.String())
	}
}

func TestInvalidNames(t *testing.T) {
	b := openT(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, topic := range []string{"", ".", "..", "has space", "slash/topic", strings.Repeat("x", 250)} {
		if err := b.Publish(ctx, topic, bus.Message{Value: []byte("v")}); err == nil {
			t.Errorf("Publish to topic %q succeeded", topic)
		}
	}
	if err := b.Consume(ctx, "ok", "bad\x00group", func(context.Context, bus.Claim) error { return nil }); err == nil {
		t.Error("Consume with a NUL in the group name succeeded")
	}
	big := bus.Message{Value: make([]byte, DefaultMaxMessageBytes+1)}
	if err := b.Publish(ctx, "ok", big); err == nil || errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish of an oversized message = %v, want a non-retryable error", err)
	}
}

// Every Publish that returned nil is in the log after Close and reopen, even when Close
// races with many publishers.
func TestAcknowledgedSurvivesCloseRace(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, Options{Partitions: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[string]bool{}
		n     atomic.Int64
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				err := b.Publish(context.Background(), "events", bus.Message{Key: []byte(v), Value: []byte(v)})
				if err != nil {
					if !errors.Is(err, bus.ErrUnavailable) {
						t.Errorf("Publish during Close = %v, want ErrUnavailable", err)
					}
					return
				}
				mu.Lock()
				acked[v] = true
				mu.Unlock()
				n.Add(1)
			}
		}(w)
	}
	for n.Load() < 500 {
		time.Sleep(time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	b = openT(t, dir, Options{Logger: quietLogger()})
	found := map[string]bool{}
	total := 0
	for p := 0; p < 4; p++ {
		part := b.topics["events"].parts[p]
		_, tail := part.bounds()
		total += int(tail)
		c := &claim{g: b.group(b.topics["events"], "check"), part: part, ctx: context.Background()}
		c.active.Store(true)
		msgs, err := c.read(0, tail)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			if m.Offset != int64(i) {
				t.Fatalf("partition %d: offset %d at position %d", p, m.Offset, i)
			}
			found[string(m.Value)] = true
		}
	}
	for v := range acked {
		if !found[v] {
			t.Errorf("acknowledged message %s lost", v)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), total)
}

func TestPublishHonoursContextWhileSyncIsSlow(t *testing.T) {
	b := openT(t, t.TempDir(), Options{Partitions: 1})
	inSync, release := make(chan struct{}, 1), make(chan struct{})
	b.beforeSyncCommit = func() {
		select {
		case inSync <- struct{}{}:
			<-release
		default:
		}
	}
	first := make(chan error, 1)
	go func() { first <- b.Publish(context.Background(), "events", bus.Message{Value: []byte("first")}) }()
	<-inSync // the writer is now stuck in a slow fsync
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := b.Publish(ctx, "events", bus.Message{Value: []byte("second")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Publish took %v to honour its ctx", took)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first Publish = %v", err)
	}
	// The withdrawn request was never written.
	if err := b.Publish(context.Background(), "events", bus.Message{Value: []byte("third")}); err != nil {
		t.Fatal(err)
	}
	if _, tail := b.topics["events"].parts[0].bounds(); tail != 2 {
		t.Errorf("tail = %d, want 2 (first and third)", tail)
	}
}

// A revoked handler that takes its time to return keeps its partition until it returns.
func TestRebalanceWaitsForRevokedHandler(t *testing.T) {
	b := openT(t, t.TempDir(), Options{Partitions: 2})
	var (
		mu      sync.Mutex
		holder  = map[int]string{}
		overlap atomic.Bool
	)
	handler := func(name string, linger time.Duration) bus.Handler {
		return func(ctx context.Context, c bus.Claim) error {
			mu.Lock()
			if _, ok := holder[c.Partition()]; ok {
				overlap.Store(true)
			}
			holder[c.Partition()] = name
			mu.Unlock()
			<-ctx.Done()
			time.Sleep(linger)
			mu.Lock()
			delete(holder, c.Partition())
			mu.Unlock()
			return ctx.Err()
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- b.Consume(ctxA, "events", "g", handler("a", 50*time.Millisecond)) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(holder) == 2 })
	ctxB, stopB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.Consume(ctxB, "events", "g", handler("b", 0)) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return holder[0] == "a" && holder[1] == "b" })
	stopA()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return holder[0] == "b" && holder[1] == "b" })
	stopB()
	for _, done := range []chan error{doneA, doneB} {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Consume = %v, want context.Canceled", err)
		}
	}
	if overlap.Load() {
		t.Error("a partition was handed over before its revoked handler returned")
	}
}

func TestCloseEndsConsume(t *testing.T) {
	b, err := Open(t.TempDir(), Options{Partitions: 2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	fetchErr := make(chan error, 2)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(context.Background(), "events", "g", func(ctx context.Context, c bus.Claim) error {
			_, err := c.Fetch(context.Background(), 1)
			fetchErr <- err
			return nil
		})
	}()
	waitFor(t, func() bool {
		b.mu.RLock()
		g := b.groups[groupID{"events", "g"}]
		b.mu.RUnlock()
		if g == nil {
			return false
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.slots[0].run != nil && g.slots[1].run != nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) || !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Consume after Close = %v, want ErrClosed", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-fetchErr; err == nil {
			t.Error("Fetch with a background ctx did not fail when the bus closed")
		}
	}
	if _, err := b.Partitions(context.Background(), "events"); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Partitions after Close = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestClaimUnusableAfterHandlerReturns(t *testing.T) {
	b := openT(t, t.TempDir(), Options{Partitions: 1})
	ctx := context.Background()
	if err := b.Publish(ctx, "events", bus.Message{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	claims := make(chan bus.Claim, 1)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, "events", "g", func(ctx context.Context, c bus.Claim) error {
			if err := c.SetOffset(2); err == nil {
				t.Error("SetOffset past the end succeeded")
			}
			if err := c.Commit(ctx, 2); err == nil {
				t.Error("Commit past the end succeeded")
			}
			if _, err := c.Fetch(ctx, 0); err == nil {
				t.Error("Fetch(max=0) succeeded")
			}
			claims <- c
			return nil // returning on its own leaves the partition idle
		})
	}()
	c := <-claims
	time.Sleep(10 * time.Millisecond)
	if err := c.Commit(ctx, 1); err == nil {
		t.Error("Commit on a claim whose handler returned succeeded")
	}
	if _, err := c.Fetch(ctx, 1); err == nil {
		t.Error("Fetch on a claim whose handler returned succeeded")
	}
	cancel()
	<-done
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	setClock := func(tm time.Time) { clock.Store(&tm) }
	setClock(t0)
	open := func() *Bus {
		b, err := Open(dir, Options{Partitions: 1, Retention: time.Hour, RetentionCheck: time.Hour, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		b.now = func() time.Time { return *clock.Load() }
		return b
	}
	b := open()
	for i := 0; i < 10; i++ {
		if err := b.Publish(ctx, "events", bus.Message{Value: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	setClock(t0.Add(30 * time.Minute))
	for i := 10; i < 12; i++ {
		if err := b.Publish(ctx, "events", bus.Message{Value: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A group commits at 4 at t0+90m.
	setClock(t0.Add(90 * time.Minute))
	commitAt(t, b, "events", "slow", 4)
	part := b.topics["events"].parts[0]

	// At t0+80m everything from t0 is older than an hour, but "slow" still needs 4...
	if err := b.enforceRetention(t0.Add(80 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if low, tail := part.bounds(); low != 4 || tail != 12 {
		t.Fatalf("after retention: low %d tail %d, want 4 12", low, tail)
	}
	// ...and a new group starts at the first kept message.
	if got := firstOffset(t, b, "events", "fresh"); got != 4 {
		t.Errorf("fresh group read first offset %d, want 4", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: bounds persisted. At t0+3h "slow" has not committed for longer than the
	// retention and no longer holds messages back; all are older than an hour.
	b = open()
	part = b.topics["events"].parts[0]
	if low, tail := part.bounds(); low != 4 || tail != 12 {
		t.Fatalf("after reopen: low %d tail %d, want 4 12", low, tail)
	}
	if err := b.enforceRetention(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if low, tail := part.bounds(); low != 12 || tail != 12 {
		t.Fatalf("after full retention: low %d tail %d, want 12 12", low, tail)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// An emptied partition keeps its offsets going.
	b = open()
	defer b.Close()
	if err := b.Publish(ctx, "events", bus.Message{Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if got := firstOffset(t, b, "events", "fresh2"); got != 12 {
		t.Errorf("first message after an emptied partition has offset %d, want 12", got)
	}
}

func commitAt(t *testing.T, b *Bus, topic, group string, next int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- b.Consume(ctx, topic, group, func(hctx context.Context, c bus.Claim) error {
			err := c.Commit(hctx, next)
			cancel()
			return err
		})
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("commit: %v", err)
	}
}

func firstOffset(t *testing.T, b *Bus, topic, group string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := int64(-1)
	err := b.Consume(ctx, topic, group, func(hctx context.Context, c bus.Claim) error {
		msgs, err := c.Fetch(hctx, 1)
		if err != nil {
			return err
		}
		got = msgs[0].Offset
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("consume: %v", err)
	}
	return got
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	b, err := Open(dir, Options{Partitions: 2, Metrics: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := b.Publish(ctx, "events", bus.Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	commitAt(t, b, "events", "g", 0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	sum := func(name string) (total float64, series int) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				series++
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return total, series
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if got, _ := sum("glimpse_bus_published_total"); got != 5 {
		t.Errorf("published_total = %v, want 5", got)
	}
	if got, _ := sum("glimpse_bus_commits_total"); got < 1 {
		t.Errorf("commits_total = %v", got)
	}
	// The group's consumer left: it holds no partition, so no lag is reported (see
	// TestConsumerLagOfHeldPartitions).
	if lag, series := sum("glimpse_bus_consumer_lag"); series != 0 {
		t.Errorf("consumer lag = %v over %d series after the consumer left, want none", lag, series)
	}
	for _, n := range []string{"glimpse_bus_published_total", "glimpse_bus_publish_seconds", "glimpse_bus_commits_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Close unregistered them: a new bus can register on the same registry.
	openT(t, dir, Options{Metrics: reg})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
