package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// ErrNoSite is returned by DeleteSite for a domain that is not a site, unless Force is set.
var ErrNoSite = errors.New("there is no such site")

// DeleteOptions tune DeleteSite.
type DeleteOptions struct {
	// Force deletes the data even when the domain is not in the site list: it finishes an
	// interrupted deletion, removes what a backlog of events wrote after one, and removes
	// the numbers of a site taken off the list with Directory.Remove.
	Force bool
}

// DeleteResult tells what DeleteSite removed.
type DeleteResult struct {
	Domain string
	// HadRecord reports whether the domain was in the site list.
	HadRecord bool
	// KeysRevoked are the ids of the API keys that could read only this site; they are
	// deleted. KeysNarrowed are the ids of keys that could read other sites too; this site
	// is taken out of their scope. Admin keys are left alone.
	KeysRevoked, KeysNarrowed []string
	// MPSecrets is the number of Measurement Protocol API secrets of the site deleted.
	MPSecrets int
	// Data counts the rollup rows and stored events removed.
	Data store.DeleteReport
}

// DeleteSite removes a site and everything stored for it, in this order:
//
//  1. its record in the site list, so collectors refuse its events from then on (within
//     DefaultTTL, the time they trust their copy of the list);
//  2. its API-key scope and its Measurement Protocol secrets: a key or secret left behind
//     would read or feed a site created later under the same domain, possibly by someone
//     else;
//  3. its rollup rows of every granularity and its stored events (store.SiteDeleter).
//
// The visitor-id salts are not per site (one salt per UTC day serves every site, and
// collectors delete each within about three days); nothing of them is deleted. Events of the site still in the bus
// when DeleteSite runs are processed afterwards and write rows again: see docs/data.md.
//
// A domain not in the site list fails with ErrNoSite unless opts.Force is set. Every step
// can be repeated, so a failed run is finished by running DeleteSite again with Force.
func DeleteSite(ctx context.Context, st store.Store, domain string, opts DeleteOptions) (DeleteResult, error) {
	res := DeleteResult{Domain: domain}
	deleter, ok := st.(store.SiteDeleter)
	if !ok {
		return res, fmt.Errorf("sites: the %T store cannot delete a site's data", st)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return res, fmt.Errorf("site %q is not valid: %v", domain, err)
	}
	res.Domain = d

	_, found, err := NewDirectory(st, Options{}).Get(ctx, d)
	if err != nil {
		return res, fmt.Errorf("sites: read site %s: %w", d, err)
	}
	if !found && !opts.Force {
		return res, fmt.Errorf("%w: %s", ErrNoSite, d)
	}
	res.HadRecord = found
	if found {
		if err := st.DeleteMeta(ctx, SitesNamespace, d); err != nil {
			return res, fmt.Errorf("sites: remove site %s: %w", d, err)
		}
	}
	if res.KeysRevoked, res.KeysNarrowed, err = dropKeyScope(ctx, st, d); err != nil {
		return res, err
	}
	if res.MPSecrets, err = deleteMPSecrets(ctx, st, d); err != nil {
		return res, err
	}
	if res.Data, err = deleter.DeleteSite(ctx, d); err != nil {
		return res, fmt.Errorf("sites: delete the data of %s: %w", d, err)
	}
	return res, nil
}

// dropKeyScope deletes the keys that read only site and takes site out of the others.
func dropKeyScope(ctx context.Context, meta store.Meta, site string) (revoked, narrowed []string, err error) {
	keys, err := NewKeyring(meta, Options{}).List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("sites: read keys: %w", err)
	}
	for _, k := range keys {
		if k.Admin || !slices.Contains(k.Sites, site) {
			continue
		}
		k.Sites = slices.DeleteFunc(k.Sites, func(s string) bool { return s == site })
		if len(k.Sites) == 0 {
			if err := meta.DeleteMeta(ctx, KeysNamespace, k.ID); err != nil {
				return revoked, narrowed, fmt.Errorf("sites: revoke key %s: %w", k.ID, err)
			}
			revoked = append(revoked, k.ID)
			continue
		}
		v, err := json.Marshal(k)
		if err != nil {
			return revoked, narrowed, err
		}
		if err := meta.PutMeta(ctx, KeysNamespace, k.ID, v); err != nil {
			return revoked, narrowed, fmt.Errorf("sites: narrow key %s: %w", k.ID, err)
		}
		narrowed = append(narrowed, k.ID)
	}
	return revoked, narrowed, nil
}

// deleteMPSecrets deletes the Measurement Protocol secrets of site ("<site>/<id>" keys).
func deleteMPSecrets(ctx context.Context, meta store.Meta, site string) (int, error) {
	var ids []string
	err := meta.ListMeta(ctx, MPSecretsNamespace, func(key string, _ []byte) error {
		if strings.HasPrefix(key, site+"/") {
			ids = append(ids, key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sites: read Measurement Protocol secrets: %w", err)
	}
	for i, key := range ids {
		if err := meta.DeleteMeta(ctx, MPSecretsNamespace, key); err != nil {
			return i, fmt.Errorf("sites: delete Measurement Protocol secret %s: %w", key, err)
		}
	}
	return len(ids), nil
}
