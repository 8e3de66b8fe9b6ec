package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
)

func TestSitesDelete(t *testing.T) {
	dir := t.TempDir()
	d := "--data-dir=" + dir
	for _, site := range []string{"gone.example", "kept.example"} {
		if code, _, errOut := runCmd(t, "sites", "add", site, d); code != 0 {
			t.Fatalf("sites add %s: %s", site, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "keys", "create", "--site=gone.example", d); code != 0 {
		t.Fatalf("keys create: %s", errOut)
	}
	ctx := context.Background()
	st, err := pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.Row
	for _, site := range []string{"gone.example", "kept.example"} {
		for _, g := range []store.Granularity{store.Minute, store.Hour, store.Day} {
			rows = append(rows, store.Row{RowKey: store.RowKey{Site: site, Granularity: g, Bucket: 86400}, Aggregate: store.Aggregate{Pageviews: 1}})
		}
	}
	if err := st.WriteRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteEvents(ctx, []store.StoredEvent{{Site: "gone.example", Offset: 1, Time: 86400_000}, {Site: "gone.example", Offset: 2, Time: 86400_001}}); err != nil {
		t.Fatal(err)
	}

	// While another process holds the store, the command refuses with the way out.
	if code, _, errOut := runCmd(t, "sites", "delete", "gone.example", "--yes", d); code == 0 || !strings.Contains(errOut, "stop glimpse all first") {
		t.Errorf("delete on a store in use: exit %d, stderr %s", code, errOut)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	confirm := func(s string) { confirmInput = strings.NewReader(s) }
	t.Cleanup(func() { confirmInput = strings.NewReader("") })
	cases := []struct {
		input      string
		args       []string
		code       int
		out, error string
	}{
		{"", []string{"sites", "delete", d}, 1, "", "missing the site's domain"},
		{"", []string{"sites", "delete", "nope.example", d}, 1, "", "there is no site nope.example"},
		{"", []string{"sites", "delete", "gone.example", d}, 1, "", "not confirmed, nothing deleted"},
		{"kept.example\n", []string{"sites", "delete", "gone.example", d}, 1, "", `not confirmed ("kept.example" is not gone.example)`},
		{"gone.example\n", []string{"sites", "delete", "Gone.Example", d}, 0,
			"deleted site gone.example (removed from the site list)\n  rollup rows:    3 (minute 1, hour 1, day 1)\n  stored events:  2\n  API keys:       1 revoked",
			`level=WARN msg="site deleted" site=gone.example store=pebble had_record=true deleted.minute_rows=1 deleted.hour_rows=1 deleted.day_rows=1 deleted.events=2`},
		{"", []string{"sites", "delete", "gone.example", "--yes", d}, 1, "", "pass --force"},
		{"", []string{"sites", "delete", "gone.example", "--yes", "--force", d}, 0, "deleted site gone.example (was not in the site list)\n  rollup rows:    0", ""},
		{"", []string{"sites", "list", d}, 0, "kept.example", ""},
	}
	for _, c := range cases {
		confirm(c.input)
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.error) {
			t.Errorf("glimpse %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, out, errOut)
		}
	}
	if _, out, _ := runCmd(t, "sites", "list", d); strings.Contains(out, "gone.example") {
		t.Errorf("the deleted site is still listed:\n%s", out)
	}
	if _, out, _ := runCmd(t, "keys", "list", d); strings.Contains(out, "gone.example") {
		t.Errorf("a key still names the deleted site:\n%s", out)
	}

	st, err = pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.GetRows(ctx, func() []store.RowKey {
		var keys []store.RowKey
		for _, r := range rows {
			keys = append(keys, r.RowKey)
		}
		return keys
	}())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Site != "kept.example" {
			t.Errorf("row %+v of the deleted site is still stored", r.RowKey)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d rows of kept.example left, want 3", len(got))
	}
}
