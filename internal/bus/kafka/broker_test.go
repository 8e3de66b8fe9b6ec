package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

// Tests against a real broker run when GLIMPSE_TEST_KAFKA names one:
//
//	deploy/local/kafka.sh start
//	GLIMPSE_TEST_KAFKA=127.0.0.1:9092 go test ./internal/bus/kafka/
//
// The test that stops and restarts a broker runs one of its own (other ports, a temporary
// data dir, 512 MB heap) with the script, so that it never disturbs the shared broker:
//
//	GLIMPSE_TEST_KAFKA_SCRIPT=deploy/local/kafka.sh go test -run TestBrokerDown ./internal/bus/kafka/
//
// GLIMPSE_TEST_KAFKA_LOG=debug (or info, warn) shows the bus's log lines.
const (
	envBroker = "GLIMPSE_TEST_KAFKA"
	envScript = "GLIMPSE_TEST_KAFKA_SCRIPT"
	envLog    = "GLIMPSE_TEST_KAFKA_LOG"
)

// suitePartitions keeps the broker's load modest: the suite creates a few dozen topics.
const suitePartitions = 4

func testBroker(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(envBroker)
	if addr == "" {
		tb.Skipf("no Kafka broker: run `deploy/local/kafka.sh start`, then `%s=127.0.0.1:9092 go test ./internal/bus/kafka/`", envBroker)
	}
	return addr
}

func testLogger() *slog.Logger {
	var level slog.Level
	switch os.Getenv(envLog) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	default:
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.Partitions = suitePartitions
	return cfg
}

func openTest(tb testing.TB, cfg Config, opts Options) *Bus {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	b, err := New(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// runPrefix starts the names of every topic and group of this test run.
var runPrefix = fmt.Sprintf("glimpsetest%x", time.Now().UnixNano())

// deleteTopics removes the topics this run created, so a long-lived local broker does not
// collect them.
func deleteTopics(tb testing.TB, addr, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := &kafkago.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 20 * time.Second, Transport: transport}
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		tb.Logf("list topics to delete: %v", err)
		return
	}
	var names []string
	for _, t := range md.Topics {
		if strings.HasPrefix(t.Name, prefix) {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	res, err := client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: names})
	if err != nil {
		tb.Logf("delete %d test topics: %v", len(names), err)
		return
	}
	for name, err := range res.Errors {
		if err != nil {
			tb.Logf("delete test topic %s: %v", name, err)
		}
	}
}

// forEachCluster runs fn against an in-process kfake cluster, and against the real broker
// when one is configured.
func forEachCluster(t *testing.T, name string, fn func(t *testing.T, addr, prefix string)) {
	t.Run("kfake", func(t *testing.T) {
		fn(t, kfakeCluster(t), runPrefix+"-"+name)
	})
	t.Run("broker", func(t *testing.T) {
		addr := testBroker(t)
		prefix := runPrefix + "-" + name
		t.Cleanup(func() { deleteTopics(t, addr, prefix) })
		fn(t, addr, prefix)
	})
}

