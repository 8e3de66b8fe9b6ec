package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// MPSecretsNamespace is the meta namespace of the Measurement Protocol API secrets:
// key = "<site>/<secret id>", value = JSON of MPSecret (the SHA-256 of the secret, never the
// secret). A site id never contains "/", so the prefix "<site>/" selects one site's secrets.
const MPSecretsNamespace = "mp-secrets"

// MPSecretPrefix starts every Measurement Protocol API secret: "gmp_" + secret id + "_" +
// 43 characters of base64url (32 random bytes). Senders pass it as ?api_secret=.
const MPSecretPrefix = "gmp_"

// MaxMPSecretLen bounds an api_secret as sent; longer values are rejected before any lookup.
const MaxMPSecretLen = 128

// MaxMPSecretNameLen bounds the note stored with a secret.
const MaxMPSecretNameLen = 200

// ErrInvalidMPSecret is returned by MPSecrets.Verify for a secret that is malformed,
// unknown, revoked or made for another site.
var ErrInvalidMPSecret = errors.New("the api_secret is not valid for this site")

// MPSecret is one Measurement Protocol API secret of a site, as stored.
type MPSecret struct {
	ID   string `json:"-"`
	Site string `json:"-"`
	// Hash is the hex SHA-256 of the secret part.
	Hash    string    `json:"hash"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// MPSecrets holds the Measurement Protocol API secrets of every site. Verify caches what it
// read for the TTL, so a revoked secret stops working within that bound.
type MPSecrets struct {
	meta store.Meta
	opts Options

	cache recordCache[MPSecret] // by meta key
}

// NewMPSecrets returns the secrets kept in meta.
func NewMPSecrets(meta store.Meta, opts Options) *MPSecrets {
	return &MPSecrets{meta: meta, opts: opts.withDefaults()}
}

func mpKey(site, id string) string { return site + "/" + id }

// ParseMPSecret splits a secret into its id and secret part.
func ParseMPSecret(secret string) (id, rest string, ok bool) {
	if len(secret) > MaxMPSecretLen {
		return "", "", false
	}
	return splitSecret(secret, MPSecretPrefix)
}

// Create makes a new secret for site (normalised with NormalizeDomain), stores its hash and
// returns the secret itself: the only time it is ever seen.
func (m *MPSecrets) Create(ctx context.Context, site, name string) (string, MPSecret, error) {
	domain, err := NormalizeDomain(site)
	if err != nil {
		return "", MPSecret{}, fmt.Errorf("site %q is not valid: %v", site, err)
	}
	name = strings.TrimSpace(name)
	if len(name) > MaxMPSecretNameLen {
		return "", MPSecret{}, fmt.Errorf("the name is %d bytes; the limit is %d", len(name), MaxMPSecretNameLen)
	}
	s := MPSecret{Site: domain, Name: name, Created: m.opts.Now().UTC().Truncate(time.Second)}
	id, secret, err := storeNewSecret(ctx, m.meta, MPSecretsNamespace, func(id string) string { return mpKey(domain, id) },
		func(id, hash string) ([]byte, error) {
			s.ID, s.Hash = id, hash
			return json.Marshal(s)
		})
	if errors.Is(err, errNoFreeID) {
		return "", MPSecret{}, errors.New("mp secrets: could not find a free secret id")
	}
	if err != nil {
		return "", MPSecret{}, fmt.Errorf("mp secrets: store the new secret: %w", err)
	}
	m.cache.forget(mpKey(domain, id))
	return MPSecretPrefix + id + "_" + secret, s, nil
}

func decodeMPSecret(key string, b []byte) (MPSecret, error) {
	var s MPSecret
	if err := json.Unmarshal(b, &s); err != nil {
		return MPSecret{}, fmt.Errorf("mp secrets: stored secret %q is malformed: %w", key, err)
	}
	i := strings.LastIndexByte(key, '/')
	s.Site, s.ID = key[:max(i, 0)], key[i+1:]
	return s, nil
}

// List reads the secrets of site from the store, in id order.
func (m *MPSecrets) List(ctx context.Context, site string) ([]MPSecret, error) {
	domain, err := NormalizeDomain(site)
	if err != nil {
		return nil, fmt.Errorf("site %q is not valid: %v", site, err)
	}
	prefix := domain + "/"
	var out []MPSecret
	err = m.meta.ListMeta(ctx, MPSecretsNamespace, func(key string, value []byte) error {
		if !strings.HasPrefix(key, prefix) || strings.Contains(key[len(prefix):], "/") {
			return nil
		}
		s, err := decodeMPSecret(key, value)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// Revoke deletes a secret of site, given by id or as the whole secret, and reports whether
// it existed. Collectors that verified it recently accept it for at most the TTL.
func (m *MPSecrets) Revoke(ctx context.Context, site, idOrSecret string) (bool, error) {
	domain, err := NormalizeDomain(site)
	if err != nil {
		return false, fmt.Errorf("site %q is not valid: %v", site, err)
	}
	id := strings.TrimSpace(idOrSecret)
	if sid, _, ok := ParseMPSecret(id); ok {
		id = sid
	}
	if id == "" || strings.Contains(id, "/") {
		return false, nil
	}
	key := mpKey(domain, id)
	_, found, err := m.meta.GetMeta(ctx, MPSecretsNamespace, key)
	if err != nil || !found {
		return false, err
	}
	if err := m.meta.DeleteMeta(ctx, MPSecretsNamespace, key); err != nil {
		return false, fmt.Errorf("mp secrets: revoke %s of %s: %w", id, domain, err)
	}
	m.cache.forget(key)
	return true, nil
}

// Verify returns the secret of site that secret names, or an error wrapping
// ErrInvalidMPSecret when it is malformed, unknown, revoked or another site's; other errors
// mean the store could not be read. site must be normalised. The secret is compared in
// constant time.
func (m *MPSecrets) Verify(ctx context.Context, site, secret string) (*MPSecret, error) {
	id, rest, ok := ParseMPSecret(secret)
	if !ok {
		return nil, fmt.Errorf("%w: it does not have the form %s<id>_<secret>", ErrInvalidMPSecret, MPSecretPrefix)
	}
	s, err := m.lookup(ctx, mpKey(site, id))
	if err != nil {
		return nil, err
	}
	var stored string
	if s != nil {
		stored = s.Hash
	}
	if !secretMatches(rest, stored, s != nil) {
		return nil, ErrInvalidMPSecret
	}
	return s, nil
}

// lookup returns the secret stored under key (nil when there is none), from the cache when
// it is fresh.
func (m *MPSecrets) lookup(ctx context.Context, key string) (*MPSecret, error) {
	return m.cache.get(key, m.opts.Now(), m.opts.TTL, func() (*MPSecret, error) {
		v, found, err := m.meta.GetMeta(ctx, MPSecretsNamespace, key)
		if err != nil || !found {
			return nil, err
		}
		s, err := decodeMPSecret(key, v)
		if err != nil {
			return nil, err
		}
		return &s, nil
	})
}
