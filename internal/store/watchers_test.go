package store

import "testing"

func TestRowWatchersNotifyUntilStopped(t *testing.T) {
	var ws RowWatchers
	ws.Notify([]Row{{RowKey: RowKey{Site: "ignored"}}}) // no watcher yet: nothing to call

	var a, b []string
	stopA := ws.Add(func(rows []Row) { a = append(a, rows[0].Site) })
	ws.Add(func(rows []Row) { b = append(b, rows[0].Site) })

	ws.Notify([]Row{{RowKey: RowKey{Site: "one"}}})
	stopA()
	stopA() // stopping twice is harmless
	ws.Notify([]Row{{RowKey: RowKey{Site: "two"}}})

	if len(a) != 1 || a[0] != "one" {
		t.Errorf("stopped watcher saw %q, want [one]", a)
	}
	if len(b) != 2 || b[0] != "one" || b[1] != "two" {
		t.Errorf("live watcher saw %q, want [one two]", b)
	}
}
