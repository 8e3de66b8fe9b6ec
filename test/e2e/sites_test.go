package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

// cli runs a glimpse command on dataDir and returns its standard output and error.
func cli(t *testing.T, dataDir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--data-dir="+dataDir)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func mustCLI(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, dataDir, args...)
	if err != nil {
		t.Fatalf("glimpse %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"

// send posts one page view and returns the X-Glimpse-Dropped header of the 202 answer.
func send(t *testing.T, in *instance, site, url string) string {
	t.Helper()
	body := `{"n":"pageview","u":"` + url + `","d":"` + site + `"}`
	req, _ := http.NewRequest(http.MethodPost, in.BaseURL+"/api/event", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", chromeUA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("event for %s from %s: HTTP %d", site, url, resp.StatusCode)
	}
	return resp.Header.Get("X-Glimpse-Dropped")
}

// ask queries the page views of site with key ("" for none) and returns the status and,
// on 200, the count.
func ask(t *testing.T, in *instance, site, key string) (int, int) {
	t.Helper()
	body := `{"site_id":"` + site + `","metrics":["pageviews"],"date_range":"7d"}`
	req, _ := http.NewRequest(http.MethodPost, in.BaseURL+"/api/v1/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0
	}
	var r testkit.QueryResult
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Results) == 0 {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return resp.StatusCode, int(r.Results[0].Metrics[0])
}

var keyPattern = regexp.MustCompile(`^glk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$`)

// TestSitesAndKeys manages sites and keys with the CLI, runs `glimpse all` with the
// collector closed to unknown sites, and checks what is counted and who may read it.
func TestSitesAndKeys(t *testing.T) {
	dataDir := t.TempDir()
	for _, args := range [][]string{{"sites", "--help"}, {"sites", "add", "--help"}, {"keys", "create", "--help"}, {"keys", "revoke", "--help"}} {
		out := mustCLI(t, dataDir, args...)
		if !strings.Contains(out, "Usage: glimpse "+args[0]) {
			t.Errorf("glimpse %s: %s", strings.Join(args, " "), out)
		}
	}
	if _, errOut, err := cli(t, dataDir, "sites", "list"); err == nil || !strings.Contains(errOut, "no store") {
		t.Errorf("sites list before any store: %v %s", err, errOut)
	}
	out := mustCLI(t, dataDir, "sites", "add", "https://www.Shop.example/", "--hostnames=shop.example", "--timezone=Europe/Berlin")
	if !strings.Contains(out, "added site shop.example") || !strings.Contains(out, "glimpse keys create --site=shop.example") {
		t.Errorf("sites add: %s", out)
	}
	mustCLI(t, dataDir, "sites", "add", "pub.example", "--public")
	if _, errOut, err := cli(t, dataDir, "sites", "add", "pub.example"); err == nil || !strings.Contains(errOut, "--update") {
		t.Errorf("adding a site twice: %v %s", err, errOut)
	}
	if _, errOut, err := cli(t, dataDir, "sites", "add", "tz.example", "--timezone=Mars/Olympus"); err == nil || !strings.Contains(errOut, "IANA") {
		t.Errorf("a bad time zone: %v %s", err, errOut)
	}
	shopKey := strings.TrimSpace(mustCLI(t, dataDir, "keys", "create", "--site=shop.example", "--name=shop team", "--quiet"))
	otherKey := strings.TrimSpace(mustCLI(t, dataDir, "keys", "create", "--site", "other.example", "--quiet"))
	m := keyPattern.FindStringSubmatch(shopKey)
	if m == nil || !keyPattern.MatchString(otherKey) {
		t.Fatalf("keys %q, %q do not look like API keys", shopKey, otherKey)
	}
	shopID := m[1]
	if _, errOut, err := cli(t, dataDir, "keys", "create"); err == nil || !strings.Contains(errOut, "--admin") {
		t.Errorf("a key without scope: %v %s", err, errOut)
	}
	list := mustCLI(t, dataDir, "keys", "list")
	if !strings.Contains(list, shopID) || !strings.Contains(list, "shop team") || strings.Contains(list, shopKey[17:]) {
		t.Errorf("keys list:\n%s", list)
	}
	sitesList := mustCLI(t, dataDir, "sites", "list")
	if !strings.Contains(sitesList, "shop.example") || !strings.Contains(sitesList, "Europe/Berlin") || !strings.Contains(sitesList, "public") {
		t.Errorf("sites list:\n%s", sitesList)
	}

	in := start(t, testkit.FreeAddr(t), dataDir, "--collector.open-sites=false", "--processor.flush-interval=100ms")
	if in.Key == "" {
		t.Fatal("no admin key link on the first start of glimpse all")
	}
	// The embedded store belongs to the running process.
	if _, errOut, err := cli(t, dataDir, "sites", "list"); err == nil || !strings.Contains(errOut, "stop glimpse all first") {
		t.Errorf("sites list while glimpse all runs: %v %s", err, errOut)
	}

	if d := send(t, in, "shop.example", "https://shop.example/a"); d != "" {
		t.Errorf("a page view of a known site was dropped: %s", d)
	}
	send(t, in, "pub.example", "https://pub.example/")
	if d := send(t, in, "unknown.example", "https://unknown.example/"); !strings.HasPrefix(d, "unknown_site") {
		t.Errorf("unknown site: X-Glimpse-Dropped %q", d)
	}
	if d := send(t, in, "shop.example", "https://blog.shop.example/"); !strings.HasPrefix(d, "foreign_hostname") {
		t.Errorf("foreign hostname: X-Glimpse-Dropped %q", d)
	}
	waitFor(t, 30*time.Second, "the shop's page view", func() (bool, string) {
		code, n := ask(t, in, "shop.example", shopKey)
		return code == 200 && n == 1, http.StatusText(code)
	})
	for _, c := range []struct {
		site, key string
		want      int
	}{
		{"shop.example", "", 401},
		{"shop.example", "glk_000000000000_" + strings.Repeat("x", 43), 401},
		{"shop.example", otherKey, 403},
		{"shop.example", in.Key, 200},
		{"pub.example", "", 200},
		{"pub.example", otherKey, 200},
		{"unknown.example", shopKey, 403},
		{"unknown.example", in.Key, 200},
	} {
		if code, _ := ask(t, in, c.site, c.key); code != c.want {
			t.Errorf("%s with key %.20q: HTTP %d, want %d", c.site, c.key, code, c.want)
		}
	}
	if _, n := ask(t, in, "unknown.example", in.Key); n != 0 {
		t.Errorf("a dropped site counted %d page views", n)
	}
	resp, err := http.Get(in.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`glimpse_collector_events_total{result="unknown_site"} 1`, `glimpse_collector_events_total{result="foreign_hostname"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	in.stop()

	// Revoke the shop's key and remove a site while glimpse is stopped; a restart honours both
	// and does not print a new admin key.
	if out := mustCLI(t, dataDir, "keys", "revoke", shopID); !strings.Contains(out, "revoked API key "+shopID) {
		t.Errorf("keys revoke: %s", out)
	}
	if _, errOut, err := cli(t, dataDir, "keys", "revoke", shopID); err == nil || !strings.Contains(errOut, "no API key") {
		t.Errorf("revoking twice: %v %s", err, errOut)
	}
	mustCLI(t, dataDir, "sites", "remove", "pub.example")
	if list := mustCLI(t, dataDir, "sites", "list"); strings.Contains(list, "pub.example") {
		t.Errorf("a removed site is listed:\n%s", list)
	}
	again := start(t, testkit.FreeAddr(t), dataDir, "--collector.open-sites=false")
	waitFor(t, 10*time.Second, "the welcome output", func() (bool, string) {
		return strings.Contains(again.output(), "glimpse keys create --admin"), again.output()
	})
	if keyLink.MatchString(again.output()) {
		t.Errorf("the second start printed a new admin key: %s", again.output())
	}
	if code, _ := ask(t, again, "shop.example", shopKey); code != 401 {
		t.Errorf("a revoked key: HTTP %d, want 401", code)
	}
	if code, _ := ask(t, again, "pub.example", ""); code != 401 {
		t.Errorf("a removed public site without a key: HTTP %d, want 401", code)
	}
	if d := send(t, again, "pub.example", "https://pub.example/"); !strings.HasPrefix(d, "unknown_site") {
		t.Errorf("an event for a removed site: X-Glimpse-Dropped %q", d)
	}
}
