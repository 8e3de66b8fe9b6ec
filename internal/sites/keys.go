package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// SecretPrefix starts every API key, so a leaked key is recognisable (secret scanners,
// logs): "glk_" + key id + "_" + 43 characters of base64url (32 random bytes).
const SecretPrefix = "glk_"

// ErrInvalidKey is returned by Keyring.Verify for a key that is malformed, unknown or revoked.
var ErrInvalidKey = errors.New("the API key is not valid")

// Key is one API key as stored: its secret is kept only as a SHA-256 hash.
type Key struct {
	ID string `json:"-"`
	// Hash is the hex SHA-256 of the secret part of the key.
	Hash string `json:"hash"`
	// Sites are the sites the key may read; an admin key reads every site.
	Sites   []string  `json:"sites,omitempty"`
	Admin   bool      `json:"admin,omitempty"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// Covers reports whether k may read the numbers of site.
func (k *Key) Covers(site string) bool {
	return k.Admin || slices.Contains(k.Sites, site)
}

// Scope describes what a key reads, for listings: "admin (every site)" or the sites.
func (k *Key) Scope() string {
	if k.Admin {
		return "admin (every site)"
	}
	return strings.Join(k.Sites, ",")
}

// KeySpec is what a new key may read.
type KeySpec struct {
	Sites []string // site domains; normalised with NormalizeDomain
	Admin bool     // every site
	Name  string   // a note for listings ("grafana", "alice's laptop")
}

// Keyring holds the API keys. Verify caches what it read from the store for the TTL, so a
// revoked key stops working within that bound.
type Keyring struct {
	meta store.Meta
	opts Options

	cache recordCache[Key] // by key id
}

// NewKeyring returns the keys kept in meta.
func NewKeyring(meta store.Meta, opts Options) *Keyring {
	return &Keyring{meta: meta, opts: opts.withDefaults()}
}

// ParseKey splits an API key into its id and secret part.
func ParseKey(key string) (id, secret string, ok bool) {
	id, secret, ok = splitSecret(key, SecretPrefix)
	if !ok || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// Create makes a new key, stores its hash and returns the key itself: the only time it is
// ever seen.
func (r *Keyring) Create(ctx context.Context, spec KeySpec) (secretKey string, k Key, err error) {
	if !spec.Admin {
		for _, s := range spec.Sites {
			if strings.TrimSpace(s) == "" {
				continue
			}
			d, err := NormalizeDomain(s)
			if err != nil {
				return "", Key{}, fmt.Errorf("site %q is not valid: %v", s, err)
			}
			if !slices.Contains(k.Sites, d) {
				k.Sites = append(k.Sites, d)
			}
		}
		if len(k.Sites) == 0 {
			return "", Key{}, errors.New("a key needs at least one site (--site=example.com) or --admin")
		}
	}
	k.Admin, k.Name = spec.Admin, strings.TrimSpace(spec.Name)
	k.Created = r.opts.Now().UTC().Truncate(time.Second)
	id, secret, err := storeNewSecret(ctx, r.meta, KeysNamespace, func(id string) string { return id },
		func(id, hash string) ([]byte, error) {
			k.ID, k.Hash = id, hash
			return json.Marshal(k)
		})
	if errors.Is(err, errNoFreeID) {
		return "", Key{}, errors.New("keys: could not find a free key id")
	}
	if err != nil {
		return "", Key{}, fmt.Errorf("keys: store the new key: %w", err)
	}
	r.cache.forget(id)
	return SecretPrefix + id + "_" + secret, k, nil
}

func decodeKey(id string, b []byte) (Key, error) {
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return Key{}, fmt.Errorf("keys: stored key %q is malformed: %w", id, err)
	}
	k.ID = id
	return k, nil
}

// Get reads one key from the store.
func (r *Keyring) Get(ctx context.Context, id string) (Key, bool, error) {
	b, ok, err := r.meta.GetMeta(ctx, KeysNamespace, id)
	if err != nil || !ok {
		return Key{}, false, err
	}
	k, err := decodeKey(id, b)
	return k, err == nil, err
}

// List reads every key from the store, in id order.
func (r *Keyring) List(ctx context.Context) ([]Key, error) {
	var out []Key
	err := r.meta.ListMeta(ctx, KeysNamespace, func(id string, value []byte) error {
		k, err := decodeKey(id, value)
		if err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// HasAdmin reports whether an admin key exists.
func (r *Keyring) HasAdmin(ctx context.Context) (bool, error) {
	keys, err := r.List(ctx)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if k.Admin {
			return true, nil
		}
	}
	return false, nil
}

// Revoke deletes a key (given by id, or as the whole key) and reports whether it existed.
// Instances that verified it recently keep accepting it for at most the TTL.
func (r *Keyring) Revoke(ctx context.Context, idOrKey string) (bool, error) {
	id := strings.TrimSpace(idOrKey)
	if kid, _, ok := ParseKey(id); ok {
		id = kid
	}
	if id == "" {
		return false, nil
	}
	_, ok, err := r.Get(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	if err := r.meta.DeleteMeta(ctx, KeysNamespace, id); err != nil {
		return false, fmt.Errorf("keys: revoke %s: %w", id, err)
	}
	r.cache.forget(id)
	return true, nil
}

// Verify returns the key a client sent, or an error wrapping ErrInvalidKey when it is
// malformed, unknown or revoked; other errors mean the store could not be read. The secret
// is compared in constant time.
func (r *Keyring) Verify(ctx context.Context, key string) (*Key, error) {
	id, secret, ok := ParseKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: it does not have the form %s<id>_<secret>", ErrInvalidKey, SecretPrefix)
	}
	k, err := r.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	var stored string
	if k != nil {
		stored = k.Hash
	}
	if !secretMatches(secret, stored, k != nil) {
		return nil, ErrInvalidKey
	}
	return k, nil
}

// lookup returns the key of id (nil when there is none), from the cache when it is fresh.
func (r *Keyring) lookup(ctx context.Context, id string) (*Key, error) {
	return r.cache.get(id, r.opts.Now(), r.opts.TTL, func() (*Key, error) {
		k, found, err := r.Get(ctx, id)
		if err != nil || !found {
			return nil, err
		}
		return &k, nil
	})
}
