package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
	"github.com/glimpse-analytics/glimpse/internal/store/cassandra"
	"github.com/glimpse-analytics/glimpse/services/processor"
	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// comparedQueries are the questions asked of two stores that must answer alike: totals,
// breakdowns by every kind of dimension (event, visit, prop, time), a filter combined with
// a breakdown, and the scan of stored events. Unique visitors are left out (see
// TestCassandraMatchesEmbedded); visit_duration too where it depends on when the beacons
// were sent rather than on what they were.
func comparedQueries(site string) map[string]map[string]any {
	qs := map[string]map[string]any{
		"totals": {"metrics": []string{"visits", "pageviews", "events", "bounce_rate", "views_per_visit"}},
		"totals/scan": {"metrics": []string{"visits", "pageviews", "events", "bounce_rate", "views_per_visit"},
			"filters": scanFilter},
		"mobile pages": {"metrics": []string{"pageviews", "visits"}, "dimensions": []string{"event:page"},
			"filters": []any{[]any{"is", "visit:device", []string{"Mobile"}}}},
		"signup plans": {"metrics": []string{"events"}, "dimensions": []string{"event:props:plan"},
			"filters": []any{[]any{"is", "event:name", []string{"Signup"}}}},
	}
	for _, b := range []struct{ dim, metrics string }{
		{"event:page", "pageviews,visits,bounce_rate"},
		{"event:name", "events"},
		{"visit:source", "visits,pageviews,bounce_rate,views_per_visit"},
		{"visit:utm_source", "visits,pageviews"},
		{"visit:utm_campaign", "visits"},
		{"visit:entry_page", "visits,bounce_rate"},
		{"visit:exit_page", "visits"},
		{"visit:device", "visits,pageviews,bounce_rate"},
		{"visit:browser", "visits,pageviews"},
		{"visit:os", "visits"},
		{"time:day", "visits,pageviews,events"},
	} {
		qs["by "+b.dim] = map[string]any{"metrics": strings.Split(b.metrics, ","), "dimensions": []string{b.dim}}
	}
	for _, q := range qs {
		q["site_id"] = site
		q["date_range"] = testkit.TodayRange()
		q["limit"] = 1000
	}
	return qs
}

// answers asks every query and returns the results as canonical JSON, by query name.
func answers(t *testing.T, api testkit.API, qs map[string]map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, q := range qs {
		r := api.Query(t, q)
		raw, _ := json.Marshal(r.Results)
		out[name] = string(raw)
	}
	return out
}

// diffAnswers lists the queries whose answers differ.
func diffAnswers(a, b map[string]string) []string {
	var diffs []string
	for name := range a {
		if a[name] != b[name] {
			diffs = append(diffs, fmt.Sprintf("%s:\n  %s\n  %s", name, a[name], b[name]))
		}
	}
	sort.Strings(diffs)
	return diffs
}

var welcomeKey = regexp.MustCompile(`/#key=(glk_[A-Za-z0-9_-]+)`)

