package sites

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPagePattern(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"/pricing", []string{"/pricing"}, []string{"/pricing/", "/pricing/eu", "/Pricing", "/xpricing"}},
		{"/blog/*", []string{"/blog/go", "/blog/", "/blog/a.b"}, []string{"/blog", "/blog/go/part-2", "/blogs/go"}},
		{"/blog/**", []string{"/blog/go", "/blog/go/part-2", "/blog/"}, []string{"/blog", "/news/blog/go"}},
		{"/*/checkout", []string{"/de/checkout", "/x/checkout"}, []string{"/checkout", "/a/b/checkout"}},
		{"/a.b+(c)", []string{"/a.b+(c)"}, []string{"/aXb+(c)", "/a.bb(c)"}},
	}
	for _, c := range cases {
		re, err := PagePattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		for _, p := range c.match {
			if !re.MatchString(p) {
				t.Errorf("%s does not match %s", c.pattern, p)
			}
		}
		for _, p := range c.miss {
			if re.MatchString(p) {
				t.Errorf("%s matches %s", c.pattern, p)
			}
		}
	}
}

func TestGoalNormalize(t *testing.T) {
	g, err := Goal{Event: " Signup "}.Normalize()
	if err != nil || g.Name != "Signup" || g.Event != "Signup" || g.Kind() != "event" {
		t.Fatalf("event goal: %+v, %v", g, err)
	}
	g, err = Goal{Page: "/blog/*"}.Normalize()
	if err != nil || g.Name != "Visit /blog/*" || g.Kind() != "page" || g.Definition() != "/blog/*" {
		t.Fatalf("page goal: %+v, %v", g, err)
	}
	bad := map[string]Goal{
		"either a custom event":   {},
		"not both":                {Event: "Signup", Page: "/x"},
		"must start with":         {Page: "pricing"},
		`"***"`:                   {Page: "/a/***"},
		"is not a custom event":   {Event: "pageview"},
		"at most 120 bytes":       {Event: "Signup", Name: strings.Repeat("n", MaxGoalNameLen+1)},
		"event names":             {Event: strings.Repeat("e", 121)},
		"control characters":      {Event: "Signup", Name: "a\nb"},
		"page pattern must be":    {Page: "/" + strings.Repeat("p", 1024)},
		"valid UTF-8 of at most ": {Event: "\xff"},
	}
	for want, g := range bad {
		if _, err := g.Normalize(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one saying %q", g, err, want)
		}
	}
}

func TestSiteGoalsAndCurrency(t *testing.T) {
	ctx := context.Background()
	d := NewDirectory(newMeta(t), Options{})
	if _, err := d.Add(ctx, Site{Domain: "shop.test", Currency: " eur "}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddGoal(ctx, "nope.test", Goal{Event: "Signup"}); !errors.Is(err, ErrNoSuchSite) {
		t.Errorf("goal of a missing site: %v", err)
	}
	if _, err := d.AddGoal(ctx, "shop.test", Goal{Event: "Signup"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddGoal(ctx, "shop.test", Goal{Page: "/pricing", Name: "Pricing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddGoal(ctx, "shop.test", Goal{Event: "Purchase", Name: "signup"}); err == nil || !strings.Contains(err.Error(), "goal named") {
		t.Errorf("a second goal named signup (any case): %v", err)
	}
	if _, err := d.AddGoal(ctx, "shop.test", Goal{Event: "Signup", Name: "Other"}); err == nil || !strings.Contains(err.Error(), "counts event") {
		t.Errorf("the same event twice: %v", err)
	}
	s, _, err := d.Get(ctx, "shop.test")
	if err != nil {
		t.Fatal(err)
	}
	if s.Currency != "EUR" || len(s.Goals) != 2 || s.Goals[1] != (Goal{Name: "Pricing", Page: "/pricing"}) {
		t.Fatalf("stored site %+v", s)
	}

	if g, ok, err := d.RemoveGoal(ctx, "shop.test", Goal{Page: "/pricing"}); err != nil || !ok || g.Name != "Pricing" {
		t.Fatalf("remove by page: %+v %v %v", g, ok, err)
	}
	if _, ok, err := d.RemoveGoal(ctx, "shop.test", Goal{Name: "nope"}); err != nil || ok {
		t.Fatalf("remove of a missing goal: %v %v", ok, err)
	}
	if g, ok, err := d.RemoveGoal(ctx, "shop.test", Goal{Name: "SIGNUP"}); err != nil || !ok || g.Event != "Signup" {
		t.Fatalf("remove by name: %+v %v %v", g, ok, err)
	}
	if s, _, _ := d.Get(ctx, "shop.test"); len(s.Goals) != 0 {
		t.Fatalf("goals left: %+v", s.Goals)
	}

	for i := range MaxGoals {
		if _, err := d.AddGoal(ctx, "shop.test", Goal{Event: fmt.Sprintf("e%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.AddGoal(ctx, "shop.test", Goal{Event: "one-too-many"}); err == nil || !strings.Contains(err.Error(), "the most a site may have") {
		t.Errorf("goal %d: %v", MaxGoals+1, err)
	}

	for _, bad := range []string{"EURO", "E1R", "€"} {
		if _, err := d.Put(ctx, Site{Domain: "shop.test", Currency: bad}); err == nil || !strings.Contains(err.Error(), "ISO 4217") {
			t.Errorf("currency %q: %v", bad, err)
		}
	}
}
