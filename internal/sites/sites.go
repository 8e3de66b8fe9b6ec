// Package sites keeps the list of sites Glimpse counts and the API keys that may read them,
// in the store's meta table, so both the embedded and the Cassandra engine hold them and
// every instance of a fleet sees the same list.
//
//	namespace "sites": key = site domain ("example.com"), value = JSON of Site
//	namespace "keys":  key = key id,                      value = JSON of Key (the SHA-256 of
//	                                                               the secret, never the secret)
//
// Collectors read the sites on every event and query services read keys and sites on every
// request, so Directory and Keyring keep what they read in memory for a short while: a site
// added with `glimpse sites add` is noticed within Options.TTL, a revoked key stops working
// within the same bound.
package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Meta namespaces.
const (
	SitesNamespace = "sites"
	KeysNamespace  = "keys"
)

// MaxDomainLen is the longest site domain (the collector's limit on a site id).
const MaxDomainLen = event.MaxSiteLen

// DefaultTTL is how long a Directory or Keyring trusts what it read from the store.
const DefaultTTL = 5 * time.Second

// ErrExists is returned by Directory.Add for a domain that is already a site.
var ErrExists = errors.New("the site already exists")

// Site is one site Glimpse accepts events for.
type Site struct {
	// Domain is the site id the tracker sends in data-site ("example.com"), normalised.
	Domain string `json:"domain"`
	// Hostnames are the page hostnames whose events count for the site: "example.com" matches
	// that hostname only, "*.example.com" its subdomains, "*" any hostname. Hostnames are
	// compared as the collector normalises them (lower case, no "www.", no port).
	Hostnames []string `json:"hostnames"`
	// Timezone is the IANA name of the site's time zone ("Europe/Berlin"); default "UTC".
	Timezone string `json:"timezone"`
	// Public sites can be queried without an API key.
	Public bool `json:"public,omitempty"`
	// Auto is set on sites the collector created on their first event (collector.open-sites).
	Auto bool `json:"auto,omitempty"`
	// Created is when the site was added.
	Created time.Time `json:"created"`
	// Currency is the ISO 4217 code revenue is reported in ("EUR"); "" for none (goals.go).
	Currency string `json:"currency,omitempty"`
	// Goals are the conversions the query API reports as event:goal (goals.go).
	Goals []Goal `json:"goals,omitempty"`
}

// DefaultHostnames are the hostnames a site allows when none are given: the domain and its
// subdomains.
func DefaultHostnames(domain string) []string {
	return []string{domain, "*." + domain}
}

// AllowsHostname reports whether events of pages on hostname h (normalised) count for s.
func (s *Site) AllowsHostname(h string) bool {
	if h == "" {
		return slices.Contains(s.Hostnames, "*")
	}
	for _, p := range s.Hostnames {
		switch {
		case p == "*":
			return true
		case strings.HasPrefix(p, "*."):
			if len(h) > len(p)-1 && strings.HasSuffix(h, p[1:]) {
				return true
			}
		case p == h:
			return true
		}
	}
	return false
}

// NormalizeDomain turns a site id as a person or a sender may write it
// ("https://www.Example.com/") into its canonical form ("example.com"): trimmed, lowercased,
// without scheme, "www." prefix or trailing slash or dot. It rejects empty ids, ids longer
// than MaxDomainLen and ids with characters no domain has (spaces, control characters,
// / ? # @ \ , ").
func NormalizeDomain(s string) (string, error) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s = strings.ToLower(strings.TrimRight(s, "/"))
	s = strings.TrimPrefix(s, "www.")
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("it is empty")
	}
	if len(s) > MaxDomainLen {
		return "", fmt.Errorf("it is %d bytes; the limit is %d", len(s), MaxDomainLen)
	}
	if !utf8.ValidString(s) {
		return "", errors.New("it is not valid UTF-8")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`/?#@\,"`, r) || r == utf8.RuneError {
			return "", fmt.Errorf("it contains %q; a site id is a domain such as example.com", r)
		}
	}
	return s, nil
}

// NormalizeHostname checks and normalises one allowed-hostname pattern: "*", "*.example.com"
// or a hostname ("https://www.Example.com:8443/" becomes "example.com").
func NormalizeHostname(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "*" {
		return p, nil
	}
	wild := strings.HasPrefix(p, "*.")
	if wild {
		p = p[2:]
	}
	if i := strings.Index(p, "://"); i >= 0 {
		p = p[i+3:]
	}
	if i := strings.IndexAny(p, "/?#"); i >= 0 {
		p = p[:i]
	}
	if host, _, err := net.SplitHostPort(p); err == nil {
		p = host // "localhost:3000", "[::1]:8080"
	}
	p = strings.Trim(p, "[]")
	h, err := NormalizeDomain(p)
	if err != nil {
		return "", err
	}
	if strings.Contains(h, "*") {
		return "", errors.New(`"*" may only stand alone or open a pattern such as *.example.com`)
	}
	if wild {
		return "*." + h, nil
	}
	return h, nil
}