func TestConformance(t *testing.T) {
	addr := testBroker(t)
	prefix := runPrefix + "-conf"
	t.Cleanup(func() { deleteTopics(t, addr, prefix) })
	bustest.Run(t, func(tb testing.TB) bustest.Open {
		return func(tb testing.TB) bus.Bus {
			b, err := New(testConfig(addr), Options{Logger: testLogger()})
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}, bustest.Options{
		Timeout: 20 * time.Second,
		// A rebalance takes a heartbeat interval plus a join round; a leave is immediate.
		// The margin covers a slow, shared machine.
		RebalanceTimeout: 30 * time.Second,
		Prefix:           prefix,
	})
}

// A topic the bus creates gets the configured partition count; an existing topic keeps
// its count whatever another client is configured with.
func TestTopicAutoCreation(t *testing.T) {
	addr := testBroker(t)
	prefix := runPrefix + "-create"
	t.Cleanup(func() { deleteTopics(t, addr, prefix) })
	ctx := context.Background()

	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	b := openTest(t, cfg, Options{})
	topic := prefix + "-partitions"
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n != DefaultPartitions {
		t.Errorf("Partitions of a new topic = %d, want %d", n, DefaultPartitions)
	}
	if got := brokerPartitions(t, addr, topic); got != DefaultPartitions {
		t.Errorf("the broker has %d partitions for %s, want %d", got, topic, DefaultPartitions)
	}

	// Publish creates the topic too.
	pubTopic := prefix + "-publish"
	if err := b.Publish(ctx, pubTopic, bus.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got := brokerPartitions(t, addr, pubTopic); got != DefaultPartitions {
		t.Errorf("the broker has %d partitions for %s created by Publish, want %d", got, pubTopic, DefaultPartitions)
	}

	// Another client configured with fewer partitions uses the existing topic as it is.
	other := cfg
	other.Partitions = 3
	b2 := openTest(t, other, Options{})
	if n, err := b2.Partitions(ctx, topic); err != nil || n != DefaultPartitions {
		t.Errorf("Partitions of an existing topic from a client configured with 3 = %d, %v; want %d", n, err, DefaultPartitions)
	}

	// A replication factor the cluster cannot meet is a clear, non-retryable error.
	bad := cfg
	bad.ReplicationFactor = 3
	b3 := openTest(t, bad, Options{})
	_, err = b3.Partitions(ctx, prefix+"-rf3")
	if err == nil || errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), "replication-factor") {
		t.Errorf("Partitions with replication factor 3 on one broker = %v, want an error naming --kafka.replication-factor", err)
	}
}

func brokerPartitions(t *testing.T, addr, topic string) int {
	t.Helper()
	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("read partitions of %s: %v", topic, err)
	}
	return len(parts)
}

// When a partition is revoked, the handler's last commit (on a context of its own, as the
// processor makes it) still lands, and the next owner starts there. It also reports how
// long rebalances take.
func TestCommitWhileRevokedAndRebalanceTimes(t *testing.T) {
	forEachCluster(t, "revoke", testCommitWhileRevoked)
}

