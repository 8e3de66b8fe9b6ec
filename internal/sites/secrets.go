package sites

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// API keys and Measurement Protocol secrets share one shape: <prefix><id>_<secret>, where
// the id is idBytes of random hex that names the stored record and the secret is
// secretBytes of random base64url of which only the SHA-256 is stored.

const (
	idBytes     = 6  // 12 hex characters
	secretBytes = 32 // 43 base64url characters
	// maxCached bounds each verification cache; it is emptied when full.
	maxCached = 10000
	// newSecretTries is how many fresh ids are drawn before giving up on finding a free one
	// (with 48 random bits, a second collision in a row means something else is wrong).
	newSecretTries = 3
)

// errNoFreeID is returned by storeNewSecret when every id it drew was taken.
var errNoFreeID = errors.New("every id drawn was taken")

// noHash is compared against when no record exists, so an unknown id costs the same
// constant-time comparison as a known one.
var noHash = []byte(strings.Repeat("0", 2*sha256.Size))

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// splitSecret splits "<prefix><id>_<secret>" into id and secret, checking the id's form.
// Callers add their own length bounds.
func splitSecret(s, prefix string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), prefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 2*idBytes || secret == "" {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// secretMatches reports whether secret hashes to storedHash, in constant time; found false
// (no record) never matches but takes the same time.
func secretMatches(secret, storedHash string, found bool) bool {
	want := noHash
	if found {
		want = []byte(storedHash)
	}
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), want) == 1 && found
}

// storeNewSecret draws a random id and secret and stores the record that encode makes of
// the id and the secret's hash under key(id) in namespace, unless that key is taken, in
// which case it draws again. It returns the id and the secret; errNoFreeID when every try
// found its key taken.
func storeNewSecret(ctx context.Context, meta store.Meta, namespace string, key func(id string) string,
	encode func(id, hash string) ([]byte, error)) (id, secret string, err error) {
	for range newSecretTries {
		idb := make([]byte, idBytes)
		sb := make([]byte, secretBytes)
		_, _ = rand.Read(idb) // crypto/rand.Read never fails
		_, _ = rand.Read(sb)
		id = hex.EncodeToString(idb)
		secret = base64.RawURLEncoding.EncodeToString(sb)
		v, err := encode(id, hashSecret(secret))
		if err != nil {
			return "", "", err
		}
		got, err := meta.PutMetaIfAbsent(ctx, namespace, key(id), v)
		if err != nil {
			return "", "", err
		}
		if string(got) == string(v) {
			return id, secret, nil
		}
	}
	return "", "", errNoFreeID
}

// recordCache remembers, per meta key, what a lookup found (nil: no such record) until the
// entry is ttl old, so a revoked record stops being accepted within that bound.
type recordCache[T any] struct {
	mu      sync.Mutex
	entries map[string]cachedRecord[T]
}

type cachedRecord[T any] struct {
	record  *T // nil: no such record
	expires time.Time
}

// get returns the record of key from the cache when it is fresh at now, and otherwise
// calls load and caches its answer for ttl. Errors are not cached.
func (c *recordCache[T]) get(key string, now time.Time, ttl time.Duration, load func() (*T, error)) (*T, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.record, nil
	}
	record, err := load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxCached {
		c.entries = map[string]cachedRecord[T]{}
	}
	c.entries[key] = cachedRecord[T]{record: record, expires: now.Add(ttl)}
	c.mu.Unlock()
	return record, nil
}

// forget drops key, so the next lookup reads the store.
func (c *recordCache[T]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}