// TestCassandraMatchesEmbedded sends the foundation's end-to-end traffic (test/e2e's
// TestEndToEnd: the same plan and seed) to `glimpse all` on the embedded store and to
// `glimpse all --store=cassandra`, and checks that both answer every query alike, and as
// the plan expects.
//
// Unique visitors are HyperLogLog estimates of visitor ids salted with a random daily salt
// of each store, so the two stores estimate the same visitors from different ids: each
// must be within the sketch's error of the true number, not equal to the other.
func TestCassandraMatchesEmbedded(t *testing.T) {
	started := time.Now()
	f := NewFleet(t, FleetOptions{NoConsul: true})
	sites := []string{"e2e-one.example", "e2e-two.example", "e2e-three.example"}
	plan := loadgen.NewPlan(loadgen.Options{Sites: sites, Events: 10_000, Seed: 42})
	expected := plan.Expect(nil)

	embeddedDir := t.TempDir()
	embedded := f.Start("all", "--data-dir="+embeddedDir)
	testkit.WaitFor(t, 10*time.Second, "the admin key link of the first start", func() (bool, string) {
		return welcomeKey.MatchString(embedded.Logs()), "not printed yet"
	})
	embeddedAPI := testkit.API{URL: embedded.URL, Key: welcomeKey.FindStringSubmatch(embedded.Logs())[1]}
	// The Cassandra one keeps its embedded bus elsewhere; its key is made with the CLI.
	cass := f.Start("all", append([]string{"--data-dir=" + filepath.Join(t.TempDir(), "bus")}, f.StoreFlags()...)...)
	cassAPI := f.API(cass)

	for _, in := range []struct {
		p   *Proc
		api testkit.API
	}{{embedded, embeddedAPI}, {cass, cassAPI}} {
		rep := loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: in.p.URL, Concurrency: 32})
		t.Logf("%s: sent %d beacons in %s (%.0f/s)", in.p.Name, rep.Sent, rep.Elapsed.Round(time.Millisecond), rep.Rate())
		if rep.Failed != 0 || rep.Acked != int64(plan.Events()) {
			t.Fatalf("%s acknowledged %d of %d beacons; failures: %v", in.p.Name, rep.Acked, plan.Events(), rep.Errors)
		}
		waitCounted(t, in.api, expected, time.Minute)
	}
	testkit.SkipIfDayChanged(t, started)

	t.Run("cassandra as expected", func(t *testing.T) { checkCounts(t, cassAPI, expected, started, true) })
	t.Run("embedded as expected", func(t *testing.T) { checkCounts(t, embeddedAPI, expected, started, true) })
	for _, site := range sites {
		qs := comparedQueries(site)
		a, b := answers(t, embeddedAPI, qs), answers(t, cassAPI, qs)
		if diffs := diffAnswers(a, b); len(diffs) > 0 {
			t.Errorf("%s: %d of %d answers differ (embedded first, then cassandra):\n%s", site, len(diffs), len(qs), strings.Join(diffs, "\n"))
		} else {
			t.Logf("%s: all %d answers are the same on both stores", site, len(qs))
		}
	}
}

// TestCassandraReplay processes a stream into Cassandra, then replays it twice — the same
// consumer group from offset 0 with its checkpoints and bus positions gone, and a second
// group over the same topic into the same keyspace — and checks that no number moves, at
// any moment of either replay: every row remembers the offsets it holds.
func TestCassandraReplay(t *testing.T) {
	started := time.Now()
	site := "replay.example"
	f := NewFleet(t, FleetOptions{Sites: []string{site}, Partitions: 3})
	c := f.StartCollector()
	proc := f.StartProcessor()
	q := f.StartQuery()
	api := f.API(q)
	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: scaled(12_000), Seed: 5})
	rep := loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.URL, Concurrency: 16})
	if rep.Failed != 0 {
		t.Fatalf("%d beacons failed: %v", rep.Failed, rep.Errors)
	}
	expected := plan.Expect(nil)
	waitCounted(t, api, expected, 2*time.Minute)
	proc.Stop(30 * time.Second) // final flush, checkpoint and commit
	testkit.SkipIfDayChanged(t, started)

	qs := comparedQueries(site)
	// Once processed, unique visitors and durations are fixed too: compare them as well.
	qs["totals/all"] = map[string]any{"site_id": site, "metrics": totalsMetrics, "date_range": testkit.TodayRange()}
	qs["by page/all"] = map[string]any{"site_id": site, "metrics": totalsMetrics, "dimensions": []string{"event:page"}, "date_range": testkit.TodayRange(), "limit": 1000}
	qs["by hour"] = map[string]any{"site_id": site, "metrics": totalsMetrics, "dimensions": []string{"time:hour"}, "date_range": testkit.TodayRange()}
	before := answers(t, api, qs)
	// Checked over and over while a replay runs; all of qs once it is done.
	live := map[string]map[string]any{}
	for _, name := range []string{"totals/all", "by page/all", "by hour", "by visit:source", "by visit:exit_page", "by event:name"} {
		live[name] = qs[name]
	}
	liveBefore := answers(t, api, live)
	checkCounts(t, api, expected, started, false)

	replay := func(name, group string) {
		t.Helper()
		// Small batches and frequent flushes: many intermediate states reach the store.
		p := f.StartProcessor("--processor.group="+group, "--processor.max-batch=50",
			"--processor.flush-interval=100ms", "--processor.checkpoint-interval=300ms")
		checks := 0
		var midway []string // processed counts seen before the end
		testkit.WaitFor(t, 2*time.Minute, name+" to process the whole topic again", func() (bool, string) {
			if diffs := diffAnswers(liveBefore, answers(t, api, live)); len(diffs) > 0 {
				t.Fatalf("%s changed %d answers while it ran, after %s:\n%s", name, len(diffs), time.Since(started).Round(time.Millisecond), strings.Join(testkit.Head(diffs, 5), "\n"))
			}
			checks++
			n := p.Metric("glimpse_processor_events_processed_total")
			if n > 0 && int(n) < plan.Events() {
				midway = append(midway, fmt.Sprint(n))
			}
			return int(n) == plan.Events(), fmt.Sprintf("%.0f of %d events processed", n, plan.Events())
		})
		p.Stop(30 * time.Second) // its final flush and checkpoint
		if diffs := diffAnswers(before, answers(t, api, qs)); len(diffs) > 0 {
			t.Fatalf("after %s %d answers differ:\n%s", name, len(diffs), strings.Join(testkit.Head(diffs, 5), "\n"))
		}
		t.Logf("%s reprocessed %d events; %d answers unchanged at each of %d checks while it ran (%d of them midway, at %v events), all %d after",
			name, plan.Events(), len(live), checks, len(midway), midway, len(qs))
	}

	// 1. The same group from the start: forget its checkpoints and bus positions.
	forgetCheckpoints(t, f, f.Group)
	deleteGroup(t, f, f.Group)
	replay("the same group from offset 0", f.Group)

	// 2. Another group over the same topic into the same keyspace.
	replay("a second group", f.Group+"-again")
}