func testCommitWhileRevoked(t *testing.T, addr, prefix string) {
	ctx := context.Background()
	b := openTest(t, testConfig(addr), Options{})
	topic, group := prefix+"-t", prefix+"-g"
	n, err := b.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []bus.Message
	for i := 0; i < 200; i++ {
		msgs = append(msgs, bus.Message{Key: fmt.Appendf(nil, "k%03d", i), Value: fmt.Appendf(nil, "v%03d", i)})
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}

	type commitResult struct {
		partition int
		next      int64
		err       error
	}
	var (
		mu       sync.Mutex
		held     = map[int]string{}
		finalsA  = map[int]commitResult{}
		startedB = map[int]int64{} // partition → Committed() seen by b
	)
	// Member a reads everything and commits only when its partitions are revoked.
	handlerA := func(ctx context.Context, c bus.Claim) error {
		p := c.Partition()
		mu.Lock()
		held[p] = "a"
		mu.Unlock()
		next := c.Committed()
		for {
			ms, err := c.Fetch(ctx, 50)
			if err != nil {
				break
			}
			next = ms[len(ms)-1].Offset + 1
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := c.Commit(cctx, next)
		mu.Lock()
		finalsA[p] = commitResult{p, next, err}
		delete(held, p)
		mu.Unlock()
		return ctx.Err()
	}
	handlerB := func(ctx context.Context, c bus.Claim) error {
		mu.Lock()
		held[c.Partition()] = "b"
		startedB[c.Partition()] = c.Committed()
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		delete(held, c.Partition())
		mu.Unlock()
		return ctx.Err()
	}
	holders := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for _, m := range held {
			out[m]++
		}
		return out
	}
	waitFor := func(what string, d time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > d {
				t.Fatalf("timed out after %v waiting for %s", d, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}

	actx, stopA := context.WithCancel(ctx)
	doneA := make(chan error, 1)
	t0 := time.Now()
	go func() { doneA <- b.Consume(actx, topic, group, handlerA) }()
	firstJoin := waitFor("member a to hold every partition", 30*time.Second, func() bool { return holders()["a"] == n })
	time.Sleep(500 * time.Millisecond) // let a read what is there

	b2 := openTest(t, testConfig(addr), Options{})
	bctx, stopB := context.WithCancel(ctx)
	doneB := make(chan error, 1)
	t1 := time.Now()
	go func() { doneB <- b2.Consume(bctx, topic, group, handlerB) }()
	split := waitFor("members a and b to split the partitions", 30*time.Second, func() bool {
		h := holders()
		return h["a"] > 0 && h["b"] > 0 && h["a"]+h["b"] == n
	})
	mu.Lock()
	for p, r := range finalsA {
		if r.err != nil {
			t.Errorf("partition %d: commit of %d after revocation failed: %v", p, r.next, r.err)
		}
		if r.next == 0 {
			t.Errorf("partition %d: member a read nothing before the rebalance", p)
		}
	}
	for p, committed := range startedB {
		if r, ok := finalsA[p]; !ok {
			t.Errorf("partition %d went to b but a never finished it", p)
		} else if committed != r.next {
			t.Errorf("partition %d: b started at Committed() = %d, a committed %d when it was revoked", p, committed, r.next)
		}
	}
	mu.Unlock()

	t2 := time.Now()
	stopB()
	if err := <-doneB; !errors.Is(err, context.Canceled) {
		t.Errorf("Consume of b = %v, want context.Canceled", err)
	}
	leaveReturned := time.Since(t2)
	takeBack := waitFor("member a to take every partition back", 30*time.Second, func() bool { return holders()["a"] == n })
	t.Logf("first join of a fresh group: %v; second member joined and the partitions were split after %v; "+
		"Consume returned %v after its ctx was cancelled; the remaining member held every partition again %v later (%v after the leave)",
		firstJoin.Round(time.Millisecond), split.Round(time.Millisecond), leaveReturned.Round(time.Millisecond),
		takeBack.Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
	_ = t0
	_ = t1
	stopA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Errorf("Consume of a = %v, want context.Canceled", err)
	}
}

// With the broker stopped, Publish fails with bus.ErrUnavailable within the write
// timeout; once it is back, publishing and consuming resume without a new client. The
// test runs a broker of its own (other ports, a temporary data dir) with the script, so
// that stopping it disturbs no other test using the shared one.
func TestBrokerDown(t *testing.T) {
	script := os.Getenv(envScript)
	if script == "" {
		t.Skipf("set %s=deploy/local/kafka.sh to let this test start, stop and restart a broker of its own", envScript)
	}
	if !filepath.IsAbs(script) {
		// go test runs in the package directory; the path is given from the repository root.
		script = filepath.Join("..", "..", "..", script)
	}
	addr, ctl := privateBroker(t, script)
	ctx := context.Background()
	cfg := testConfig(addr)
	cfg.WriteTimeout = 3 * time.Second
	b := openTest(t, cfg, Options{Metrics: prometheus.NewRegistry()})
	topic, group := "down", "down-group"
	if err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}

	var got atomic.Int64
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			for {
				ms, err := c.Fetch(ctx, 100)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Fetch while the claim is live: %v", err)
					}
					return ctx.Err()
				}
				got.Add(int64(len(ms)))
				_ = c.Commit(ctx, ms[len(ms)-1].Offset+1)
			}
		})
	}()
	waitUntil(t, 30*time.Second, "the first message", func() bool { return got.Load() == 1 })

	ctl("stop")
	for i := 0; i < 3; i++ {
		start := time.Now()
		err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: []byte("while down")})
		took := time.Since(start)
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("Publish while the broker is down = %v, want an error wrapping bus.ErrUnavailable", err)
		}
		if took > cfg.WriteTimeout+time.Second {
			t.Errorf("Publish while the broker is down took %v, write timeout %v", took, cfg.WriteTimeout)
		}
		t.Logf("Publish while the broker is down failed after %v: %v", took.Round(time.Millisecond), err)
	}
	if v := counterValue(b.m.errors.WithLabelValues(opPublish)); v < 3 {
		t.Errorf("glimpse_bus_errors_total{op=publish} = %v, want at least 3", v)
	}

	ctl("start")
	start := time.Now()
	for {
		err := b.Publish(ctx, topic, bus.Message{Key: []byte("k"), Value: []byte("after")})
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("Publish still fails %v after the broker restarted: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("publishing resumed %v after the broker was ready again", time.Since(start).Round(time.Millisecond))
	waitUntil(t, 60*time.Second, "the message published after the restart", func() bool { return got.Load() >= 2 })
	t.Logf("consuming resumed %v after the broker was ready again", time.Since(start).Round(time.Millisecond))
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Consume = %v, want context.Canceled", err)
	}
}

