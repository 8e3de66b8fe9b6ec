package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSitesAndKeysCommands(t *testing.T) {
	dir := t.TempDir()
	d := "--data-dir=" + dir
	cases := []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"sites"}, 1, "", "name a command: add, list, remove"},
		{[]string{"sites", "--help"}, 0, "glimpse sites <command>", ""},
		{[]string{"sites", "frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{[]string{"sites", "list", d}, 1, "", "there is no store"},
		{[]string{"sites", "add", "a.example", "--data-dir="}, 1, "", "--data-dir is empty"},
		{[]string{"sites", "add", d}, 1, "", "missing the site's domain"},
		{[]string{"sites", "add", "a.example", "b.example", d}, 1, "", `unexpected argument "b.example"`},
		// flags before and after the domain
		{[]string{"sites", "add", "--timezone=Europe/Berlin", "https://www.A.example/", "--public", d}, 0, "added site a.example: hostnames a.example, *.a.example; time zone Europe/Berlin; public", ""},
		{[]string{"sites", "add", "a.example", d}, 1, "", "pass --update"},
		{[]string{"sites", "add", "a.example", "--update", "--hostnames=a.example,localhost:3000", d}, 0, "updated site a.example: hostnames a.example, localhost; time zone Europe/Berlin; public", ""},
		{[]string{"sites", "add", "b.example", "--timezone=Nowhere/Land", d}, 1, "", "IANA"},
		{[]string{"sites", "add", "b.example", "--hostnames=*bad", d}, 1, "", "not valid"},
		{[]string{"sites", "list", d}, 0, "a.example  a.example,localhost  Europe/Berlin  public", ""},
		{[]string{"sites", "remove", "nope.example", d}, 1, "", "there is no site nope.example"},
		{[]string{"sites", "remove", "A.example", d}, 0, "removed site a.example", ""},
		{[]string{"sites", "list", d}, 0, "no sites yet", ""},
		{[]string{"sites", "list", d, "--store=memory"}, 1, "", "--store=memory keeps nothing"},
		{[]string{"keys", "create", d}, 1, "", "--admin"},
		{[]string{"keys", "create", "--admin", "--site=a.example", d}, 1, "", "either --site or --admin"},
		{[]string{"keys", "create", "--site=a.example", "--site=b.example,c.example", "--name=ci", d}, 0, "for a.example,b.example,c.example (ci)", "not in the site list"},
		{[]string{"keys", "list", d}, 0, "a.example,b.example,c.example", ""},
		{[]string{"keys", "revoke", "000000000000", d}, 1, "", "no API key"},
		{[]string{"keys", "revoke", d}, 1, "", "missing the key's id"},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.error) {
			t.Errorf("glimpse %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, out, errOut)
		}
	}

	code, out, _ := runCmd(t, "keys", "create", "--admin", "--quiet", d)
	key := strings.TrimSpace(out)
	id, _, ok := sites.ParseKey(key)
	if code != 0 || !ok {
		t.Fatalf("keys create --quiet printed %q", out)
	}
	if _, list, _ := runCmd(t, "keys", "list", "--json", d); !strings.Contains(list, `"id": "`+id+`"`) || !strings.Contains(list, `"admin": true`) || strings.Contains(list, key) {
		t.Errorf("keys list --json: %s", list)
	}
	if code, out, _ := runCmd(t, "keys", "revoke", key, d); code != 0 || !strings.Contains(out, "revoked API key "+id) {
		t.Errorf("revoke by the whole key: %d %s", code, out)
	}
}

// TestStoreSettingsFromEnvironment: the store settings follow GLIMPSE_* like the services'
// do; the command's own settings do not (GLIMPSE_ADMIN must not turn a key into an admin key).
func TestStoreSettingsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GLIMPSE_DATA_DIR", dir)
	t.Setenv("GLIMPSE_ADMIN", "true")
	t.Setenv("GLIMPSE_PUBLIC", "true")
	if code, out, errOut := runCmd(t, "sites", "add", "env.example"); code != 0 || !strings.Contains(out, "API key") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, "keys", "create", "--site=env.example"); code != 0 || strings.Contains(out, "admin") {
		t.Errorf("exit %d: %s", code, out)
	}
	if _, out, _ := runCmd(t, "sites", "list", "--data-dir="+t.TempDir()+"/elsewhere"); strings.Contains(out, "env.example") {
		t.Error("--data-dir must win over GLIMPSE_DATA_DIR")
	}
}

func TestWelcomeKey(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	defer st.Close()
	g := globalConfig{Store: "pebble", DataDir: "/srv/glimpse"}
	var first bytes.Buffer
	if err := welcomeKey(ctx, &first, st, "localhost:8080", g); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Dashboard: http://localhost:8080/#key=(glk_\S+)\n`).FindStringSubmatch(first.String())
	if m == nil {
		t.Fatalf("first start: %s", first.String())
	}
	k, err := sites.NewKeyring(st, sites.Options{}).Verify(ctx, m[1])
	if err != nil || !k.Admin {
		t.Fatalf("the printed key: %+v, %v", k, err)
	}
	var later bytes.Buffer
	if err := welcomeKey(ctx, &later, st, "localhost:8080", g); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(later.String(), "#key=") || !strings.Contains(later.String(), "glimpse keys create --admin --data-dir=/srv/glimpse") {
		t.Errorf("later start: %s", later.String())
	}
	if keys, _ := sites.NewKeyring(st, sites.Options{}).List(ctx); len(keys) != 1 {
		t.Errorf("%d admin keys, want 1", len(keys))
	}
}