// forgetCheckpoints deletes every key the group stored for the fleet's topic under its
// checkpoint key (the head and its chunks): the group forgets its position and open
// visits. The rows-high marks stay: they describe the rows in the store, not the group.
func forgetCheckpoints(t *testing.T, f *Fleet, group string) {
	t.Helper()
	ctx := context.Background()
	cfg := cassandra.DefaultConfig()
	cfg.Hosts, cfg.Keyspace = []string{f.Cassandra}, f.Keyspace
	st, err := cassandra.Open(ctx, cfg, cassandra.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix := strings.TrimSuffix(processor.CheckpointKey(f.Topic, group, 0), "0")
	var keys []string
	if err := st.ListMeta(ctx, processor.CheckpointNamespace, func(k string, _ []byte) error {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no checkpoint of group %s found", group)
	}
	for _, k := range keys {
		if err := st.DeleteMeta(ctx, processor.CheckpointNamespace, k); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("deleted %d checkpoint keys of group %s", len(keys), group)
}

// deleteGroup removes a consumer group and its committed offsets from Kafka (as
// kafka-consumer-groups --delete does); its members must have left.
func deleteGroup(t *testing.T, f *Fleet, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafkago.Client{Addr: kafkago.TCP(f.Kafka), Timeout: 10 * time.Second}
	testkit.WaitFor(t, 30*time.Second, "the consumer group "+group+" to be deleted", func() (bool, string) {
		res, err := client.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: []string{group}})
		if err != nil {
			return false, err.Error()
		}
		if err := res.Errors[group]; err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// TestCassandraOutage stops the (private) Cassandra while beacons stream in. While it is
// down, processors retry with backoff and commit no bus position, and the query API
// answers 503 with a message that says what is wrong; once it is back, every acknowledged
// beacon is counted exactly once.
func TestCassandraOutage(t *testing.T) {
	cass := StartPrivateCassandra(t)
	site := "outage.example"
	f := NewFleet(t, FleetOptions{Cassandra: cass.Addr, Sites: []string{site}})
	c := f.StartCollector()
	procFlags := []string{"--processor.checkpoint-interval=2s", "--processor.store-retry-max=2s"}
	p1 := f.StartProcessor(procFlags...)
	p2 := f.StartProcessor(procFlags...)
	q := f.StartQuery()
	api := f.API(q)
	waitPartitions(t, 30*time.Second, p1, p2)

	plan := loadgen.NewPlan(loadgen.Options{Sites: []string{site}, Events: scaled(16_000), Seed: 31, UniquePaths: true})
	total := int64(plan.Events())
	var acked atomic.Int64
	done := make(chan *loadgen.Report, 1)
	go func() {
		done <- loadgen.Send(context.Background(), plan, loadgen.SendOptions{Target: c.URL, Concurrency: 16, Rate: float64(total) / 30,
			Timeout: 10 * time.Second, Retries: 100, Progress: func(_, a, _ int64) { acked.Store(a) }})
	}()
	testkit.WaitFor(t, time.Minute, "a quarter of the beacons to be acknowledged", func() (bool, string) {
		return acked.Load() >= total/4, fmt.Sprintf("%d of %d", acked.Load(), total)
	})
	commits := func() float64 {
		return p1.Metric("glimpse_bus_commits_total") + p2.Metric("glimpse_bus_commits_total")
	}
	retries := func() float64 {
		return p1.Metric("glimpse_processor_store_retries_total") + p2.Metric("glimpse_processor_store_retries_total")
	}
	cass.Stop()
	down := time.Now()
	ackedAtStop := acked.Load()

	// The processors notice and retry; after a checkpoint interval that failed, no commit.
	testkit.WaitFor(t, 30*time.Second, "the processors to retry store writes", func() (bool, string) {
		n := retries()
		return n > 0, fmt.Sprintf("%.0f retries", n)
	})
	time.Sleep(3 * time.Second) // a commit in flight when the store went away has landed
	commitsDown := commits()

	// The query API says what is wrong.
	testkit.WaitFor(t, 30*time.Second, "the query API to answer 503", func() (bool, string) {
		code, body, err := api.Raw(map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "date_range": testkit.TodayRange()})
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusServiceUnavailable {
			return false, fmt.Sprintf("HTTP %d: %s", code, body)
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "store") || !strings.Contains(e.Error, "try again") {
			t.Errorf("the 503 does not say the store is unavailable and to try again: %s", body)
		}
		t.Logf("query API while Cassandra is down: HTTP %d %s", code, strings.TrimSpace(string(body)))
		return true, ""
	})
	time.Sleep(5 * time.Second)
	if n := commits(); n != commitsDown {
		t.Errorf("bus positions were committed while the store was down: %.0f commits, %.0f when it went down", n, commitsDown)
	}
	for _, p := range []*Proc{p1, p2} {
		if p.Exited() {
			t.Fatalf("%s exited while the store was down:\n%s", p.Name, p.Tail(8<<10))
		}
	}
	t.Logf("while Cassandra was down for %s: %.0f store retries, 0 commits, %d beacons acknowledged (the bus holds them)",
		time.Since(down).Round(time.Second), retries(), acked.Load()-ackedAtStop)
	cass.Start()
	back := time.Now()
	// How long the services take to use Cassandra again once it answers.
	testkit.WaitFor(t, 2*time.Minute, "the query API to answer again after Cassandra's return", func() (bool, string) {
		code, body, err := api.Raw(map[string]any{"site_id": site, "metrics": []string{"pageviews"}, "date_range": testkit.TodayRange()})
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d: %s", code, body)
	})
	queryBack := time.Since(back)
	testkit.WaitFor(t, 2*time.Minute, "the processors to commit again after Cassandra's return", func() (bool, string) {
		return commits() > commitsDown, "no commit yet"
	})
	t.Logf("after Cassandra answered again: the query API answered 200 after %s, the processors committed after %s",
		queryBack.Round(100*time.Millisecond), time.Since(back).Round(100*time.Millisecond))

	var rep *loadgen.Report
	select {
	case rep = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the traffic did not finish within 3 minutes of Cassandra's return")
	}
	t.Logf("acknowledged %d of %d beacons; gave up on %d: %v", rep.Acked, total, rep.Failed, rep.Errors)
	if rep.Failed != 0 {
		t.Errorf("%d beacons were never acknowledged despite resends: %v", rep.Failed, rep.Errors)
	}
	mustOnce, mayOnce := map[string]bool{}, map[string]bool{}
	acknowledgedPaths(plan, rep, mustOnce, mayOnce)
	checkExactlyOnce(t, api, site, mustOnce, mayOnce, 2*time.Minute)
}

// TestCassandraSchema checks the schema's life cycle from the command line: services
// refuse a keyspace without the schema, and one migrated by a newer glimpse, with an error
// that says what to do; `glimpse migrate` creates it, and running it again changes nothing.
func TestCassandraSchema(t *testing.T) {
	f := NewFleet(t, FleetOptions{NoMigrate: true, NoConsul: true})

	refused := func(why string, wants ...string) {
		t.Helper()
		for _, target := range []string{"collector", "processor", "query"} {
			p := f.Launch(target)
			code, ok := p.Wait(time.Minute)
			if !ok {
				p.Kill()
				t.Fatalf("%s: %s started on a keyspace %s:\n%s", why, target, why, p.Tail(4<<10))
			}
			if code == 0 {
				t.Errorf("%s: %s exited 0 on a keyspace %s", why, target, why)
			}
			last := testkit.LastLine(p.Logs())
			for _, w := range wants {
				if !strings.Contains(last, w) {
					t.Errorf("%s: %s's error lacks %q:\n%s", why, target, w, last)
				}
			}
			if target == "query" {
				t.Logf("%s: %s", why, last)
			}
		}
	}

	// Never migrated: every service refuses and names the fix.
	refused("without the schema", "schema too old", f.Keyspace, "glimpse migrate --store=cassandra")

	first := f.Migrate()
	second := f.Migrate()
	t.Logf("first migrate: %s", strings.TrimSpace(first))
	t.Logf("second migrate: %s", strings.TrimSpace(second))
	if !strings.Contains(first, "migrated from schema version 0 to") {
		t.Errorf("the first migrate does not say it migrated from version 0:\n%s", first)
	}
	if !strings.Contains(second, "nothing to do") {
		t.Errorf("the second migrate does not say there was nothing to do:\n%s", second)
	}
	sess := f.CQL(false)
	tables := func() string {
		iter := sess.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, f.Keyspace).Iter()
		var names []string
		var n string
		for iter.Scan(&n) {
			names = append(names, n)
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(names, ",")
	}
	versions := func() string {
		iter := sess.Query(`SELECT version, name FROM ` + f.Keyspace + `.schema_version WHERE id = 'glimpse'`).Iter()
		var out []string
		var v int
		var name string
		for iter.Scan(&v, &name) {
			out = append(out, fmt.Sprintf("%d:%s", v, name))
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",")
	}
	tablesAfter, versionsAfter := tables(), versions()
	third := f.Migrate()
	if tables() != tablesAfter || versions() != versionsAfter || !strings.Contains(third, "nothing to do") {
		t.Errorf("migrate again changed the keyspace: tables %s → %s, versions %s → %s\n%s", tablesAfter, tables(), versionsAfter, versions(), third)
	}
	p := f.StartQuery()
	p.Stop(20 * time.Second)

	// The tables exist but the recorded schema is older than this binary needs (here: a
	// keyspace whose migration never recorded its version).
	latest := strings.Count(versionsAfter, ":")
	if err := sess.Query(`DELETE FROM `+f.Keyspace+`.schema_version WHERE id = 'glimpse' AND version = ?`, latest).Exec(); err != nil {
		t.Fatal(err)
	}
	refused("with an older schema", "schema too old", f.Keyspace, fmt.Sprintf("this binary needs %d", latest), "glimpse migrate --store=cassandra")
	if out := f.Migrate(); !strings.Contains(out, "migrated from schema version") {
		t.Errorf("migrate did not bring the older schema up to date:\n%s", out)
	}
	p = f.StartProcessor()
	p.Stop(20 * time.Second)

	// A newer glimpse migrated the keyspace: only upgrading this binary helps.
	if err := sess.Query(`INSERT INTO `+f.Keyspace+`.schema_version (id, version, name, applied_at) VALUES ('glimpse', ?, 'from_the_future', toTimestamp(now()))`, latest+1).Exec(); err != nil {
		t.Fatal(err)
	}
	refused("of a newer glimpse", "schema too new", fmt.Sprintf("schema version %d", latest+1), "upgrade glimpse")
	out, err := f.CLI(append([]string{"migrate"}, f.StoreFlags()...)...)
	if err == nil || !strings.Contains(out, "upgrade glimpse") {
		t.Errorf("migrate on a newer schema must fail and say to upgrade; err=%v:\n%s", err, out)
	}
}
