package collector

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestSharedDeadlines(t *testing.T) {
	const timeout = 200 * time.Millisecond
	d := &sharedDeadlines{timeout: timeout}
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "req-1"))
	now := time.Now()

	first := d.forRequest(parent, now)
	second := d.forRequest(context.Background(), now.Add(deadlineGrain/2))
	later := d.forRequest(context.Background(), now.Add(deadlineGrain))

	for i, tc := range []struct {
		ctx     context.Context
		arrived time.Time
	}{{first, now}, {second, now.Add(deadlineGrain / 2)}, {later, now.Add(deadlineGrain)}} {
		dl, ok := tc.ctx.Deadline()
		if !ok || dl.Before(tc.arrived.Add(timeout)) || dl.After(tc.arrived.Add(timeout+deadlineGrain)) {
			t.Errorf("request %d: deadline %v (set %v); want between %v and %v after it arrived", i, dl.Sub(tc.arrived), ok, timeout, timeout+deadlineGrain)
		}
	}
	if first.Done() != second.Done() {
		t.Error("requests within one grain do not share their timer")
	}
	if first.Done() == later.Done() {
		t.Error("a request one grain later shares the first timer")
	}
	if first.Value(ctxKey{}) != "req-1" {
		t.Error("the request context lost its parent's values")
	}

	// The sender hanging up does not cancel the request's work; a derived context follows
	// the deadline.
	cancelParent()
	child, cancelChild := context.WithCancel(first)
	defer cancelChild()
	select {
	case <-first.Done():
		t.Fatal("cancelling the parent cancelled the request context")
	default:
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a context derived from the request context did not end at its deadline")
	}
	if !errors.Is(first.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Errorf("errors after the deadline: %v, %v; want context.DeadlineExceeded", first.Err(), child.Err())
	}
}
