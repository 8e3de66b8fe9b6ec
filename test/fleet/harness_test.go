// Package fleet runs Glimpse the way a fleet runs it — `glimpse collector`, `processor`,
// `query` and `gateway` as separate processes on real Kafka, Cassandra and Consul — and
// checks the numbers the query API reports against the traffic it was sent, also while
// processes are killed and engines restarted.
//
// The tests skip unless GLIMPSE_TEST_KAFKA and GLIMPSE_TEST_CASSANDRA name running engines
// (`make engines-up`; `make unit` exports them); gateway tests also need GLIMPSE_TEST_CONSUL.
//
// # Harness
//
// TestMain builds the binary once. NewFleet gives a test its own keyspace (migrated), Kafka
// topic and consumer group, so tests share the engines without seeing each other's data:
//
//	f := NewFleet(t, FleetOptions{Sites: []string{"shop.example"}})
//	c := f.StartCollector()
//	p := f.StartProcessor()
//	q := f.StartQuery()
//	rep := loadgen.Send(ctx, plan, loadgen.SendOptions{Target: c.URL})
//	r := f.Query(t, q.URL, map[string]any{"site_id": "shop.example", "metrics": []string{"pageviews"}, "date_range": testkit.TodayRange()})
//	p.Kill()        // SIGKILL
//	p = p.Restart() // same flags and address, waits for /readyz
//
// Other helpers: f.Glimpse runs a CLI command against the fleet's keyspace (sites, keys,
// migrate), f.Key is an admin API key (made with `glimpse keys create --admin`, as the query
// API wants one), f.API(q) is a query endpoint with that key, Proc.Metric sums a metric of
// /metrics, Proc.CountLogs and Proc.Tail read a process's output, testkit.WaitFor polls with a
// bound and a clear failure, f.CQL opens a session on the fleet's Cassandra.
//
// Every process gets a free 127.0.0.1 port, --registry=consul (when GLIMPSE_TEST_CONSUL is
// set) with its own advertise address, and the fleet's engines; extra flags given to Start*
// come last and win. A failed test logs the tail of every process's output and keeps the
// whole of it under $TMPDIR/glimpse-fleet-logs/<test>/ (GLIMPSE_TEST_LOGS=<dir> keeps every
// test's, passed or not, under <dir>/<test>/; GLIMPSE_TEST_KEEP=1 keeps a failed test's
// keyspace and topic).
//
// A gateway routes to every collector and query instance registered in its Consul. Tests
// that send through a gateway should give the fleet its own agent (FleetOptions.PrivateConsul)
// so they never reach another test's collectors. Tests whose point is an engine restart
// start a private engine (StartPrivateKafka, StartPrivateCassandra, StartPrivateConsul) on
// free ports and pass its address in FleetOptions: the shared engines are never stopped.
package fleet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// binary is the glimpse binary TestMain built.
var binary string

func TestMain(m *testing.M) {
	if testkit.SharedKafka == "" || testkit.SharedCassandra == "" {
		// Every test skips; no need to build.
		os.Exit(m.Run())
	}
	var remove func()
	binary, remove = testkit.BuildForMain("glimpse-fleet-bin")
	code := m.Run()
	remove()
	os.Exit(code)
}

// requireEngines skips the test unless the shared Kafka and Cassandra are configured, and
// also Consul when consul is true.
func requireEngines(t testing.TB, consul bool) {
	t.Helper()
	if testkit.SharedKafka == "" || testkit.SharedCassandra == "" {
		t.Skip("set GLIMPSE_TEST_KAFKA and GLIMPSE_TEST_CASSANDRA (make engines-up; make unit exports them)")
	}
	if consul && testkit.SharedConsul == "" {
		t.Skip("set GLIMPSE_TEST_CONSUL (make engines-up; make unit exports it)")
	}
}

