package query

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/sketch"
)

// Goals (see docs/api.md, "Goals"): a site's goals are custom events by name and page
// patterns (internal/sites). A query that breaks down or filters by event:goal is answered
// by one sub-query per goal the filters select, each an ordinary query with the goal turned
// into a filter (event:name is the event; event:page matches the pattern), so rollups
// answer it whenever they would answer that filter. When some goal needs the scan, one scan
// counts all of them (scanGoals) rather than one scan each. conversion_rate divides by the
// visitors of one more sub-query: the same query without the goal.

// goalMetrics are the metrics a query over goals may ask for: goals are completed by
// visitors through events, so there are no visits, bounces or durations to report.
var goalMetrics = []string{MetricVisitors, MetricEvents, MetricConversionRate, MetricTotalRevenue, MetricAverageRevenue}

// knownDimension reports whether the API accepts dimension d: those of internal/dims, and
// event:goal.
func knownDimension(d string) bool { return d == dims.Goal || dims.Known(d) }

// isGoalFilter reports whether f compares event:goal.
func isGoalFilter(f *Filter) bool { return slices.Contains(f.dimensions(nil), dims.Goal) }

// negates reports whether f holds for values it does not name (is_not, not, ...).
func negates(f *Filter) bool {
	switch f.Op {
	case OpIsNot, OpContainsNot, OpMatchesNot, OpNot:
		return true
	}
	for i := range f.Operands {
		if negates(&f.Operands[i]) {
			return true
		}
	}
	return false
}

// usesGoals reports whether q breaks down or filters by event:goal.
func (q *Query) usesGoals() bool {
	if contains(q.Dimensions, dims.Goal) {
		return true
	}
	return slices.ContainsFunc(q.Filters, func(f Filter) bool { return isGoalFilter(&f) })
}

// checkGoalsAndRevenue rejects the combinations of goal metrics, dimensions and filters
// that have no meaning.
func (q *Query) checkGoalsAndRevenue() error {
	goals := q.usesGoals()
	if contains(q.Metrics, MetricConversionRate) && !goals {
		return badRequest(`conversion_rate is the share of visitors who completed a goal: add "event:goal" to dimensions, or filter on a goal such as ["is", "event:goal", ["Signup"]]`)
	}
	if !goals {
		return nil
	}
	for _, m := range q.Metrics {
		if !contains(goalMetrics, m) {
			return badRequest("%s cannot be reported for goals; with event:goal the metrics are %s", m, strings.Join(goalMetrics, ", "))
		}
	}
	for i := range q.Filters {
		f := &q.Filters[i]
		if !isGoalFilter(f) {
			continue
		}
		if len(f.dimensions(nil)) != 1 {
			return badRequest("filters[%d]: a filter on event:goal cannot compare other dimensions; give event:goal a filter of its own", i)
		}
		if negates(f) && !contains(q.Dimensions, dims.Goal) {
			return badRequest(`filters[%d]: without event:goal among the dimensions a goal filter selects the goals to count, with "is", "contains" or "matches"; to leave goals out of a breakdown, add "event:goal" to dimensions`, i)
		}
	}
	return nil
}

