// Package cluster tests deploy/local/cluster.sh end to end: the fleet it starts as local
// processes (2 collectors, 2 processors, 2 query services and a gateway on Consul, Kafka and
// Cassandra) must count, exactly, what a real tracker in Chromium and a load generator send
// through the gateway, also while a collector and a processor are killed with SIGKILL and
// started again with `cluster.sh start`.
//
// The test skips unless GLIMPSE_TEST_KAFKA, GLIMPSE_TEST_CASSANDRA and GLIMPSE_TEST_CONSUL
// name running engines (`make engines-up`; `make unit` exports them). It gives its cluster a
// private state dir, private ports, its own keyspace, topic and consumer group, and a
// private Consul agent: the gateway routes to every collector its agent lists, and other
// test packages register theirs in the shared agent. The shared Kafka and Cassandra are used
// as they are and must still run after `cluster.sh down`.
//
// On failure the end of every member's log is printed and the state dir (logs, PID files) is
// kept; GLIMPSE_TEST_KEEP=1 also keeps the keyspace and topic.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// members are the processes cluster.sh starts, with their offset from the base port.
var members = map[string]int{"gateway": 0, "collector-1": 1, "collector-2": 2, "processor-1": 3, "processor-2": 4, "query-1": 5, "query-2": 6}

func requireEngines(t *testing.T) {
	t.Helper()
	if testkit.SharedKafka == "" || testkit.SharedCassandra == "" || testkit.SharedConsul == "" {
		t.Skip("set GLIMPSE_TEST_KAFKA, GLIMPSE_TEST_CASSANDRA and GLIMPSE_TEST_CONSUL (make engines-up; make unit exports them)")
	}
}

// Cluster is one run of deploy/local/cluster.sh with private settings.
type Cluster struct {
	t         *testing.T
	Script    string
	Dir       string // GLIMPSE_CLUSTER_DIR
	Bin       string
	BasePort  int
	Keyspace  string
	Topic     string
	Group     string
	Kafka     string
	Cassandra string
	Consul    string // the private agent's HTTP address
	Gateway   string // http://127.0.0.1:<base port>
	env       []string
	key       string
}

// newCluster picks the settings of a private cluster; nothing is started yet.
func newCluster(t *testing.T, bin string) *Cluster {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "cluster_e2e_" + hex.EncodeToString(b[:])
	c := &Cluster{t: t, Script: testkit.RepoPath(t, "deploy/local/cluster.sh"), Bin: bin, Keyspace: name,
		Topic: strings.ReplaceAll(name, "_", "-"), Kafka: testkit.SharedKafka, Cassandra: testkit.SharedCassandra}
	c.Group = c.Topic + "-processors"
	c.BasePort = freePortRange(t, len(members))
	c.Gateway = fmt.Sprintf("http://127.0.0.1:%d", c.BasePort)
	dir, err := os.MkdirTemp("", "glimpse-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	c.Dir = dir
	consulPort := testkit.FreePort(t)
	c.Consul = "127.0.0.1:" + consulPort
	c.env = []string{
		"GLIMPSE_CLUSTER_DIR=" + filepath.Join(dir, "state"),
		"GLIMPSE_BIN=" + bin,
		"GLIMPSE_CLUSTER_BASE_PORT=" + strconv.Itoa(c.BasePort),
		"GLIMPSE_CLUSTER_KEYSPACE=" + c.Keyspace,
		"GLIMPSE_CLUSTER_TOPIC=" + c.Topic,
		"GLIMPSE_CLUSTER_GROUP=" + c.Group,
		"GLIMPSE_CLUSTER_PARTITIONS=6",
		// A killed member fails Consul's check within a second or two.
		"GLIMPSE_CONSUL_CHECK_INTERVAL=1s",
		"GLIMPSE_CONSUL_CHECK_TIMEOUT=1s",
		// The private Consul agent: its own ports and run dir (consul.sh keeps its PID file
		// and log in GLIMPSE_CONSUL_DIR).
		"GLIMPSE_CONSUL_HTTP_PORT=" + consulPort,
		"GLIMPSE_CONSUL_SERVER_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_SERF_LAN_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_SERF_WAN_PORT=" + testkit.FreePort(t),
		"GLIMPSE_CONSUL_DIR=" + filepath.Join(dir, "consul"),
	}
	c.env = append(c.env, engineEnv(t, "kafka", testkit.SharedKafka)...)
	c.env = append(c.env, engineEnv(t, "cassandra", testkit.SharedCassandra)...)
	return c
}

// engineEnv points cluster.sh at a shared engine. One that its deploy/local script runs on
// 127.0.0.1 is given by port, so cluster.sh goes through the script (which finds it running
// and only re-checks it); any other is named as external, which cluster.sh never starts or
// stops.
func engineEnv(t *testing.T, kind, addr string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("GLIMPSE_TEST_%s=%q is not host:port", strings.ToUpper(kind), addr)
	}
	portVar := "GLIMPSE_" + strings.ToUpper(kind) + "_PORT"
	if host == "127.0.0.1" {
		script := testkit.RepoPath(t, "deploy/local/"+kind+".sh")
		cmd := exec.Command(script, "status")
		cmd.Env = append(os.Environ(), portVar+"="+port)
		if cmd.Run() == nil {
			return []string{portVar + "=" + port, "GLIMPSE_CLUSTER_" + strings.ToUpper(kind) + "="}
		}
	}
	return []string{"GLIMPSE_CLUSTER_" + strings.ToUpper(kind) + "=" + addr}
}