// FleetOptions shape a test's fleet. The zero value uses the shared engines.
type FleetOptions struct {
	// Kafka and Cassandra override the shared engines (host:port), e.g. with a private
	// instance's address.
	Kafka, Cassandra string
	// Consul overrides the shared agent; PrivateConsul starts an agent for this fleet alone.
	Consul        string
	PrivateConsul bool
	// NoConsul runs the services with the in-process registry (no registration at all).
	NoConsul bool
	// Partitions of the fleet's topic (created by the first collector or processor);
	// default 6.
	Partitions int
	// Sites are added with `glimpse sites add` before anything starts; the collector
	// drops events of other sites.
	Sites []string
	// NoMigrate leaves the keyspace uncreated (for schema tests).
	NoMigrate bool
}

// Fleet is one test's isolated set of names on the engines, and the processes it started.
type Fleet struct {
	t          testing.TB
	Name       string // unique, [a-z0-9_]
	Keyspace   string
	Topic      string
	Group      string
	Kafka      string
	Cassandra  string
	Consul     string // "" when the services use the in-process registry
	Partitions int

	mu      sync.Mutex
	procs   []*Proc
	key     string
	dataDir string
}

var (
	nameSanitizer = regexp.MustCompile(`[^a-z0-9]+`)
	fileSanitizer = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// uniqueName is a prefix from the test's name plus random hex, usable as a keyspace,
// topic, group and service id.
func uniqueName(t testing.TB) string {
	base := strings.Trim(nameSanitizer.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 28 {
		base = base[len(base)-28:]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "fleet_" + strings.Trim(base, "_") + "_" + hex.EncodeToString(b[:])
}

// NewFleet reserves a keyspace, topic and group for t, migrates the keyspace and adds the
// sites. Everything it creates is removed when the test ends (the keyspace and topic are
// kept when the test failed and GLIMPSE_TEST_KEEP is set).
func NewFleet(t testing.TB, o FleetOptions) *Fleet {
	t.Helper()
	requireEngines(t, false)
	f := &Fleet{t: t, Name: uniqueName(t), Kafka: o.Kafka, Cassandra: o.Cassandra, Consul: o.Consul, Partitions: o.Partitions}
	if f.Kafka == "" {
		f.Kafka = testkit.SharedKafka
	}
	if f.Cassandra == "" {
		f.Cassandra = testkit.SharedCassandra
	}
	if f.Partitions == 0 {
		f.Partitions = 6
	}
	switch {
	case o.NoConsul:
		f.Consul = ""
	case o.PrivateConsul:
		f.Consul = StartPrivateConsul(t).Addr
	case f.Consul == "":
		f.Consul = testkit.SharedConsul
	}
	f.Keyspace = f.Name
	f.Topic = strings.ReplaceAll(f.Name, "_", "-")
	f.Group = f.Topic + "-processors"
	f.dataDir = t.TempDir()
	t.Cleanup(f.cleanup)
	if !o.NoMigrate {
		f.Migrate()
	}
	for _, s := range o.Sites {
		f.AddSite(s)
	}
	t.Logf("fleet %s: kafka %s topic %s group %s, cassandra %s keyspace %s, consul %q", f.Name, f.Kafka, f.Topic, f.Group, f.Cassandra, f.Keyspace, f.Consul)
	return f
}

// StoreFlags are the flags that point a command or service at the fleet's keyspace.
func (f *Fleet) StoreFlags() []string {
	return []string{"--store=cassandra", "--cassandra.hosts=" + f.Cassandra, "--cassandra.keyspace=" + f.Keyspace}
}

// BusFlags point a collector or processor at the fleet's Kafka.
func (f *Fleet) BusFlags() []string {
	return []string{"--bus=kafka", "--kafka.brokers=" + f.Kafka, "--kafka.partitions=" + strconv.Itoa(f.Partitions)}
}

// CLI runs a glimpse command (migrate, sites, keys, ...) with a 2-minute bound and returns
// its combined output. It does not add the store flags: see Glimpse.
func (f *Fleet) CLI(args ...string) (string, error) {
	return testkit.CLI(binary, f.dataDir, args...)
}

// Glimpse runs `glimpse <args> <store flags>` against the fleet's keyspace and fails the
// test when it fails.
func (f *Fleet) Glimpse(args ...string) string {
	f.t.Helper()
	out, err := f.CLI(append(args, f.StoreFlags()...)...)
	if err != nil {
		f.t.Fatalf("glimpse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Migrate runs `glimpse migrate` on the fleet's keyspace and returns its output.
func (f *Fleet) Migrate() string {
	f.t.Helper()
	return f.Glimpse("migrate")
}

// AddSite adds a site to the keyspace's site list. Collectors started after it count its
// events at once; running ones notice within --collector.sites-refresh.
func (f *Fleet) AddSite(domain string) {
	f.t.Helper()
	f.Glimpse("sites", "add", domain)
}

// Key returns an admin API key of the fleet's keyspace, creating it on first use with
// `glimpse keys create --admin`.
func (f *Fleet) Key() string {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.key == "" {
		f.key = testkit.ParseQuietKey(f.t, f.Glimpse(testkit.AdminKeyArgs("fleet test")...))
	}
	return f.key
}

// Proc is one running glimpse process of a fleet.
type Proc struct {
	Target string   // collector, processor, query, gateway, all
	Name   string   // unique in the fleet, e.g. processor-2
	Addr   string   // 127.0.0.1:port it listens on
	URL    string   // http://Addr
	Args   []string // the whole command line after the binary

	extra []string // the test's own flags (Restart passes them again)
	f     *Fleet
	proc  *testkit.Process
	gen   int // restarts so far
}

// Start runs `glimpse <target>` with the fleet's flags for that target, then extra (which
// win), and waits until it is ready.
func (f *Fleet) Start(target string, extra ...string) *Proc {
	f.t.Helper()
	p := f.Launch(target, extra...)
	p.WaitReady(90 * time.Second)
	return p
}

// StartCollector, StartProcessor, StartQuery and StartGateway are Start for one target.
func (f *Fleet) StartCollector(extra ...string) *Proc {
	f.t.Helper()
	return f.Start("collector", extra...)
}

func (f *Fleet) StartProcessor(extra ...string) *Proc {
	f.t.Helper()
	return f.Start("processor", extra...)
}

func (f *Fleet) StartQuery(extra ...string) *Proc {
	f.t.Helper()
	return f.Start("query", extra...)
}

// StartGateway starts a gateway; it needs Consul (it finds collectors and query services
// there).
func (f *Fleet) StartGateway(extra ...string) *Proc {
	f.t.Helper()
	if f.Consul == "" {
		f.t.Fatal("a gateway needs Consul: set GLIMPSE_TEST_CONSUL or FleetOptions.PrivateConsul")
	}
	return f.Start("gateway", extra...)
}

// Flags are the flags Start gives target before the test's own.
func (f *Fleet) Flags(target, addr string) []string {
	args := []string{target, "--addr=" + addr, "--data-dir=" + f.dataDir, "--log.format=text", "--log.level=info", "--shutdown-timeout=20s"}
	if target != "all" {
		if f.Consul != "" {
			args = append(args, "--registry=consul", "--consul.address="+f.Consul, "--consul.check-interval=1s", "--consul.check-timeout=1s")
		} else {
			args = append(args, "--registry=inproc")
		}
	}
	switch target {
	case "collector", "query", "processor":
		args = append(args, "--advertise-addr=http://"+addr)
	}
	switch target {
	case "collector":
		args = append(args, f.BusFlags()...)
		args = append(args, f.StoreFlags()...)
		args = append(args, "--collector.topic="+f.Topic)
	case "processor":
		args = append(args, f.BusFlags()...)
		args = append(args, f.StoreFlags()...)
		args = append(args, "--processor.topic="+f.Topic, "--processor.group="+f.Group)
	case "query":
		args = append(args, f.StoreFlags()...)
	}
	return args
}

// Launch starts `glimpse <target>` like Start but does not wait for readiness (for tests
// of a process that must refuse to start).
func (f *Fleet) Launch(target string, extra ...string) *Proc {
	f.t.Helper()
	return f.launch(target, f.nextName(target), testkit.FreeAddr(f.t), extra, 0)
}

func (f *Fleet) nextName(target string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 1
	for _, p := range f.procs {
		if p.Target == target && p.gen == 0 {
			n++
		}
	}
	return fmt.Sprintf("%s-%d", target, n)
}

func (f *Fleet) launch(target, name, addr string, extra []string, gen int) *Proc {
	f.t.Helper()
	if binary == "" {
		f.t.Fatal("the glimpse binary was not built (TestMain skips the build without GLIMPSE_TEST_KAFKA and GLIMPSE_TEST_CASSANDRA)")
	}
	args := append(f.Flags(target, addr), extra...)
	p := &Proc{Target: target, Name: name, Addr: addr, URL: "http://" + addr, Args: args, extra: extra, f: f, gen: gen}
	if gen > 0 {
		p.Name = fmt.Sprintf("%s#%d", name, gen+1)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = os.Environ()
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		f.t.Fatalf("start %s: %v", p.Name, err)
	}
	p.proc = proc
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p
}

// baseName is the name without the restart suffix.
func (p *Proc) baseName() string {
	name, _, _ := strings.Cut(p.Name, "#")
	return name
}

// WaitReady waits until /readyz answers 200; it fails the test with the process's output
// when the process exits first or the timeout passes.
func (p *Proc) WaitReady(timeout time.Duration) {
	p.f.t.Helper()
	p.proc.WaitReady(p.f.t, p.Name, p.URL, timeout)
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool { return p.proc.Exited() }

// Wait waits up to timeout for the process to end and returns its exit code (-1 when it
// was killed by a signal); ok is false when it still runs.
func (p *Proc) Wait(timeout time.Duration) (code int, ok bool) { return p.proc.Wait(timeout) }

// Kill ends the process at once (SIGKILL): no flush, no checkpoint, no leaving the group,
// no deregistration.
func (p *Proc) Kill() { p.proc.Kill() }

// Stop sends SIGTERM and waits up to timeout for a clean exit; it fails the test (and
// kills the process) if it takes longer.
func (p *Proc) Stop(timeout time.Duration) {
	p.f.t.Helper()
	p.proc.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(timeout); !ok {
		p.f.t.Errorf("%s did not stop within %s of SIGTERM:\n%s", p.Name, timeout, p.Tail(16<<10))
		p.Kill()
	}
}

// Restart starts the process again with the same flags and address (after Kill or Stop;
// a running process is killed first) and waits until it is ready.
func (p *Proc) Restart() *Proc {
	p.f.t.Helper()
	if !p.Exited() {
		p.Kill()
	}
	q := p.f.launch(p.Target, p.baseName(), p.Addr, p.extra, p.gen+1)
	q.WaitReady(90 * time.Second)
	return q
}

// Logs returns everything the process wrote so far.
func (p *Proc) Logs() string { return p.proc.Output() }

// Tail returns the last n bytes of the process's output.
func (p *Proc) Tail(n int) string { return p.proc.Tail(n) }

// CountLogs counts the output lines that contain every one of the substrings.
func (p *Proc) CountLogs(substrings ...string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
line:
	for sc.Scan() {
		for _, s := range substrings {
			if !strings.Contains(sc.Text(), s) {
				continue line
			}
		}
		n++
	}
	return n
}

// Metric sums the samples of a Prometheus metric on /metrics whose labels include every
// name=value pair given (e.g. Metric("glimpse_bus_rebalances_total", "group", g)). It
// returns 0 when no sample matches, and fails the test when /metrics cannot be read.
func (p *Proc) Metric(name string, labels ...string) float64 {
	p.f.t.Helper()
	v, err := p.MetricErr(name, labels...)
	if err != nil {
		p.f.t.Fatalf("%s: %v", p.Name, err)
	}
	return v
}

// MetricErr is Metric without failing the test.
func (p *Proc) MetricErr(name string, labels ...string) (float64, error) {
	return testkit.Metric(p.URL, name, labels...)
}

// cleanup stops every process (SIGTERM, so they leave the consumer group and Consul; then
// SIGKILL), reports their output when the test failed, and removes the keyspace and topic.
func (f *Fleet) cleanup() {
	f.mu.Lock()
	procs := append([]*Proc(nil), f.procs...)
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.Exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.proc.Signal(syscall.SIGTERM)
			if _, ok := p.Wait(15 * time.Second); !ok {
				p.Kill()
			}
		}()
	}
	wg.Wait()
	if logs := os.Getenv("GLIMPSE_TEST_LOGS"); f.t.Failed() || logs != "" {
		if logs == "" {
			logs = filepath.Join(os.TempDir(), "glimpse-fleet-logs")
		}
		dir := filepath.Join(logs, fileSanitizer.ReplaceAllString(f.t.Name(), "_"))
		_ = os.MkdirAll(dir, 0o755)
		for _, p := range procs {
			file := filepath.Join(dir, strings.ReplaceAll(p.Name, "#", "_")+".log")
			_ = os.WriteFile(file, []byte(p.Logs()), 0o644)
			if f.t.Failed() {
				f.t.Logf("---- %s (%s; exit: %v; whole output in %s) ----\n%s", p.Name, strings.Join(p.Args, " "), p.proc.Err(), file, p.Tail(12<<10))
			}
		}
	}
	if f.t.Failed() && os.Getenv("GLIMPSE_TEST_KEEP") != "" {
		f.t.Logf("kept keyspace %s and topic %s (GLIMPSE_TEST_KEEP)", f.Keyspace, f.Topic)
		return
	}
	f.dropKeyspace()
	testkit.DeleteTopic(f.Kafka, f.Topic)
}

func (f *Fleet) dropKeyspace() {
	sess, err := testkit.CassandraSession(f.Cassandra, "")
	if err != nil {
		return // a private Cassandra that is gone already
	}
	defer sess.Close()
	if err := sess.Query("DROP KEYSPACE IF EXISTS " + f.Keyspace).Exec(); err != nil {
		f.t.Logf("drop keyspace %s: %v", f.Keyspace, err)
	}
}

// CQL opens a session on the fleet's Cassandra (in the fleet's keyspace when inKeyspace);
// it is closed when the test ends.
func (f *Fleet) CQL(inKeyspace bool) *gocql.Session {
	f.t.Helper()
	keyspace := ""
	if inKeyspace {
		keyspace = f.Keyspace
	}
	sess, err := testkit.CassandraSession(f.Cassandra, keyspace)
	if err != nil {
		f.t.Fatalf("cassandra %s: %v", f.Cassandra, err)
	}
	f.t.Cleanup(sess.Close)
	return sess
}

// API is the query API of p (a query service, gateway or glimpse all) with the fleet's
// admin key.
func (f *Fleet) API(p *Proc) testkit.API { return testkit.API{URL: p.URL, Key: f.Key()} }

// QueryRaw posts q to base+/api/v1/query with the fleet's admin key.
func (f *Fleet) QueryRaw(base string, q map[string]any) (int, []byte, error) {
	return testkit.API{URL: base, Key: f.Key()}.Raw(q)
}

// Query posts q to base+/api/v1/query with the fleet's admin key and fails the test
// unless the answer is a 200 with JSON.
func (f *Fleet) Query(t testing.TB, base string, q map[string]any) testkit.QueryResult {
	t.Helper()
	return testkit.API{URL: base, Key: f.Key()}.Query(t, q)
}

// Engine is a private Kafka, Cassandra or Consul started by a deploy/local script for one
// test, on free ports with its own data directory. It is stopped when the test ends.
type Engine struct {
	Kind string // kafka, cassandra, consul
	Addr string // host:port clients use
	t    testing.TB
	env  []string
	cmd  string
}

// script returns the deploy/local script of an engine: GLIMPSE_TEST_<KIND>_SCRIPT if set,
// else the one in this repository.
func script(kind string) string {
	if s := os.Getenv("GLIMPSE_TEST_" + strings.ToUpper(kind) + "_SCRIPT"); s != "" {
		return s
	}
	abs, _ := filepath.Abs(filepath.Join("..", "..", "deploy", "local", kind+".sh"))
	return abs
}

// StartPrivateKafka starts a single-node Kafka for this test alone.
func StartPrivateKafka(t testing.TB) *Engine {
	t.Helper()
	requireEngines(t, false)
	port := testkit.FreePort(t)
	e := &Engine{Kind: "kafka", Addr: "127.0.0.1:" + port, t: t, cmd: script("kafka"), env: []string{
		"GLIMPSE_KAFKA_PORT=" + port,
		"GLIMPSE_KAFKA_CONTROLLER_PORT=" + testkit.FreePort(t),
		"GLIMPSE_KAFKA_DIR=" + privateDir(t, "kafka"),
		"GLIMPSE_KAFKA_HEAP_MIN=256m",
		"GLIMPSE_KAFKA_HEAP_MAX=512m",
	}}
	e.startAndCleanup()
	return e
}

// StartPrivateCassandra starts a single-node Cassandra for this test alone (about 10-20s).
func StartPrivateCassandra(t testing.TB) *Engine {
	t.Helper()
	requireEngines(t, false)
	port := testkit.FreePort(t)
	e := &Engine{Kind: "cassandra", Addr: "127.0.0.1:" + port, t: t, cmd: script("cassandra"), env: []string{
		"GLIMPSE_CASSANDRA_PORT=" + port,
		"GLIMPSE_CASSANDRA_STORAGE_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CASSANDRA_DIR=" + privateDir(t, "cassandra"),
		"GLIMPSE_CASSANDRA_HEAP=768m",
	}}
	e.startAndCleanup()
	return e
}

// StartPrivateConsul starts a Consul dev agent for this test alone.
func StartPrivateConsul(t testing.TB) *Engine {
	t.Helper()
	port := testkit.FreePort(t)
	e := &Engine{Kind: "consul", Addr: "127.0.0.1:" + port, t: t, cmd: script("consul"), env: []string{
		"GLIMPSE_CONSUL_HTTP_PORT=" + port,
		"GLIMPSE_CONSUL_SERVER_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_SERF_LAN_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_SERF_WAN_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_DIR=" + privateDir(t, "consul"),
	}}
	e.startAndCleanup()
	return e
}

// privateDir is a data directory for a private engine. It lives outside t.TempDir so a
// failed test can leave the engine's log behind for reading; it is removed on success.
func privateDir(t testing.TB, kind string) string {
	dir, err := os.MkdirTemp("", "glimpse-fleet-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The deploy/local scripts lock <dir>.lock while they start or stop the engine.
		os.Remove(dir + ".lock")
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("private %s data and log kept in %s", kind, dir)
		}
	})
	return dir
}

func (e *Engine) startAndCleanup() {
	e.t.Helper()
	e.Start()
	e.t.Cleanup(func() {
		if out, err := e.run("stop"); err != nil {
			e.t.Logf("stop private %s: %v\n%s", e.Kind, err, out)
		}
	})
}

func (e *Engine) run(verb string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cmd, verb)
	cmd.Env = append(os.Environ(), e.env...)
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s %s did not finish within 4 minutes", e.cmd, verb)
	}
	return string(out), err
}

// Start starts the engine (again) and waits until it answers.
func (e *Engine) Start() {
	e.t.Helper()
	t0 := time.Now()
	if out, err := e.run("start"); err != nil {
		e.t.Fatalf("start private %s on %s: %v\n%s", e.Kind, e.Addr, err, out)
	}
	e.t.Logf("private %s on %s started in %s", e.Kind, e.Addr, time.Since(t0).Round(100*time.Millisecond))
}

// Stop stops the engine cleanly (SIGTERM, as the script does).
func (e *Engine) Stop() {
	e.t.Helper()
	t0 := time.Now()
	if out, err := e.run("stop"); err != nil {
		e.t.Fatalf("stop private %s: %v\n%s", e.Kind, err, out)
	}
	e.t.Logf("private %s on %s stopped in %s", e.Kind, e.Addr, time.Since(t0).Round(100*time.Millisecond))
}
