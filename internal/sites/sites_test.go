package sites

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)} }

func newMeta(t *testing.T) *memstore.Store {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// failing is a meta table whose every call fails.
type failing struct{ store.Meta }

var errDown = errors.New("store down")

func (failing) GetMeta(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errDown
}
func (failing) PutMetaIfAbsent(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errDown
}
func (failing) ListMeta(context.Context, string, func(string, []byte) error) error { return errDown }

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":               "example.com",
		" https://www.Example.COM/": "example.com",
		"blog.example.com.":         "blog.example.com",
		"http://shop.example.org//": "shop.example.org",
	} {
		if got, err := NormalizeDomain(in); err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", "exa mple.com", "a,b", "x/y.com/z", strings.Repeat("a", MaxDomainLen+1), "bad\x00"} {
		if got, err := NormalizeDomain(bad); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", bad, got)
		}
	}
}

func TestNormalizeHostnames(t *testing.T) {
	got, err := NormalizeHostnames([]string{"Example.com", "*.Example.com", "https://www.shop.example.com:8443/x", "*", "localhost:3000", "", "example.com", "[::1]:8080"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com", "*.example.com", "shop.example.com", "*", "localhost", "::1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"*example.com", "a.*.com", "exa mple.com", "*.*"} {
		if _, err := NormalizeHostnames([]string{bad}); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestAllowsHostname(t *testing.T) {
	s := Site{Domain: "example.com", Hostnames: DefaultHostnames("example.com")}
	for h, want := range map[string]bool{
		"example.com":      true,
		"blog.example.com": true,
		"a.b.example.com":  true,
		"badexample.com":   false,
		"example.com.evil": false,
		"example.org":      false,
		"":                 false,
		"com":              false,
	} {
		if got := s.AllowsHostname(h); got != want {
			t.Errorf("default hostnames: AllowsHostname(%q) = %v, want %v", h, got, want)
		}
	}
	exact := Site{Hostnames: []string{"shop.example.com"}}
	if !exact.AllowsHostname("shop.example.com") || exact.AllowsHostname("example.com") || exact.AllowsHostname("x.shop.example.com") {
		t.Error("an exact hostname must match only itself")
	}
	any := Site{Hostnames: []string{"*"}}
	if !any.AllowsHostname("anything.test") || !any.AllowsHostname("") {
		t.Error(`"*" must allow every hostname, even none`)
	}
}

func TestValidateTimezone(t *testing.T) {
	for in, want := range map[string]string{"": "UTC", "UTC": "UTC", "Europe/Berlin": "Europe/Berlin", " America/New_York ": "America/New_York"} {
		if got, err := ValidateTimezone(in); err != nil || got != want {
			t.Errorf("ValidateTimezone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Mars/Olympus_Mons", "Berlin", "+02:00"} {
		if _, err := ValidateTimezone(bad); err == nil || !strings.Contains(err.Error(), "IANA") {
			t.Errorf("ValidateTimezone(%q) = %v, want an error naming IANA", bad, err)
		}
	}
	if _, err := (Site{Domain: "example.com", Timezone: "Nowhere/Land"}).Normalize(); err == nil {
		t.Error("a site with an unknown time zone was accepted")
	}
}

func TestDirectoryAddGetListRemove(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	d := NewDirectory(newMeta(t), Options{Now: clk.Now})
	s, err := d.Add(ctx, Site{Domain: "https://www.Example.com/", Timezone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Domain != "example.com" || strings.Join(s.Hostnames, ",") != "example.com,*.example.com" || s.Timezone != "Europe/Berlin" || s.Public || !s.Created.Equal(clk.Now()) {
		t.Errorf("added %+v", s)
	}
	if _, err := d.Add(ctx, Site{Domain: "example.com", Public: true}); !errors.Is(err, ErrExists) {
		t.Errorf("adding a site twice: %v, want ErrExists", err)
	}
	if _, err := d.Add(ctx, Site{Domain: "b.example", Hostnames: []string{"b.example", "staging.b.test"}, Public: true}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Get(ctx, "b.example")
	if err != nil || !ok || !got.Public || got.Timezone != "UTC" || !got.AllowsHostname("staging.b.test") || got.AllowsHostname("x.b.example") {
		t.Errorf("Get = %+v, %v, %v", got, ok, err)
	}
	list, err := d.List(ctx)
	if err != nil || len(list) != 2 || list[0].Domain != "b.example" || list[1].Domain != "example.com" {
		t.Errorf("List = %+v, %v", list, err)
	}
	if _, err := d.Put(ctx, Site{Domain: "example.com", Public: true}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := d.Get(ctx, "example.com"); !got.Public || got.Timezone != "UTC" {
		t.Errorf("after Put: %+v", got)
	}
	if ok, err := d.Remove(ctx, "example.com"); !ok || err != nil {
		t.Errorf("Remove = %v, %v", ok, err)
	}
	if ok, err := d.Remove(ctx, "example.com"); ok || err != nil {
		t.Errorf("second Remove = %v, %v; want false, nil", ok, err)
	}
	if _, ok, _ := d.Lookup(ctx, "example.com"); ok {
		t.Error("a removed site is still looked up")
	}
}

// TestLookupNoticesOtherInstances: a collector of a fleet sees a site the CLI added through
// another connection to the store once its copy of the list is older than the TTL.
func TestLookupNoticesOtherInstances(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	clk := newClock()
	collector := NewDirectory(meta, Options{TTL: 5 * time.Second, Now: clk.Now})
	cli := NewDirectory(meta, Options{Now: clk.Now})
	if _, ok, err := collector.Lookup(ctx, "new.example"); ok || err != nil {
		t.Fatalf("Lookup before the site exists = %v, %v", ok, err)
	}
	if _, err := cli.Add(ctx, Site{Domain: "new.example"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := collector.Lookup(ctx, "new.example"); ok {
		t.Fatal("the cached list was reloaded before the TTL passed")
	}
	clk.Add(5 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := collector.Lookup(ctx, "new.example"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new site was never noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Removal is noticed the same way.
	if _, err := cli.Remove(ctx, "new.example"); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := collector.Lookup(ctx, "new.example"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removal was never noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLookupFirstLoadError(t *testing.T) {
	d := NewDirectory(failing{}, Options{})
	if _, _, err := d.Lookup(context.Background(), "example.com"); !errors.Is(err, errDown) {
		t.Errorf("Lookup on a failing store = %v, want its error", err)
	}
}

func TestEnsureOpen(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	a := NewDirectory(meta, Options{})
	b := NewDirectory(meta, Options{})
	s, created, err := a.EnsureOpen(ctx, "example.com", "localhost")
	if err != nil || !created {
		t.Fatalf("EnsureOpen = %v, %v", created, err)
	}
	if !s.Auto || !s.AllowsHostname("localhost") || !s.AllowsHostname("example.com") || !s.AllowsHostname("www2.example.com") || s.AllowsHostname("127.0.0.1") || s.Timezone != "UTC" {
		t.Errorf("created %+v", s)
	}
	if _, created, _ := a.EnsureOpen(ctx, "example.com", "127.0.0.1"); created {
		t.Error("the site was created twice")
	}
	// Another instance with a stale list gets the stored site, not a second one.
	if _, _, err := b.Lookup(ctx, "other.example"); err != nil {
		t.Fatal(err)
	}
	s2, created, err := b.EnsureOpen(ctx, "example.com", "127.0.0.1")
	if err != nil || created || s2.AllowsHostname("127.0.0.1") {
		t.Errorf("second instance: %+v, created %v, %v", s2, created, err)
	}
	// A hostname the defaults cover is not added again.
	s3, _, _ := a.EnsureOpen(ctx, "shop.example", "blog.shop.example")
	if len(s3.Hostnames) != 2 {
		t.Errorf("hostnames %q", s3.Hostnames)
	}
	if _, _, err := NewDirectory(failing{}, Options{}).EnsureOpen(ctx, "x.example", ""); !errors.Is(err, errDown) {
		t.Errorf("EnsureOpen on a failing store = %v", err)
	}
}
