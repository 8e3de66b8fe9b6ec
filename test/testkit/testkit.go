// Package testkit holds what the process-level test suites (test/e2e, test/fleet and
// test/cluster) share: building the glimpse binary, running a process with its output
// captured, waiting for readiness or a condition with a bound and a clear failure, free
// ports, the query API and /metrics as a test reads them, the glimpse CLI, and the checks
// and small formatting helpers their assertions use.
//
// Paths are resolved from the calling test package's directory, which `go test` makes the
// working directory; every suite lives two levels below the repository root.
package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RepoPath is a path in the repository, from the directory of a test package in test/<suite>.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// BuildCommand is `go build -o out ./cmd/glimpse`, run from the repository root.
func BuildCommand(ctx context.Context, out string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/glimpse")
	cmd.Dir = filepath.Join("..", "..")
	return cmd
}

// BuildForMain builds the glimpse binary once for a TestMain, into a new temporary
// directory named after prefix, with the compiler's output on the test binary's own. It
// returns the binary's path and a function that removes it; on failure it prints why and
// exits, as there is nothing to test.
func BuildForMain(prefix string) (binary string, remove func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "glimpse")
	build := BuildCommand(context.Background(), binary)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building glimpse:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	return binary, func() { os.RemoveAll(dir) }
}

// BuildForTest builds the glimpse binary into the test's temporary directory, bounded by
// five minutes, and fails the test with the compiler's output when that fails.
func BuildForTest(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "glimpse")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := BuildCommand(ctx, bin).CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/glimpse: %v\n%s", err, out)
	}
	return bin
}

// CLI runs `binary <args>` with GLIMPSE_DATA_DIR=dataDir and a 2-minute bound (a Cassandra
// migration can take a while), and returns its combined output.
func CLI(binary, dataDir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GLIMPSE_DATA_DIR="+dataDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AdminKeyArgs are the arguments of `glimpse keys create` that make an admin API key named
// name and print only the key; see ParseQuietKey.
func AdminKeyArgs(name string) []string {
	return []string{"keys", "create", "--admin", "--quiet", "--name=" + name}
}

// ParseQuietKey returns the key `glimpse keys create --quiet` printed on its last line, and
// fails the test when that line is not a key.
func ParseQuietKey(t testing.TB, out string) string {
	t.Helper()
	key := strings.TrimSpace(LastLine(out))
	if !strings.HasPrefix(key, "glk_") {
		t.Fatalf("glimpse keys create --quiet printed no key:\n%s", out)
	}
	return key
}

// LastLine is the last line of s, ignoring trailing blank space.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
