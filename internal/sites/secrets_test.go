package sites

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// taken is a meta table in which every key already holds another record.
type taken struct {
	store.Meta
	puts int
}

func (m *taken) PutMetaIfAbsent(context.Context, string, string, []byte) ([]byte, error) {
	m.puts++
	return []byte(`{"hash":"someone else's"}`), nil
}

func TestStoreNewSecretGivesUpWhenEveryIDIsTaken(t *testing.T) {
	meta := &taken{}
	_, _, err := storeNewSecret(context.Background(), meta, KeysNamespace, func(id string) string { return id },
		func(id, hash string) ([]byte, error) { return []byte(id + hash), nil })
	if !errors.Is(err, errNoFreeID) || meta.puts != newSecretTries {
		t.Fatalf("err %v after %d tries; want errNoFreeID after %d", err, meta.puts, newSecretTries)
	}
	if _, _, err := NewKeyring(meta, Options{}).Create(context.Background(), KeySpec{Admin: true}); err == nil || err.Error() != "keys: could not find a free key id" {
		t.Errorf("Keyring.Create: %v", err)
	}
	if _, _, err := NewMPSecrets(meta, Options{}).Create(context.Background(), "example.com", ""); err == nil || err.Error() != "mp secrets: could not find a free secret id" {
		t.Errorf("MPSecrets.Create: %v", err)
	}
}

func TestSecretMatches(t *testing.T) {
	h := hashSecret("s3cret")
	if !secretMatches("s3cret", h, true) {
		t.Error("the right secret was refused")
	}
	if secretMatches("other", h, true) {
		t.Error("a wrong secret was accepted")
	}
	// No record: nothing matches, not even a secret whose hash is the all-zero placeholder.
	if secretMatches("s3cret", h, false) || secretMatches("s3cret", "", false) {
		t.Error("a secret without a stored record was accepted")
	}
}

func TestRecordCache(t *testing.T) {
	var c recordCache[string]
	loads := 0
	v := "first"
	load := func() (*string, error) { loads++; s := v; return &s, nil }
	now := time.Unix(1000, 0)
	for range 2 {
		got, err := c.get("k", now, time.Minute, load)
		if err != nil || *got != "first" {
			t.Fatalf("get: %v %v", got, err)
		}
	}
	if loads != 1 {
		t.Fatalf("%d loads within the TTL; want 1", loads)
	}
	v = "second"
	if got, _ := c.get("k", now.Add(time.Minute), time.Minute, load); *got != "second" || loads != 2 {
		t.Errorf("an expired entry was not reloaded: %s after %d loads", *got, loads)
	}
	c.forget("k")
	if _, _ = c.get("k", now.Add(time.Minute), time.Minute, load); loads != 3 {
		t.Errorf("a forgotten entry was not reloaded (%d loads)", loads)
	}
	boom := errors.New("store down")
	if _, err := c.get("e", now, time.Minute, func() (*string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("load error: %v", err)
	}
	if got, err := c.get("e", now, time.Minute, load); err != nil || got == nil {
		t.Errorf("an error was cached: %v %v", got, err)
	}
}
