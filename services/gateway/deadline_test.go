package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLazyDeadlineEndsAtItsDeadlineWithoutATimer(t *testing.T) {
	ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(30*time.Millisecond))
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) <= 0 {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	time.Sleep(40 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() after the deadline = %v, want DeadlineExceeded", err)
	}
	if ctx.stopTimer != nil {
		t.Error("a timer was started although nobody waited on Done")
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done() asked after the deadline is not closed")
	}
}

func TestLazyDeadlineDoneClosesAtTheDeadline(t *testing.T) {
	ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done was not closed at the deadline")
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want DeadlineExceeded", err)
	}
}

// The parent's cancellation (the client went away) ends the context, and contexts derived
// from it follow it, whether they were made before or after.
func TestLazyDeadlineFollowsItsParentAndLeadsItsChildren(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := withLazyDeadline(parent, time.Now().Add(time.Hour))
	defer cancel()
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	if err := child.Err(); err != nil {
		t.Fatalf("child ended early: %v", err)
	}
	cancelParent()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a child of the deadline context did not end with the parent")
	}
	if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("Err() = %v, child %v; want Canceled", ctx.Err(), child.Err())
	}
	late, cancelLate := context.WithTimeout(ctx, time.Hour)
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a child made after the end did not end")
	}

	// A child whose own cancel ran first is no longer called back.
	ctx2, cancel2 := withLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel2()
	early, cancelEarly := context.WithCancel(ctx2)
	cancelEarly()
	if n := len(ctx2.afterFuncs); n != 0 {
		t.Errorf("%d callbacks still registered after the child was cancelled", n)
	}
	<-early.Done()
}

func TestLazyDeadlineReleaseCancels(t *testing.T) {
	ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(time.Hour))
	done := ctx.Done()
	cancel()
	select {
	case <-done:
	default:
		t.Fatal("Done not closed after release")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err() after release = %v, want Canceled", ctx.Err())
	}
}