// prepareSite reads what q needs of its site: the goals when it uses event:goal, the
// reporting currency when it asks for revenue.
func (s *Service) prepareSite(ctx context.Context, q *Query) error {
	goals, rev := q.usesGoals(), needsRevenue(q.Metrics)
	if !goals && !rev {
		return nil
	}
	site, ok, err := s.siteDir.Lookup(ctx, q.SiteID)
	if err != nil {
		return fmt.Errorf("reading site %s: %w", q.SiteID, err)
	}
	var currency string
	if ok {
		q.goals, currency = site.Goals, site.Currency
	}
	if rev {
		q.revenue = &revenueView{currency: currency, rates: s.fx}
	}
	if !goals {
		return nil
	}
	if len(q.goals) == 0 {
		return badRequest("site %s has no goals; add one with glimpse sites goals add %s --event=Signup (or --page=/pricing)", q.SiteID, q.SiteID)
	}
	for i := range q.Filters {
		if isGoalFilter(&q.Filters[i]) {
			if err := checkGoalNames(&q.Filters[i], q.goals, q.SiteID); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkGoalNames rejects an "is" comparison that names a goal the site does not have: a
// typo would otherwise answer zero.
func checkGoalNames(f *Filter, goals []sites.Goal, site string) error {
	for i := range f.Operands {
		if err := checkGoalNames(&f.Operands[i], goals, site); err != nil {
			return err
		}
	}
	if f.Op != OpIs {
		return nil
	}
	for _, v := range f.Values {
		known := slices.ContainsFunc(goals, func(g sites.Goal) bool {
			return g.Name == v || f.IgnoreCase && strings.EqualFold(g.Name, v)
		})
		if !known {
			names := make([]string, len(goals))
			for i, g := range goals {
				names[i] = fmt.Sprintf("%q", g.Name)
			}
			return badRequest("site %s has no goal named %q; its goals are %s (see glimpse sites goals list %s)", site, v, strings.Join(names, ", "), site)
		}
	}
	return nil
}

// goalFilter is the ordinary filter that keeps the events completing g: its custom events,
// or the events on pages its pattern matches.
func goalFilter(g sites.Goal) (Filter, error) {
	if g.Page == "" {
		return Filter{Op: OpIs, Dimension: dims.Name, Values: []string{g.Event}}, nil
	}
	re, err := sites.PagePattern(g.Page)
	if err != nil {
		return Filter{}, badRequest("goal %q has a page pattern that cannot be used (%v); remove it and add it again", g.Name, err)
	}
	return Filter{Op: OpMatches, Dimension: dims.Page, Values: []string{re.String()}, patterns: []*regexp.Regexp{re}}, nil
}

// goalGroups answers a query over goals: the groups of q, keyed by q's dimensions with the
// goal's name at the position of event:goal.
func (s *Service) goalGroups(ctx context.Context, q *Query, meta *Meta) (*groups, error) {
	gi := slices.Index(q.Dimensions, dims.Goal)
	var restDims []string
	for _, d := range q.Dimensions {
		if d != dims.Goal {
			restDims = append(restDims, d)
		}
	}
	var goalFilters, others []Filter
	for _, f := range q.Filters {
		if isGoalFilter(&f) {
			goalFilters = append(goalFilters, f)
		} else {
			others = append(others, f)
		}
	}
	wantRevenue := needsRevenue(q.Metrics)
	subMetrics := []string{MetricVisitors, MetricPageviews, MetricEvents}
	if wantRevenue {
		subMetrics = append(subMetrics, MetricTotalRevenue)
	}

	var (
		selected []sites.Goal
		subs     []Query
		scanWhy  string // why some goal's query would be answered by scanning, "" if none would
	)
	for _, g := range q.goals {
		if slices.ContainsFunc(goalFilters, func(f Filter) bool {
			return !f.Eval(func(string) string { return g.Name })
		}) {
			continue
		}
		gf, err := goalFilter(g)
		if err != nil {
			return nil, err
		}
		sub := *q
		sub.Metrics = subMetrics
		sub.Dimensions = restDims
		sub.Filters = append(slices.Clone(others), gf)
		selected, subs = append(selected, g), append(subs, sub)
		if p := makePlan(&sub, s.cfg.ForceScan); p.path == PathScan && scanWhy == "" {
			scanWhy = p.reason
		}
	}

	out := &groups{m: map[gkey]*acc{}, needVisitors: true}
	var metas []Meta
	if scanWhy != "" && len(selected) > 1 && len(restDims)+2 <= MaxDimensions {
		// One scan for all goals instead of one each: it breaks down by event name and page
		// as well, and each goal takes the groups of its event or of its matching pages.
		m, err := s.scanGoals(ctx, q, selected, restDims, others, subMetrics, gi, scanWhy, out)
		metas = append(metas, m)
		if err != nil {
			return nil, err
		}
		selected = nil
	}
	for i, g := range selected {
		var m Meta
		sg, err := s.answer(ctx, &subs[i], &m)
		metas = append(metas, m)
		if err != nil {
			return nil, err
		}
		for k, a := range sg.m {
			completions := a.events
			if g.Page != "" {
				completions = a.pageviews // only page views complete a page goal
			}
			if completions == 0 && a.visitors() == 0 {
				continue // a visit counted in the bucket it started, with no event in range
			}
			dst := out.m[withGoal(k, gi, g.Name)]
			if dst == nil {
				dst = &acc{}
				out.m[withGoal(k, gi, g.Name)] = dst
			}
			if err := dst.absorb(a, completions, g.Page == ""); err != nil {
				return nil, err
			}
		}
	}

	if contains(q.Metrics, MetricConversionRate) {
		base := *q
		base.Metrics = []string{MetricVisitors}
		base.Dimensions = restDims
		base.Filters = others
		var m Meta
		bg, err := s.answer(ctx, &base, &m)
		metas = append(metas, m)
		if err != nil {
			return nil, err
		}
		for k, a := range out.m {
			if b := bg.m[withoutGoal(k, gi)]; b != nil {
				a.base = b.visitors()
			}
		}
	}
	combineMetas(meta, metas)
	return out, nil
}

// scanGoals answers the goals of q with one scan broken down by the other dimensions and by
// event:name and event:page, adding each group to out under every goal it completes. The
// numbers are those of one query per goal: a group of a goal's event, or of a page its
// pattern matches, holds exactly the events that goal's filter keeps.
func (s *Service) scanGoals(ctx context.Context, q *Query, goals []sites.Goal, restDims []string, others []Filter, metrics []string, gi int, reason string, out *groups) (Meta, error) {
	sub := *q
	sub.Metrics = metrics
	sub.Dimensions = slices.Clone(restDims)
	sub.Filters = others
	sub.ForceScan = true
	added := map[int]bool{} // positions of the dimensions added here, left out of the keys
	for _, d := range []string{dims.Name, dims.Page} {
		if !slices.Contains(sub.Dimensions, d) {
			added[len(sub.Dimensions)] = true
			sub.Dimensions = append(sub.Dimensions, d)
		}
	}
	ni, pi := slices.Index(sub.Dimensions, dims.Name), slices.Index(sub.Dimensions, dims.Page)
	patterns := make([]*regexp.Regexp, len(goals))
	for i, g := range goals {
		if g.Page != "" {
			f, err := goalFilter(g)
			if err != nil {
				return Meta{}, err
			}
			patterns[i] = f.patterns[0]
		}
	}
	m := Meta{Path: PathScan, PathReason: reason}
	sg, err := s.scan(ctx, &sub, &m)
	if err != nil {
		return m, err
	}
	for k, a := range sg.m {
		var rest gkey
		j := 0
		for i := range sub.Dimensions {
			if !added[i] {
				rest[j] = k[i]
				j++
			}
		}
		for i, g := range goals {
			completions := a.events
			if g.Page != "" {
				if !patterns[i].MatchString(k[pi]) {
					continue
				}
				completions = a.pageviews
			} else if k[ni] != g.Event {
				continue
			}
			if completions == 0 && a.visitors() == 0 {
				continue
			}
			key := withGoal(rest, gi, g.Name)
			dst := out.m[key]
			if dst == nil {
				dst = &acc{}
				out.m[key] = dst
			}
			if err := dst.absorb(a, completions, g.Page == ""); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// absorb adds the completions of one goal in b to a: its visitors (a union, so a visitor
// who completed two goals counts once), completions as events and, for event goals, the
// revenue.
func (a *acc) absorb(b *acc, completions int64, withRevenue bool) error {
	a.events += completions
	if withRevenue {
		a.rev.merge(b.rev)
	}
	switch {
	case b.ids != nil && a.sk == nil:
		if a.ids == nil {
			a.ids = make(map[uint64]struct{}, len(b.ids))
		}
		for id := range b.ids {
			a.ids[id] = struct{}{}
		}
	case b.ids != nil:
		return a.sk.AddSketch(sketchOf(b.ids))
	case b.sk != nil:
		if a.sk == nil {
			a.sk = &sketch.Union{}
			if a.ids != nil {
				if err := a.sk.AddSketch(sketchOf(a.ids)); err != nil {
					return err
				}
				a.ids = nil
			}
		}
		a.sk.Merge(b.sk)
	}
	return nil
}

func sketchOf(ids map[uint64]struct{}) *sketch.Sketch {
	sk := sketch.New()
	for id := range ids {
		sk.Add(id)
	}
	return sk
}

// withGoal inserts name at position gi of a key of the other dimensions (gi < 0: none).
func withGoal(k gkey, gi int, name string) gkey {
	if gi < 0 {
		return k
	}
	var out gkey
	j := 0
	for i := range out {
		if i == gi {
			out[i] = name
			continue
		}
		if j < len(k) {
			out[i] = k[j]
			j++
		}
	}
	return out
}

// withoutGoal removes position gi from a key (gi < 0: nothing).
func withoutGoal(k gkey, gi int) gkey {
	if gi < 0 {
		return k
	}
	var out gkey
	j := 0
	for i := range k {
		if i != gi {
			out[j] = k[i]
			j++
		}
	}
	return out
}

// combineMetas reports the sub-queries as one: scanned when any was, with their reads added.
func combineMetas(meta *Meta, subs []Meta) {
	meta.Path = PathRollup
	for _, m := range subs {
		meta.RowsRead += m.RowsRead
		meta.EventsScanned += m.EventsScanned
		meta.BucketsCached += m.BucketsCached
		if m.Path == PathScan && meta.Path != PathScan {
			meta.Path, meta.PathReason, meta.Granularity = PathScan, m.PathReason, ""
		}
		if meta.Path == PathRollup && meta.Granularity == "" {
			meta.Granularity = m.Granularity
		}
		for _, w := range m.Warnings {
			if !contains(meta.Warnings, w) {
				meta.Warnings = append(meta.Warnings, w)
			}
		}
	}
}
