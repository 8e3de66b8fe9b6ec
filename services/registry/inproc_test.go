package registry_test

import (
	"context"
	"testing"

	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/services/registry/registrytest"
)

func TestInProcConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry { return registry.NewInProc() }, registrytest.Options{})
}

func ids(insts []registry.Instance) []string {
	out := make([]string, 0, len(insts))
	for _, in := range insts {
		out = append(out, in.ID)
	}
	return out
}

// Instances hands out a shared slice; a change to the registry must not show in slices
// handed out before it.
func TestInProcListsHandedOutStayUnchanged(t *testing.T) {
	ctx := context.Background()
	r := registry.NewInProc()
	for _, id := range []string{"b", "a"} {
		if err := r.Register(ctx, registry.Instance{ID: id, Service: "svc", Address: "inproc://" + id}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := r.Instances(ctx, "svc")
	if got := ids(before); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("Instances = %v, want [a b]", got)
	}
	if err := r.Register(ctx, registry.Instance{ID: "0", Service: "svc"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := ids(before); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("a list handed out earlier changed to %v; want it kept as [a b]", got)
	}
	after, _ := r.Instances(ctx, "svc")
	if got := ids(after); len(got) != 2 || got[0] != "0" || got[1] != "a" {
		t.Fatalf("Instances after the changes = %v, want [0 a]", got)
	}
}

// An instance registered again under another service moves: it leaves its old service.
func TestInProcReRegisterMovesService(t *testing.T) {
	ctx := context.Background()
	r := registry.NewInProc()
	_ = r.Register(ctx, registry.Instance{ID: "x", Service: "one"})
	_ = r.Register(ctx, registry.Instance{ID: "x", Service: "two"})
	if got, _ := r.Instances(ctx, "one"); len(got) != 0 {
		t.Fatalf("Instances(one) = %v after x moved to two; want none", ids(got))
	}
	if got, _ := r.Instances(ctx, "two"); len(ids(got)) != 1 || got[0].ID != "x" {
		t.Fatalf("Instances(two) = %v, want [x]", ids(got))
	}
	if err := r.Deregister(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Instances(ctx, "two"); len(got) != 0 {
		t.Fatalf("Instances(two) = %v after Deregister; want none", ids(got))
	}
}

func TestInProcInstancesDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	r := registry.NewInProc()
	_ = r.Register(ctx, registry.Instance{ID: "c1", Service: registry.Collector})
	if n := testing.AllocsPerRun(100, func() { _, _ = r.Instances(ctx, registry.Collector) }); n != 0 {
		t.Fatalf("Instances allocates %v times per call; want 0 (it hands out a kept slice)", n)
	}
}
