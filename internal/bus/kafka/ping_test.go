package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Ping answers from the cluster, not from the client's cached metadata: once the cluster
// is gone, it fails.
func TestPingFollowsTheCluster(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := testConfig(c.ListenAddrs()[0])
	cfg.DialTimeout, cfg.RequestTimeout = time.Second, time.Second
	b := openTest(t, cfg, Options{})
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return b.Ping(ctx)
	}
	// A topic makes the client cache the cluster's metadata first.
	if _, err := b.Partitions(context.Background(), "ping-topic"); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping of a running cluster = %v", err)
	}
	c.Close()
	if err := ping(); err == nil {
		t.Fatal("Ping answered nil after the cluster closed")
	}
	if err := b.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := ping(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
}
