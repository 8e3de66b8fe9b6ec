package main

import (
	"strings"
	"testing"
)

func TestSitesGoalsCommands(t *testing.T) {
	d := "--data-dir=" + t.TempDir()
	if code, out, errOut := runCmd(t, "sites", "add", "shop.example", "--currency=eur", d); code != 0 || !strings.Contains(out, "Revenue is reported in EUR") {
		t.Fatalf("sites add: exit %d\n%s%s", code, out, errOut)
	}
	cases := []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"sites", "goals", d}, 1, "", "name a command: use glimpse sites goals add"},
		{[]string{"sites", "goals", "rename", "shop.example", d}, 1, "", `unknown goals command "rename"`},
		{[]string{"sites", "goals", "list", "shop.example", d}, 0, "no goals for shop.example yet", ""},
		{[]string{"sites", "goals", "add", "shop.example", "--event=Signup", d}, 0, `added goal "Signup" to shop.example: event Signup`, ""},
		{[]string{"sites", "goals", "add", "shop.example", "--page=/blog/*", d}, 0, `added goal "Visit /blog/*" to shop.example: page /blog/*`, ""},
		{[]string{"sites", "goals", "add", "shop.example", "--page=/pricing", "--name=Pricing", d}, 0, `added goal "Pricing"`, ""},
		{[]string{"sites", "goals", "add", "shop.example", "--event=Signup", "--name=Again", d}, 1, "", `counts event "Signup" already, as goal "Signup"`},
		{[]string{"sites", "goals", "add", "shop.example", "--event=Purchase", "--name=pricing", d}, 1, "", `has a goal named "Pricing" already`},
		{[]string{"sites", "goals", "add", "shop.example", d}, 1, "", "a goal is either a custom event (--event=Signup) or a page pattern"},
		{[]string{"sites", "goals", "add", "shop.example", "--page=pricing", d}, 1, "", `must start with "/"`},
		{[]string{"sites", "goals", "add", "nope.example", "--event=Signup", d}, 1, "", "there is no site nope.example: add it first"},
		{[]string{"sites", "goals", "list", "shop.example", d}, 0, "Visit /blog/*  page   /blog/*", ""},
		{[]string{"sites", "goals", "list", "shop.example", "--json", d}, 0, `"page": "/pricing"`, ""},
		{[]string{"sites", "goals", "remove", "shop.example", d}, 1, "", "say which goal to remove"},
		{[]string{"sites", "goals", "remove", "shop.example", "--name=nope", d}, 1, "", "site shop.example has no such goal"},
		{[]string{"sites", "goals", "remove", "shop.example", "--page=/blog/*", d}, 0, `removed goal "Visit /blog/*" of shop.example`, ""},
		{[]string{"sites", "goals", "remove", "shop.example", "--name=PRICING", d}, 0, `removed goal "Pricing"`, ""},
		{[]string{"sites", "list", "--json", d}, 0, `"currency": "EUR"`, ""},
		{[]string{"sites", "add", "shop.example", "--update", "--currency=euro", d}, 1, "", "not a 3-letter ISO 4217 code"},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.error) {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q", c.args, code, out, errOut, c.code, c.out, c.error)
		}
	}
	if _, out, _ := runCmd(t, "sites", "goals", "list", "shop.example", d); strings.Contains(out, "Pricing") || !strings.Contains(out, "Signup") {
		t.Errorf("goals left after removals:\n%s", out)
	}
}
