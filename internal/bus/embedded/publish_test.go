package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// A Publish that is answered hands its request back for reuse: the request and its done
// channel are not allocated per call.
func TestPublishReusesAnsweredRequests(t *testing.T) {
	if testkit.RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	b := openT(t, t.TempDir(), Options{Partitions: 1})
	ctx := context.Background()
	msgs := []bus.Message{{Key: []byte("example.com/1"), Value: []byte("value")}}
	if err := b.Publish(ctx, "events", msgs...); err != nil { // creates the topic
		t.Fatal(err)
	}
	// What is left per call is the writer's own bookkeeping, less than one allocation on
	// average; a request allocated per call was three.
	n := testing.AllocsPerRun(50, func() {
		if err := b.Publish(ctx, "events", msgs...); err != nil {
			t.Fatal(err)
		}
	})
	if n >= 2 {
		t.Fatalf("Publish allocates %v times per call; want fewer than 2", n)
	}
	if _, tail := b.topics["events"].parts[0].bounds(); tail != 52 {
		t.Fatalf("tail = %d, want 52 (every Publish stored once)", tail)
	}
}

// MinSyncInterval spaces the log's syncs: a publish acknowledged right after another one
// waits until the interval since the previous sync has passed (so publishes arriving in
// the meantime would share its sync).
func TestMinSyncIntervalSpacesSyncs(t *testing.T) {
	const interval = 200 * time.Millisecond
	b := openT(t, t.TempDir(), Options{Partitions: 1, MinSyncInterval: interval})
	ctx := context.Background()
	msg := bus.Message{Key: []byte("example.com/1"), Value: []byte("value")}
	if err := b.Publish(ctx, "events", msg); err != nil { // creates the topic
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		if err := b.Publish(ctx, "events", msg); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < interval*3/4 {
			t.Fatalf("a publish right after another was acknowledged after %v; with MinSyncInterval %v its sync should wait", took, interval)
		}
	}
}
