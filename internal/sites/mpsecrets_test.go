package sites

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMPSecretLifecycle(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m := NewMPSecrets(meta, Options{Now: clock, TTL: time.Minute})

	secret, s, err := m.Create(ctx, "https://www.Example.com/", "backend")
	if err != nil {
		t.Fatal(err)
	}
	id, rest, ok := ParseMPSecret(secret)
	if !ok || id != s.ID || !strings.HasPrefix(secret, MPSecretPrefix) || len(rest) != 43 {
		t.Fatalf("secret %q (id %q) has the wrong form", secret, s.ID)
	}
	if s.Site != "example.com" || s.Name != "backend" || !s.Created.Equal(now) {
		t.Errorf("secret %+v", s)
	}
	raw, found, err := meta.GetMeta(ctx, MPSecretsNamespace, "example.com/"+s.ID)
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if strings.Contains(string(raw), rest) {
		t.Error("the secret is stored in clear")
	}

	if got, err := m.Verify(ctx, "example.com", secret); err != nil || got.ID != s.ID {
		t.Fatalf("Verify of a fresh secret = %+v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"other site":   "other.example",
		"wrong secret": "example.com",
	} {
		sent := secret
		if name == "wrong secret" {
			sent = secret[:len(secret)-2] + "xx"
		}
		if _, err := m.Verify(ctx, bad, sent); !errors.Is(err, ErrInvalidMPSecret) {
			t.Errorf("%s: Verify = %v, want ErrInvalidMPSecret", name, err)
		}
	}
	if _, err := m.Verify(ctx, "example.com", "glk_nothing"); !errors.Is(err, ErrInvalidMPSecret) {
		t.Errorf("malformed secret: %v", err)
	}

	// A second secret of the same site and one of another site: List keeps them apart.
	if _, _, err := m.Create(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, "shop.example.com", ""); err != nil {
		t.Fatal(err)
	}
	list, err := m.List(ctx, "example.com")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v; want the 2 secrets of example.com", list, err)
	}
	for _, l := range list {
		if l.Site != "example.com" || len(l.ID) != 2*idBytes {
			t.Errorf("listed %+v", l)
		}
	}

	// Revoke by the whole secret; the cached verification lasts at most the TTL.
	ok, err = m.Revoke(ctx, "example.com", secret)
	if err != nil || !ok {
		t.Fatalf("Revoke = %v, %v", ok, err)
	}
	if _, err := m.Verify(ctx, "example.com", secret); !errors.Is(err, ErrInvalidMPSecret) {
		t.Errorf("a revoked secret still verifies on the instance that revoked it: %v", err)
	}
	if ok, err := m.Revoke(ctx, "example.com", s.ID); err != nil || ok {
		t.Errorf("second Revoke = %v, %v; want false", ok, err)
	}
	if _, _, err := m.Create(ctx, "bad site", ""); err == nil {
		t.Error("a secret for an invalid site id was created")
	}
}

func TestMPSecretRevokeReachesOtherInstancesWithinTTL(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	admin := NewMPSecrets(meta, Options{Now: clock})
	collector := NewMPSecrets(meta, Options{Now: clock, TTL: 5 * time.Second})
	secret, _, err := admin.Create(ctx, "example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collector.Verify(ctx, "example.com", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Revoke(ctx, "example.com", secret); err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Second)
	if _, err := collector.Verify(ctx, "example.com", secret); !errors.Is(err, ErrInvalidMPSecret) {
		t.Errorf("revoked secret still accepted after the TTL: %v", err)
	}
}
