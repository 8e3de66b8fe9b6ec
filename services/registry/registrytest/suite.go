// Package registrytest is the conformance suite every Registry implementation passes.
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// Factory returns a fresh, empty registry for one subtest. Service names given to the
// suite are unique per call so implementations backed by a shared agent stay isolated.
type Factory func(t *testing.T) registry.Registry

// Settle is how long a registry may take until a registration or deregistration shows in
// Instances (caches, health checks). The in-process registry needs none.
type Options struct {
	Settle time.Duration
	// Address returns an address to register that the registry's health checks accept.
	Address func(t *testing.T) string
}

// Run runs the suite.
func Run(t *testing.T, newRegistry Factory, opts Options) {
	if opts.Address == nil {
		opts.Address = func(*testing.T) string { return registry.InProcScheme + "test" }
	}
	eventually := func(t *testing.T, r registry.Registry, service string, want []string) {
		t.Helper()
		deadline := time.Now().Add(opts.Settle + time.Second)
		var got []string
		for {
			insts, err := r.Instances(context.Background(), service)
			if err != nil {
				t.Fatalf("Instances(%q): %v", service, err)
			}
			got = got[:0]
			for _, in := range insts {
				got = append(got, in.ID)
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Instances(%q) = %v, want %v", service, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	unique := func(t *testing.T, base string) string {
		return fmt.Sprintf("%s-%d", base, time.Now().UnixNano())
	}

	t.Run("RegisterListDeregister", func(t *testing.T) {
		r := newRegistry(t)
		svc := unique(t, "svc")
		addr := opts.Address(t)
		for _, id := range []string{svc + "-b", svc + "-a"} {
			if err := r.Register(context.Background(), registry.Instance{ID: id, Service: svc, Address: addr, Meta: map[string]string{"version": "test"}}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, r, svc, []string{svc + "-a", svc + "-b"})
		insts, _ := r.Instances(context.Background(), svc)
		if insts[0].Address != addr || insts[0].Service != svc || insts[0].Meta["version"] != "test" {
			t.Fatalf("instance fields not kept: %+v", insts[0])
		}
		if err := r.Deregister(context.Background(), svc+"-a"); err != nil {
			t.Fatal(err)
		}
		eventually(t, r, svc, []string{svc + "-b"})
	})

	t.Run("ServicesAreSeparate", func(t *testing.T) {
		r := newRegistry(t)
		a, b := unique(t, "one"), unique(t, "two")
		addr := opts.Address(t)
		if err := r.Register(context.Background(), registry.Instance{ID: a + "-1", Service: a, Address: addr}); err != nil {
			t.Fatal(err)
		}
		if err := r.Register(context.Background(), registry.Instance{ID: b + "-1", Service: b, Address: addr}); err != nil {
			t.Fatal(err)
		}
		eventually(t, r, a, []string{a + "-1"})
		eventually(t, r, b, []string{b + "-1"})
		eventually(t, r, unique(t, "none"), nil)
	})

	t.Run("ReRegisterReplaces", func(t *testing.T) {
		r := newRegistry(t)
		svc := unique(t, "svc")
		addr := opts.Address(t)
		for i := 0; i < 2; i++ {
			if err := r.Register(context.Background(), registry.Instance{ID: svc + "-1", Service: svc, Address: addr, Meta: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, r, svc, []string{svc + "-1"})
	})

	t.Run("DeregisterUnknown", func(t *testing.T) {
		r := newRegistry(t)
		err := r.Deregister(context.Background(), unique(t, "missing"))
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Deregister(unknown) = %v, want nil or ErrNotFound", err)
		}
	})
}
