package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond every 250ms until it is true, failing the test with what and cond's
// last state when timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	PollEvery(t, 250*time.Millisecond, timeout, what, cond)
}

// PollEvery is WaitFor polling every interval.
func PollEvery(t testing.TB, interval, timeout time.Duration, what string, cond func() (bool, string)) {
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
		time.Sleep(interval)
	}
}
