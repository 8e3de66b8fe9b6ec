package processor

import (
	"context"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// A topic processed again from offset 0 into the same store — by a group under a new name,
// or by the same group after its checkpoint was removed — leaves every row as it was: the
// rows-high mark belongs to the shard's rows, not to the group that wrote them.
func TestReprocessingFromTheStartChangesNothing(t *testing.T) {
	evs := replayStream()
	st := newTestStore(t)
	runWithCrashes(t, st, evs, nil)
	want := st.dump(t, true)

	reprocess := func(t *testing.T, group string) {
		t.Helper()
		cfg := replayConfig()
		cfg.Group = group
		p, err := OpenPartition(context.Background(), cfg, Deps{Store: st, Log: quiet()}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if p.Resumed() || p.Next() != 0 {
			t.Fatalf("group %s resumed at %d; want a start from 0", group, p.Next())
		}
		for i, e := range evs {
			p.Apply(int64(i), e)
			if i%flushEvery == flushEvery-1 {
				flush(t, p)
				diffRows(t, "while reprocessing", settled(st.dump(t, true)), settled(want))
			}
		}
		if _, err := p.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		p.Close()
		diffRows(t, "after reprocessing", st.dump(t, true), want)
	}

	t.Run("a new group", func(t *testing.T) { reprocess(t, "another-group") })
	t.Run("the same group without its checkpoint", func(t *testing.T) {
		ctx := context.Background()
		prefix := CheckpointKey(testConfig().Topic, testConfig().Group, 0)
		var keys []string
		if err := st.ListMeta(ctx, CheckpointNamespace, func(k string, _ []byte) error {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := st.DeleteMeta(ctx, CheckpointNamespace, k); err != nil {
				t.Fatal(err)
			}
		}
		reprocess(t, testConfig().Group)
	})
}

// settled masks what may move while a replay catches up: the visitors of the entry and
// exit page rows are those of the finished visits plus those of the visits open at the
// replay's position, which are not yet the open visits of the end.
func settled(m map[store.RowKey]agg) map[store.RowKey]agg {
	out := make(map[store.RowKey]agg, len(m))
	for k, a := range m {
		if k.Dimension == "visit:entry_page" || k.Dimension == "visit:exit_page" {
			a.Visitors = 0
		}
		out[k] = a
	}
	return out
}
