package telemetry

import (
	"context"
	"testing"
)

type otherKey struct{}

func TestRequestIDContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "kept"))
	ctx := WithRequestID(parent, "req-1")
	derived, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	if got := RequestID(derived); got != "req-1" {
		t.Fatalf("RequestID of a derived context = %q, want req-1", got)
	}
	if got := ctx.Value(otherKey{}); got != "kept" {
		t.Fatalf("values of the parent are lost: %v", got)
	}
	if RequestID(context.Background()) != "" || RequestID(parent) != "" {
		t.Fatal("a context without an id reports one")
	}
	if RequestID(WithRequestID(ctx, "req-2")) != "req-2" {
		t.Fatal("the innermost id does not win")
	}
	cancel()
	if ctx.Err() == nil {
		t.Fatal("cancelling the parent does not reach the request's context")
	}
}
