package lifecycle

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }

func (r *recorder) svc(name string, runErr error) Service {
	return Funcs{
		ServiceName: name,
		StartFn:     func(context.Context) error { r.add("start " + name); return nil },
		RunFn: func(ctx context.Context) error {
			if runErr != nil {
				return runErr
			}
			<-ctx.Done()
			return nil
		},
		StopFn: func(context.Context) error { r.add("stop " + name); return nil },
	}
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	var r recorder
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{}
	done := make(chan error)
	go func() { done <- m.Run(ctx, r.svc("store", nil), r.svc("processor", nil), r.svc("gateway", nil)) }()
	deadline := time.Now().Add(2 * time.Second)
	for !m.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("clean shutdown returned %v", err)
	}
	want := []string{"start store", "start processor", "start gateway", "stop gateway", "stop processor", "stop store"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("order %v, want %v", r.log, want)
	}
	if m.Ready() {
		t.Fatal("still ready after shutdown")
	}
}

func TestOneFailureStopsAll(t *testing.T) {
	var r recorder
	boom := errors.New("boom")
	err := (&Manager{}).Run(context.Background(), r.svc("a", nil), r.svc("b", boom))
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("order %v, want %v", r.log, want)
	}
}

func TestStartFailureStopsStartedOnes(t *testing.T) {
	var r recorder
	bad := Funcs{ServiceName: "bad", StartFn: func(context.Context) error { return errors.New("no disk") }}
	err := (&Manager{}).Run(context.Background(), r.svc("a", nil), bad, r.svc("c", nil))
	if err == nil {
		t.Fatal("want error")
	}
	want := []string{"start a", "stop a"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("order %v, want %v", r.log, want)
	}
}
