package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestSitesMPSecretCommands(t *testing.T) {
	dir := t.TempDir()
	d := "--data-dir=" + dir
	if code, out, errOut := runCmd(t, "sites", "add", "shop.example", d); code != 0 {
		t.Fatalf("sites add: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCmd(t, "sites", "mp-secret", "create", "shop.example", "--name=backend", d)
	if code != 0 || !strings.Contains(out, "Created Measurement Protocol secret") || !strings.Contains(out, "/mp/collect?measurement_id=shop.example&api_secret=gmp_") {
		t.Fatalf("create: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	secret := regexp.MustCompile(`gmp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}`).FindString(out)
	if secret == "" {
		t.Fatalf("no secret in %q", out)
	}
	id := secret[4:16]
	code, quietOut, _ := runCmd(t, "sites", "mp-secret", "create", "shop.example", "--quiet", d)
	if code != 0 || !regexp.MustCompile(`^gmp_[0-9a-f]{12}_\S{43}\n$`).MatchString(quietOut) {
		t.Fatalf("create --quiet: exit %d, %q", code, quietOut)
	}

	cases := []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"sites", "mp-secret", d}, 1, "", "name a command: use glimpse sites mp-secret create"},
		{[]string{"sites", "mp-secret", "rotate", "shop.example", d}, 1, "", `unknown mp-secret command "rotate"`},
		{[]string{"sites", "mp-secret", "create", d}, 1, "", "missing the site's domain"},
		{[]string{"sites", "mp-secret", "create", "nope.example", d}, 1, "", "there is no site nope.example: add it first"},
		{[]string{"sites", "mp-secret", "list", "shop.example", d}, 0, id + "  backend", ""},
		{[]string{"sites", "mp-secret", "list", "shop.example", "--json", d}, 0, `"name": "backend"`, ""},
		{[]string{"sites", "mp-secret", "list", "other.example", d}, 0, "no Measurement Protocol secrets for other.example", ""},
		{[]string{"sites", "mp-secret", "revoke", "shop.example", d}, 1, "", "missing the site's domain and the secret's id"},
		{[]string{"sites", "mp-secret", "revoke", "shop.example", "000000000000", d}, 1, "", "has no Measurement Protocol secret"},
		{[]string{"sites", "mp-secret", "revoke", "shop.example", secret, d}, 0, "revoked Measurement Protocol secret " + id + " of shop.example", ""},
		{[]string{"sites", "mp-secret", "revoke", "shop.example", id, d}, 1, "", "has no Measurement Protocol secret"},
		{[]string{"sites", "mp-secret", "--help"}, 0, "POST /mp/collect?measurement_id=<domain>&api_secret=<secret>", ""},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.error) {
			t.Errorf("glimpse %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, out, errOut)
		}
	}
	if _, out, _ := runCmd(t, "sites", "mp-secret", "list", "shop.example", d); strings.Contains(out, id) {
		t.Errorf("the revoked secret is still listed: %s", out)
	}
}
