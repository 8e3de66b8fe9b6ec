package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/glimpse-analytics/glimpse/internal/bus"
)

// A simulated power loss (only fsynced data survives) keeps every acknowledged publish and
// every commit, and offsets stay dense.
func TestAcknowledgedSurvivesPowerLoss(t *testing.T) {
	fs := vfs.NewCrashableMem()
	b, err := openFS("/bus", Options{Partitions: 4, Logger: quietLogger()}, fs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Commit a position first.
	for i := 0; i < 8; i++ {
		if err := b.Publish(ctx, "events", bus.Message{Key: []byte{byte(i)}, Value: []byte("early")}); err != nil {
			t.Fatal(err)
		}
	}
	committed := map[int]int64{}
	var cmu sync.Mutex
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, "events", "proc", func(ctx context.Context, c bus.Claim) error {
			_, tail := c.(*claim).part.bounds()
			if err := c.Commit(ctx, tail); err != nil {
				return err
			}
			cmu.Lock()
			committed[c.Partition()] = tail
			cmu.Unlock()
			<-ctx.Done()
			return nil
		})
	}()
	waitFor(t, func() bool { cmu.Lock(); defer cmu.Unlock(); return len(committed) == 4 })

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		n     atomic.Int64
		wg    sync.WaitGroup
		halt  atomic.Bool
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !halt.Load(); i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				if err := b.Publish(ctx, "events", bus.Message{Key: []byte(v), Value: []byte(v)}); err != nil {
					return
				}
				mu.Lock()
				acked[v] = true
				mu.Unlock()
				n.Add(1)
			}
		}(w)
	}
	for n.Load() < 300 {
		time.Sleep(time.Millisecond)
	}
	// Everything acknowledged before the crash must survive it.
	mu.Lock()
	before := make(map[string]bool, len(acked))
	for v := range acked {
		before[v] = true
	}
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	halt.Store(true)
	wg.Wait()
	stop()
	<-done
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = openFS("/bus", Options{Logger: quietLogger()}, crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	found := map[string]bool{}
	g := b.group(b.topics["events"], "proc")
	for p, part := range b.topics["events"].parts {
		if got := g.committed[p]; got != committed[p] {
			t.Errorf("partition %d: committed %d after the crash, want %d", p, got, committed[p])
		}
		_, tail := part.bounds()
		c := &claim{g: g, part: part, ctx: context.Background()}
		msgs, err := c.read(0, tail)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			if m.Offset != int64(i) {
				t.Fatalf("partition %d: offset %d at position %d", p, m.Offset, i)
			}
			found[string(m.Value)] = true
		}
	}
	lost := 0
	for v := range before {
		if !found[v] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost in the crash", lost, len(before))
	} else {
		t.Logf("%d acknowledged before the crash, all present", len(before))
	}
}
