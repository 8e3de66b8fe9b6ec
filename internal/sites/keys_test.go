package sites

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestKeyCreateStoresOnlyTheHash(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	r := NewKeyring(meta, Options{})
	secret, k, err := r.Create(ctx, KeySpec{Sites: []string{"https://www.Example.com", "b.example", "example.com"}, Name: "grafana"})
	if err != nil {
		t.Fatal(err)
	}
	id, rest, ok := ParseKey(secret)
	if !ok || id != k.ID || !strings.HasPrefix(secret, SecretPrefix) || len(rest) != 43 {
		t.Fatalf("key %q (id %q) has the wrong form", secret, k.ID)
	}
	sum := sha256.Sum256([]byte(rest))
	if k.Hash != hex.EncodeToString(sum[:]) {
		t.Error("the stored hash is not the SHA-256 of the secret")
	}
	raw, found, err := meta.GetMeta(ctx, KeysNamespace, k.ID)
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if strings.Contains(string(raw), rest) {
		t.Error("the secret is stored in clear")
	}
	if strings.Join(k.Sites, ",") != "example.com,b.example" || k.Admin || k.Name != "grafana" {
		t.Errorf("key %+v", k)
	}
	other, _, _ := r.Create(ctx, KeySpec{Sites: []string{"example.com"}})
	if other == secret {
		t.Error("two keys are the same")
	}
}

func TestKeyVerifyAndScope(t *testing.T) {
	ctx := context.Background()
	r := NewKeyring(newMeta(t), Options{})
	siteKey, _, err := r.Create(ctx, KeySpec{Sites: []string{"a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	adminKey, _, err := r.Create(ctx, KeySpec{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.Verify(ctx, siteKey)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Covers("a.example") || k.Covers("b.example") || k.Covers("") {
		t.Errorf("site key scope: %+v", k)
	}
	a, err := r.Verify(ctx, " "+adminKey+" ")
	if err != nil || !a.Covers("a.example") || !a.Covers("anything.test") || a.Scope() != "admin (every site)" {
		t.Errorf("admin key: %+v, %v", a, err)
	}
	id, secret, _ := ParseKey(siteKey)
	wrong := []byte(secret)
	wrong[0] ^= 1
	for _, bad := range []string{
		"",
		"Bearer " + siteKey,
		"glk_",
		SecretPrefix + id,                       // no secret
		SecretPrefix + id + "_" + string(wrong), // right id, wrong secret of the same length
		SecretPrefix + id + "_" + secret + "x",  // longer secret
		SecretPrefix + "000000000000_" + secret, // unknown id
		SecretPrefix + "zzzzzzzzzzzz_" + secret, // id is not hex
		SecretPrefix + id + "_" + strings.Repeat("a", 200), // over-long
	} {
		if _, err := r.Verify(ctx, bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Verify(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, _, err := r.Create(ctx, KeySpec{}); err == nil {
		t.Error("a key without sites or admin was created")
	}
	if _, _, err := r.Create(ctx, KeySpec{Sites: []string{"bad site"}}); err == nil {
		t.Error("a key for an invalid site was created")
	}
	if has, err := r.HasAdmin(ctx); !has || err != nil {
		t.Errorf("HasAdmin = %v, %v", has, err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 {
		t.Errorf("List = %+v, %v", list, err)
	}
}

// TestKeyCacheAndRevoke: verified keys are cached for the TTL; a key revoked through
// another connection stops working once that has passed, at once on the revoking instance.
func TestKeyCacheAndRevoke(t *testing.T) {
	ctx := context.Background()
	meta := newMeta(t)
	clk := newClock()
	query := NewKeyring(meta, Options{TTL: 10 * time.Second, Now: clk.Now})
	cli := NewKeyring(meta, Options{Now: clk.Now})
	key, k, err := cli.Create(ctx, KeySpec{Sites: []string{"a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := query.Verify(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ok, err := cli.Revoke(ctx, k.ID); !ok || err != nil {
		t.Fatalf("Revoke = %v, %v", ok, err)
	}
	if _, err := query.Verify(ctx, key); err != nil {
		t.Errorf("within the TTL the cached key still works: %v", err)
	}
	clk.Add(10 * time.Second)
	if _, err := query.Verify(ctx, key); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("after the TTL a revoked key = %v, want ErrInvalidKey", err)
	}
	if _, err := cli.Verify(ctx, key); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("on the revoking instance = %v, want ErrInvalidKey", err)
	}
	if ok, err := cli.Revoke(ctx, k.ID); ok || err != nil {
		t.Errorf("second Revoke = %v, %v", ok, err)
	}
	// Revoke takes the whole key too; an unknown id negatively cached becomes valid on
	// creation without waiting (Create forgets the id).
	key2, _, _ := cli.Create(ctx, KeySpec{Admin: true})
	if ok, err := cli.Revoke(ctx, key2); !ok || err != nil {
		t.Errorf("Revoke by key = %v, %v", ok, err)
	}
}

func TestKeyStoreErrorsAreNotInvalidKeys(t *testing.T) {
	r := NewKeyring(failing{}, Options{})
	_, err := r.Verify(context.Background(), SecretPrefix+"0123456789ab_"+strings.Repeat("A", 43))
	if err == nil || errors.Is(err, ErrInvalidKey) || !errors.Is(err, errDown) {
		t.Errorf("Verify on a failing store = %v, want the store's error", err)
	}
	if _, _, err := r.Create(context.Background(), KeySpec{Admin: true}); !errors.Is(err, errDown) {
		t.Errorf("Create on a failing store = %v", err)
	}
}
