package embedded

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/bustest"
)

func TestPebbleSizeDefaults(t *testing.T) {
	for _, c := range []struct {
		in                Options
		wantCache         int64
		wantMemTableBytes uint64
	}{
		{Options{}, DefaultCacheSize, DefaultMemTableSize},
		{Options{CacheSize: 8 << 20, MemTableSize: 8 << 20}, 8 << 20, 8 << 20},
		{Options{CacheSize: -1, MemTableSize: 1}, DefaultCacheSize, minMemTableSize},
	} {
		o := c.in
		o.setDefaults()
		if o.CacheSize != c.wantCache || o.MemTableSize != c.wantMemTableBytes {
			t.Errorf("%+v: cache %d, memtable %d; want %d, %d", c.in, o.CacheSize, o.MemTableSize, c.wantCache, c.wantMemTableBytes)
		}
	}
}

// The bus keeps its guarantees with the smallest memtables.
func TestConformanceWithSmallMemTables(t *testing.T) {
	bustest.Run(t, func(tb testing.TB) bustest.Open {
		dir := tb.TempDir()
		return func(tb testing.TB) bus.Bus {
			b, err := Open(dir, Options{Partitions: 4, CacheSize: 1 << 20, MemTableSize: minMemTableSize, Logger: quietLogger()})
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}, bustest.Options{})
}

// A publish of more than half a memtable (Pebble commits it as a memtable of its own) is
// read back whole, in order, also after a reopen.
func TestLargePublishWithSmallMemTables(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Partitions: 1, CacheSize: 1 << 20, MemTableSize: minMemTableSize, Logger: quietLogger()}
	var msgs []bus.Message
	for i := range 6 { // 6 × 900 KB: above minMemTableSize/2
		msgs = append(msgs, bus.Message{Value: bytes.Repeat([]byte{byte('a' + i)}, 900_000)})
	}
	b := openT(t, dir, opts)
	if err := b.Publish(context.Background(), "big", msgs...); err != nil {
		t.Fatal(err)
	}
	check := func(b *Bus) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got []bus.Message
		err := b.Consume(ctx, "big", "readers", func(hctx context.Context, c bus.Claim) error {
			for len(got) < len(msgs) {
				m, err := c.Fetch(hctx, len(msgs))
				if err != nil {
					return err
				}
				got = append(got, m...)
			}
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("consume: %v", err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("read %d messages, published %d", len(got), len(msgs))
		}
		for i := range msgs {
			if got[i].Offset != int64(i) || !bytes.Equal(got[i].Value, msgs[i].Value) {
				t.Fatalf("message %d: offset %d, %d bytes starting %q", i, got[i].Offset, len(got[i].Value), got[i].Value[:1])
			}
		}
	}
	check(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(b)
}
