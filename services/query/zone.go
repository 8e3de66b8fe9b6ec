package query

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
	_ "time/tzdata" // site time zones must resolve on hosts without a zoneinfo database
)

// zones caches the time zones loaded by IANA name.
var zones sync.Map // string → *time.Location

func loadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// localize resolves q in the time zone of its site (internal/sites; cached for
// sites.DefaultTTL), unless a caller has set q.Location. A site that is not in the site
// list counts in UTC.
func (s *Service) localize(ctx context.Context, q *Query) error {
	if q.Location != nil {
		return nil
	}
	loc, created := time.UTC, time.Time{}
	if s.siteDir != nil {
		sc, ok, err := s.siteDir.Lookup(ctx, q.SiteID)
		if err != nil {
			return fmt.Errorf("reading the site list for the time zone of %q: %w", q.SiteID, err)
		}
		if ok {
			created = sc.Created
			if sc.Timezone != "" && sc.Timezone != "UTC" {
				if loc, err = loadZone(sc.Timezone); err != nil {
					return &Error{Status: http.StatusInternalServerError, Msg: fmt.Sprintf(
						"site %q has the time zone %q, which this server does not know; set an IANA name such as Europe/Berlin with `glimpse sites add %s --update --timezone=...`",
						q.SiteID, truncate(sc.Timezone, 60), q.SiteID)}
				}
			}
		}
	}
	return q.SetLocation(loc, created)
}

// SetLocation resolves q's date range (and its comparison's) in loc; created is when the
// site was added, where date_range "all" starts (zero when unknown).
func (q *Query) SetLocation(loc *time.Location, created time.Time) error {
	if loc == nil {
		loc = time.UTC
	}
	if q.rawRange != nil {
		r, err := parseDateRangeIn(q.rawRange, q.now, loc, created)
		if err != nil {
			return err
		}
		q.Range = r
	}
	q.Location = loc
	return q.checkRanges()
}

// zone is q's time zone, UTC until one is set.
func (q *Query) zone() *time.Location {
	if q.Location == nil {
		return time.UTC
	}
	return q.Location
}

// checkRanges bounds the time buckets of the date range and resolves the comparison's.
func (q *Query) checkRanges() error {
	if td := q.timeDim(); td != "" {
		if n := countTimeLabelsIn(td, q.Range.From, q.Range.To, q.zone()); n > MaxTimeBuckets {
			return badRequest("%s over this date_range makes %d buckets, more than the %d allowed; use a coarser time dimension or a shorter date_range", td, n, MaxTimeBuckets)
		}
	}
	if q.Compare != nil {
		return q.resolveComparison()
	}
	return nil
}
