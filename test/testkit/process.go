package testkit

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that a process's output goroutines and the test may use at
// the same time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Process is a started command whose output (stdout and stderr together) is kept in
// memory for the test to read and to print when it fails.
type Process struct {
	cmd    *exec.Cmd
	output SyncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// StartProcess starts cmd with its stdout and stderr captured.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.output, &p.output
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Output returns everything the process wrote so far.
func (p *Process) Output() string { return p.output.String() }

// Tail returns the last n bytes of the process's output.
func (p *Process) Tail(n int) string {
	s := p.output.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is what waiting for the process returned (nil while it runs or after a clean exit).
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Wait waits up to timeout for the process to end and returns its exit code (-1 when it
// was killed by a signal); ok is false when it still runs.
func (p *Process) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, false
	}
	return p.cmd.ProcessState.ExitCode(), true
}

// Signal sends sig to the process; a process that has ended already is left alone.
func (p *Process) Signal(sig syscall.Signal) {
	if p.cmd.Process != nil && !p.Exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill ends the process at once (SIGKILL: no flush, no shutdown hooks) and waits for it.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// readyTail is how much of a process's output a readiness failure shows.
const readyTail = 16 << 10

// WaitReady polls baseURL+"/readyz" until it answers 200. It fails the test with the end of
// the process's output, naming it name, when the process exits first or timeout passes.
func (p *Process) WaitReady(t testing.TB, name, baseURL string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p.Exited() {
			t.Fatalf("%s exited before it was ready (%v):\n%s", name, p.err, p.Tail(readyTail))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", name, timeout, p.Tail(readyTail))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreeAddr is a 127.0.0.1:port that nothing listened on a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is the port of FreeAddr.
func FreePort(t testing.TB) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	return port
}

// PortOpen reports whether something accepts TCP connections on addr within 2 seconds.
func PortOpen(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