// Run runs `cluster.sh <args>` with the cluster's settings and a bound, and returns its
// stdout; stderr (the progress) goes to the test log.
func (c *Cluster) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Script, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("cluster.sh %s did not finish within 5 minutes", strings.Join(args, " "))
	}
	c.t.Logf("cluster.sh %s (%s, %v):\n%s", strings.Join(args, " "), time.Since(t0).Round(100*time.Millisecond), err, stderr.String())
	return stdout.String(), err
}

// MustRun is Run failing the test on an error.
func (c *Cluster) MustRun(args ...string) string {
	c.t.Helper()
	out, err := c.Run(args...)
	if err != nil {
		c.t.Fatalf("cluster.sh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// Up starts the cluster and registers its teardown: `cluster.sh down`, then checks that the
// shared engines still answer and the private Consul is gone, then drops the keyspace and
// topic.
func (c *Cluster) Up() {
	c.t.Helper()
	c.t.Cleanup(c.teardown)
	out := c.MustRun("up")
	if got := strings.TrimSpace(testkit.LastLine(out)); got != c.Gateway {
		c.t.Fatalf("cluster.sh up printed %q as the gateway URL, want %s", got, c.Gateway)
	}
}

func (c *Cluster) teardown() {
	t := c.t
	if t.Failed() {
		for _, m := range sortedMembers() {
			t.Logf("---- %s (last 6 KB of %s) ----\n%s", m, c.LogFile(m), tailFile(c.LogFile(m), 6<<10))
		}
	}
	if _, err := c.Run("down"); err != nil {
		t.Errorf("cluster.sh down: %v", err)
	}
	for m := range members {
		if pid := c.PID(m); pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after cluster.sh down", m, pid)
		}
	}
	for kind, addr := range map[string]string{"Kafka": c.Kafka, "Cassandra": c.Cassandra} {
		if !testkit.PortOpen(addr) {
			t.Errorf("the shared %s on %s stopped answering after cluster.sh down; it must be left running", kind, addr)
		}
	}
	if testkit.PortOpen(c.Consul) {
		t.Errorf("the private Consul on %s still answers after cluster.sh down, which must stop what up started", c.Consul)
	}
	if t.Failed() {
		t.Logf("cluster state and logs kept in %s", c.Dir)
	} else {
		os.RemoveAll(c.Dir)
	}
	if t.Failed() && os.Getenv("GLIMPSE_TEST_KEEP") != "" {
		t.Logf("kept keyspace %s and topic %s (GLIMPSE_TEST_KEEP)", c.Keyspace, c.Topic)
		return
	}
	c.dropKeyspace()
	testkit.DeleteTopic(c.Kafka, c.Topic)
}

func (c *Cluster) dropKeyspace() {
	sess, err := testkit.CassandraSession(c.Cassandra, "")
	if err != nil {
		c.t.Logf("drop keyspace %s: %v", c.Keyspace, err)
		return
	}
	defer sess.Close()
	if err := sess.Query("DROP KEYSPACE IF EXISTS " + c.Keyspace).Exec(); err != nil {
		c.t.Logf("drop keyspace %s: %v", c.Keyspace, err)
	}
}

// Glimpse runs a glimpse CLI command against the cluster's keyspace and returns its output.
func (c *Cluster) Glimpse(args ...string) string {
	c.t.Helper()
	args = append(args, "--store=cassandra", "--cassandra.hosts="+c.Cassandra, "--cassandra.keyspace="+c.Keyspace)
	out, err := testkit.CLI(c.Bin, filepath.Join(c.Dir, "cli"), args...)
	if err != nil {
		c.t.Fatalf("glimpse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Key returns an admin API key of the cluster's keyspace, made on first use with
// `glimpse keys create --admin`.
func (c *Cluster) Key() string {
	c.t.Helper()
	if c.key == "" {
		c.key = testkit.ParseQuietKey(c.t, c.Glimpse(testkit.AdminKeyArgs("cluster test")...))
	}
	return c.key
}

// URL is the base URL of a member.
func (c *Cluster) URL(member string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.BasePort+members[member])
}

// PIDFile and LogFile are where cluster.sh keeps a member's PID and log.
func (c *Cluster) PIDFile(member string) string {
	return filepath.Join(c.Dir, "state", member+".pid")
}

func (c *Cluster) LogFile(member string) string {
	return filepath.Join(c.Dir, "state", "logs", member+".log")
}

// PID is the PID in a member's PID file (0: none).
func (c *Cluster) PID(member string) int {
	raw, err := os.ReadFile(c.PIDFile(member))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

// Kill sends SIGKILL to a member (no drain, no flush, no checkpoint, no deregistration) and
// waits until it is gone.
func (c *Cluster) Kill(member string) {
	c.t.Helper()
	pid := c.PID(member)
	if pid == 0 {
		c.t.Fatalf("no PID file for %s (%s)", member, c.PIDFile(member))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 %s (pid %d): %v", member, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s (pid %d) still alive 10s after SIGKILL", member, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metric sums the samples of a Prometheus metric of a member whose labels include every
// name=value pair given; -1 when /metrics cannot be read (e.g. the member is down).
func (c *Cluster) Metric(member, name string, labels ...string) float64 {
	v, err := testkit.Metric(c.URL(member), name, labels...)
	if err != nil {
		return -1
	}
	return v
}

// Query posts q to the gateway's query API with the admin key and fails the test unless
// the answer is a 200 with JSON.
func (c *Cluster) Query(t *testing.T, q map[string]any) testkit.QueryResult {
	t.Helper()
	return testkit.API{URL: c.Gateway, Key: c.Key()}.Query(t, q)
}

func sortedMembers() []string {
	return []string{"gateway", "collector-1", "collector-2", "processor-1", "processor-2", "query-1", "query-2"}
}

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	raw, _ := io.ReadAll(f)
	return string(raw)
}

// freePortRange finds n consecutive free ports (cluster.sh numbers its members from a base
// port), trying random bases below the usual ephemeral range.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		r, _ := rand.Int(rand.Reader, big.NewInt(10000))
		base := 20000 + int(r.Int64())
		var held []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			held = append(held, ln)
		}
		for _, ln := range held {
			ln.Close()
		}
		if len(held) == n {
			return base
		}
	}
	t.Fatalf("found no %d consecutive free ports in 20000-30000", n)
	return 0
}
