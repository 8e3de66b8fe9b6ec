// Package e2e drives the built glimpse binary over HTTP, the way a site and a dashboard
// user would, and checks the numbers it reports against the traffic it was sent.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glimpse-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "glimpse")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/glimpse")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building glimpse:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one running glimpse process.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	BaseURL string
	Key     string // admin API key of the data directory (see adminKey)
	logs    *syncBuffer
	done    chan struct{}
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
		if m := keyLink.FindStringSubmatch(in.logs.String()); m != nil {
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs `glimpse all` on addr with its data in dataDir and waits until it is ready.
func start(t *testing.T, addr, dataDir string, extra ...string) *instance {
	t.Helper()
	args := append([]string{"all", "--addr=" + addr, "--data-dir=" + dataDir, "--log.level=warn"}, extra...)
	cmd := exec.Command(binary, args...)
	in := &instance{t: t, cmd: cmd, BaseURL: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(in.done) }()
	t.Cleanup(func() {
		in.kill()
		if t.Failed() {
			t.Logf("glimpse output:\n%s", in.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(in.BaseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				in.adminKey(dataDir)
				return in
			}
		}
		select {
		case <-in.done:
			t.Fatalf("glimpse exited before it was ready:\n%s", in.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("glimpse not ready after 60s:\n%s", in.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process at once (SIGKILL): no flush, no shutdown hooks.
func (in *instance) kill() {
	if in.cmd.Process != nil {
		_ = in.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-in.done
}

// stop asks the process to shut down cleanly and waits for it.
func (in *instance) stop() {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(60 * time.Second):
		in.t.Errorf("glimpse did not stop within 60s of SIGTERM:\n%s", in.logs.String())
		in.kill()
	}
}

// queryResult is the query API's answer.
type queryResult struct {
	Results []struct {
		Dimensions []any     `json:"dimensions"`
		Metrics    []float64 `json:"metrics"`
	} `json:"results"`
	Meta  map[string]any `json:"meta"`
	Error string         `json:"error"`
}

func (in *instance) query(t *testing.T, q map[string]any) queryResult {
	t.Helper()
	body, _ := json.Marshal(q)
	req, _ := http.NewRequest(http.MethodPost, in.BaseURL+"/api/v1/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if in.Key != "" {
		req.Header.Set("Authorization", "Bearer "+in.Key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out queryResult
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("query %s: answer is not JSON (%v): %s", body, err, raw)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query %s: HTTP %d: %s", body, resp.StatusCode, raw)
	}
	return out
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// todayRange is a date range covering the whole UTC day of the test run (and the day
// before, so a run that starts just before midnight is still covered).
func todayRange() []string {
	now := time.Now().UTC()
	return []string{now.AddDate(0, 0, -1).Format("2006-01-02"), now.Format("2006-01-02")}
}

func dimString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