// NormalizeHostnames normalises a list of patterns and drops duplicates.
func NormalizeHostnames(list []string) ([]string, error) {
	var out []string
	for _, p := range list {
		if strings.TrimSpace(p) == "" {
			continue
		}
		h, err := NormalizeHostname(p)
		if err != nil {
			return nil, fmt.Errorf("hostname %q is not valid: %v", p, err)
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// ValidateTimezone checks an IANA time zone name; "" stands for UTC.
func ValidateTimezone(tz string) (string, error) {
	tz = strings.TrimSpace(tz)
	if tz == "" {
		return "UTC", nil
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return "", fmt.Errorf("time zone %q is not an IANA time zone name such as Europe/Berlin or America/New_York", tz)
	}
	return tz, nil
}

// Normalize checks s and fills in its defaults: the domain and hostnames normalised (the
// domain and its subdomains when none are given), the time zone validated (UTC when empty).
func (s Site) Normalize() (Site, error) {
	d, err := NormalizeDomain(s.Domain)
	if err != nil {
		return Site{}, fmt.Errorf("site %q is not valid: %v", s.Domain, err)
	}
	s.Domain = d
	if s.Hostnames, err = NormalizeHostnames(s.Hostnames); err != nil {
		return Site{}, err
	}
	if len(s.Hostnames) == 0 {
		s.Hostnames = DefaultHostnames(d)
	}
	if s.Timezone, err = ValidateTimezone(s.Timezone); err != nil {
		return Site{}, err
	}
	if s.Currency, err = ValidateCurrency(s.Currency); err != nil {
		return Site{}, err
	}
	if s.Goals, err = normalizeGoals(s.Goals); err != nil {
		return Site{}, err
	}
	return s, nil
}

// Options configure a Directory or a Keyring.
type Options struct {
	// TTL is how long what was read from the store is trusted; 0 means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Directory is the site list. Add, Get, List and Remove read and write the store; Lookup
// answers from an in-memory copy of the whole list that is reloaded in the background once
// it is older than the TTL, so the collector's hot path never waits for the store.
type Directory struct {
	meta store.Meta
	opts Options

	snap       atomic.Pointer[snapshot]
	refreshing atomic.Bool
	lastTry    atomic.Int64 // unix nanoseconds of the last background reload attempt
	mu         sync.Mutex   // serialises reloads and local inserts into the snapshot
}

type snapshot struct {
	sites  map[string]*Site
	loaded time.Time
}

// NewDirectory returns the site list kept in meta.
func NewDirectory(meta store.Meta, opts Options) *Directory {
	return &Directory{meta: meta, opts: opts.withDefaults()}
}

func encodeSite(s Site) ([]byte, error) { return json.Marshal(s) }

func decodeSite(key string, b []byte) (Site, error) {
	var s Site
	if err := json.Unmarshal(b, &s); err != nil {
		return Site{}, fmt.Errorf("sites: stored site %q is malformed: %w", key, err)
	}
	if s.Domain == "" {
		s.Domain = key
	}
	return s, nil
}

// Add stores a new site (normalised, see Site.Normalize) and returns it. It fails with
// ErrExists when the domain is already a site.
func (d *Directory) Add(ctx context.Context, s Site) (Site, error) {
	s, err := s.Normalize()
	if err != nil {
		return Site{}, err
	}
	if s.Created.IsZero() {
		s.Created = d.opts.Now().UTC().Truncate(time.Second)
	}
	v, err := encodeSite(s)
	if err != nil {
		return Site{}, err
	}
	got, err := d.meta.PutMetaIfAbsent(ctx, SitesNamespace, s.Domain, v)
	if err != nil {
		return Site{}, fmt.Errorf("sites: add %s: %w", s.Domain, err)
	}
	if string(got) != string(v) {
		have, _ := decodeSite(s.Domain, got)
		return have, fmt.Errorf("%w: %s", ErrExists, s.Domain)
	}
	d.remember(s)
	return s, nil
}

// Put stores s (normalised), replacing the site of the same domain if there is one.
func (d *Directory) Put(ctx context.Context, s Site) (Site, error) {
	s, err := s.Normalize()
	if err != nil {
		return Site{}, err
	}
	if s.Created.IsZero() {
		s.Created = d.opts.Now().UTC().Truncate(time.Second)
	}
	v, err := encodeSite(s)
	if err != nil {
		return Site{}, err
	}
	if err := d.meta.PutMeta(ctx, SitesNamespace, s.Domain, v); err != nil {
		return Site{}, fmt.Errorf("sites: store %s: %w", s.Domain, err)
	}
	d.remember(s)
	return s, nil
}

// Get reads one site from the store.
func (d *Directory) Get(ctx context.Context, domain string) (Site, bool, error) {
	b, ok, err := d.meta.GetMeta(ctx, SitesNamespace, domain)
	if err != nil || !ok {
		return Site{}, false, err
	}
	s, err := decodeSite(domain, b)
	return s, err == nil, err
}

// List reads every site from the store, in domain order.
func (d *Directory) List(ctx context.Context) ([]Site, error) {
	var out []Site
	err := d.meta.ListMeta(ctx, SitesNamespace, func(key string, value []byte) error {
		s, err := decodeSite(key, value)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// Remove deletes a site from the store and reports whether it existed. Its numbers stay in
// the store; API keys naming it keep their scope.
func (d *Directory) Remove(ctx context.Context, domain string) (bool, error) {
	_, ok, err := d.Get(ctx, domain)
	if err != nil || !ok {
		return false, err
	}
	if err := d.meta.DeleteMeta(ctx, SitesNamespace, domain); err != nil {
		return false, fmt.Errorf("sites: remove %s: %w", domain, err)
	}
	d.mu.Lock()
	if cur := d.snap.Load(); cur != nil {
		next := &snapshot{sites: make(map[string]*Site, len(cur.sites)), loaded: cur.loaded}
		for k, v := range cur.sites {
			if k != domain {
				next.sites[k] = v
			}
		}
		d.snap.Store(next)
	}
	d.mu.Unlock()
	return true, nil
}

// Refresh reloads the in-memory copy of the site list from the store.
func (d *Directory) Refresh(ctx context.Context) error {
	list, err := d.List(ctx)
	if err != nil {
		return err
	}
	next := &snapshot{sites: make(map[string]*Site, len(list)), loaded: d.opts.Now()}
	for i := range list {
		next.sites[list[i].Domain] = &list[i]
	}
	d.mu.Lock()
	d.snap.Store(next)
	d.mu.Unlock()
	return nil
}

// Lookup finds a site in the in-memory copy of the list. The first call loads the list
// and returns the store's error if that fails; later calls never wait for the store: once
// the copy is older than the TTL, one background reload replaces it (a failed reload keeps
// the old copy and is retried after another TTL). The returned site must not be modified.
func (d *Directory) Lookup(ctx context.Context, domain string) (*Site, bool, error) {
	cur := d.snap.Load()
	if cur == nil {
		if err := d.Refresh(ctx); err != nil {
			return nil, false, err
		}
		cur = d.snap.Load()
	} else if now := d.opts.Now(); now.Sub(cur.loaded) >= d.opts.TTL && now.UnixNano()-d.lastTry.Load() >= int64(d.opts.TTL) {
		d.refreshInBackground(now)
	}
	s, ok := cur.sites[domain]
	return s, ok, nil
}

func (d *Directory) refreshInBackground(now time.Time) {
	if !d.refreshing.CompareAndSwap(false, true) {
		return
	}
	d.lastTry.Store(now.UnixNano())
	go func() {
		defer d.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Refresh(ctx)
	}()
}

// remember puts s into the in-memory copy at once, so the instance that wrote a site sees
// it without waiting for a reload.
func (d *Directory) remember(s Site) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.snap.Load()
	if cur == nil {
		return
	}
	next := &snapshot{sites: make(map[string]*Site, len(cur.sites)+1), loaded: cur.loaded}
	for k, v := range cur.sites {
		next.sites[k] = v
	}
	next.sites[s.Domain] = &s
	d.snap.Store(next)
}

// EnsureOpen returns the site of domain, creating it when the domain is not a site yet
// (the collector's open mode): the new site allows the domain, its subdomains and
// hostname, the page hostname of the event that created it. created reports whether this
// call created it. Another instance creating the same site at the same time is harmless:
// both end up with the one that was stored first.
func (d *Directory) EnsureOpen(ctx context.Context, domain, hostname string) (site *Site, created bool, err error) {
	if s, ok, err := d.Lookup(ctx, domain); err != nil || ok {
		return s, false, err
	}
	s := Site{Domain: domain, Hostnames: DefaultHostnames(domain), Auto: true, Created: d.opts.Now().UTC().Truncate(time.Second)}
	if hostname != "" && !s.AllowsHostname(hostname) {
		if h, err := NormalizeHostname(hostname); err == nil {
			s.Hostnames = append(s.Hostnames, h)
		}
	}
	s, err = s.Normalize()
	if err != nil {
		return nil, false, err
	}
	v, err := encodeSite(s)
	if err != nil {
		return nil, false, err
	}
	got, err := d.meta.PutMetaIfAbsent(ctx, SitesNamespace, s.Domain, v)
	if err != nil {
		return nil, false, fmt.Errorf("sites: create %s: %w", s.Domain, err)
	}
	created = string(got) == string(v)
	if !created {
		if s, err = decodeSite(domain, got); err != nil {
			return nil, false, err
		}
	}
	d.remember(s)
	return &s, created, nil
}
