// Package e2e drives the built glimpse binary over HTTP, the way a site and a dashboard
// user would, and checks the numbers it reports against the traffic it was sent.
package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

var binary string

func TestMain(m *testing.M) {
	var remove func()
	binary, remove = testkit.BuildForMain("glimpse-e2e-bin")
	code := m.Run()
	remove()
	os.Exit(code)
}

// instance is one running glimpse process.
type instance struct {
	t       *testing.T
	proc    *testkit.Process
	BaseURL string
	Key     string // admin API key of the data directory (see adminKey)
}

// adminKeys remembers the admin API key `glimpse all` printed on the first start on each
// data directory: later starts on the same data do not print it again.
var adminKeys sync.Map // data directory → key

var keyLink = regexp.MustCompile(`/#key=(glk_[A-Za-z0-9_-]+)`)

// adminKey reads the key from the dashboard link of the welcome output (the output may
// reach the buffer shortly after /readyz answers), or remembers it from an earlier start.
func (in *instance) adminKey(dataDir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := keyLink.FindStringSubmatch(in.output()); m != nil {
			adminKeys.Store(dataDir, m[1])
		}
		if k, ok := adminKeys.Load(dataDir); ok {
			in.Key = k.(string)
			return
		}
		if time.Now().After(deadline) {
			return // query.auth is off, or the key was made another way
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// output is everything the process wrote so far.
func (in *instance) output() string { return in.proc.Output() }

// start runs `glimpse all` on addr with its data in dataDir and waits until it is ready.
func start(t *testing.T, addr, dataDir string, extra ...string) *instance {
	t.Helper()
	args := append([]string{"all", "--addr=" + addr, "--data-dir=" + dataDir, "--log.level=warn"}, extra...)
	proc, err := testkit.StartProcess(exec.Command(binary, args...))
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, proc: proc, BaseURL: "http://" + addr}
	t.Cleanup(func() {
		in.kill()
		if t.Failed() {
			t.Logf("glimpse output:\n%s", in.output())
		}
	})
	proc.WaitReady(t, "glimpse", in.BaseURL, 60*time.Second)
	in.adminKey(dataDir)
	return in
}

// kill ends the process at once (SIGKILL): no flush, no shutdown hooks.
func (in *instance) kill() { in.proc.Kill() }

// stop asks the process to shut down cleanly and waits for it.
func (in *instance) stop() {
	in.proc.Signal(syscall.SIGTERM)
	if _, ok := in.proc.Wait(60 * time.Second); !ok {
		in.t.Errorf("glimpse did not stop within 60s of SIGTERM:\n%s", in.output())
		in.kill()
	}
}

// query posts q to the instance's query API with its admin key and fails the test unless
// the answer is a 200 with JSON.
func (in *instance) query(t *testing.T, q map[string]any) testkit.QueryResult {
	t.Helper()
	return testkit.API{URL: in.BaseURL, Key: in.Key}.Query(t, q)
}

// waitFor polls cond every 200ms until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.PollEvery(t, 200*time.Millisecond, timeout, what, cond)
}