// privateBroker starts a single-node broker with the script on free ports and a data dir
// of the test's own (with a 512 MB heap), and stops it when the test ends. ctl runs
// another command of the script (stop, start) on it.
func privateBroker(t *testing.T, script string) (addr string, ctl func(cmd string)) {
	t.Helper()
	dir := t.TempDir()
	port, controller := freePort(t), freePort(t)
	env := append(os.Environ(),
		"GLIMPSE_KAFKA_PORT="+port,
		"GLIMPSE_KAFKA_CONTROLLER_PORT="+controller,
		"GLIMPSE_KAFKA_DIR="+filepath.Join(dir, "kafka"),
		"GLIMPSE_KAFKA_HEAP_MIN=256m",
		"GLIMPSE_KAFKA_HEAP_MAX=512m",
	)
	ctl = func(cmd string) {
		t.Helper()
		start := time.Now()
		c := exec.Command(script, cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, cmd, err, out)
		}
		t.Logf("%s %s took %v", filepath.Base(script), cmd, time.Since(start).Round(time.Millisecond))
	}
	ctl("start")
	t.Cleanup(func() { ctl("stop") })
	return "127.0.0.1:" + port, ctl
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Metrics carry engine="kafka"; lag falls to 0 once the group committed everything.
func TestMetrics(t *testing.T) {
	forEachCluster(t, "metrics", testMetrics)
}

func testMetrics(t *testing.T, addr, prefix string) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	b := openTest(t, testConfig(addr), Options{Metrics: reg})
	topic, group := prefix+"-t", prefix+"-g"
	var msgs []bus.Message
	for i := 0; i < 50; i++ {
		msgs = append(msgs, bus.Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, topic, group, func(ctx context.Context, c bus.Claim) error {
			for {
				ms, err := c.Fetch(ctx, 10)
				if err != nil {
					return ctx.Err()
				}
				if err := c.Commit(ctx, ms[len(ms)-1].Offset+1); err != nil {
					return ctx.Err()
				}
				read.Add(int64(len(ms)))
			}
		})
	}()
	waitUntil(t, 30*time.Second, "every message", func() bool { return read.Load() == 50 })

	if v := counterValue(b.m.published.WithLabelValues(topic)); v != 50 {
		t.Errorf("glimpse_bus_published_total = %v, want 50", v)
	}
	if v := counterValue(b.m.rebalances.WithLabelValues(topic, group)); v < 1 {
		t.Errorf("glimpse_bus_rebalances_total = %v, want at least 1", v)
	}
	if v := counterValue(b.m.commits.WithLabelValues(topic, group)); v < suitePartitions {
		t.Errorf("glimpse_bus_commits_total = %v, want at least %d", v, suitePartitions)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lagSeries := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "glimpse_bus_") {
			t.Errorf("unexpected metric %s", f.GetName())
		}
		for _, m := range f.GetMetric() {
			engine := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "engine" {
					engine = l.GetValue()
				}
			}
			if engine != "kafka" {
				t.Errorf("%s without engine=\"kafka\"", f.GetName())
			}
			if f.GetName() == "glimpse_bus_consumer_lag" {
				lagSeries++
				if m.GetGauge().GetValue() != 0 {
					t.Errorf("consumer lag %v after everything was committed (%v)", m.GetGauge().GetValue(), m.GetLabel())
				}
			}
		}
	}
	if lagSeries == 0 {
		t.Errorf("no glimpse_bus_consumer_lag series while the group holds partitions")
	}
	stop()
	<-done
}
