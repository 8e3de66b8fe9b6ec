package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
)

// Metric names, as the query API spells them.
const (
	MetricVisitors      = "visitors"
	MetricVisits        = "visits"
	MetricPageviews     = "pageviews"
	MetricViewsPerVisit = "views_per_visit"
	MetricBounceRate    = "bounce_rate"
	MetricVisitDuration = "visit_duration"
	MetricEvents        = "events"
)

// Metrics lists every metric the API accepts.
var Metrics = []string{
	MetricVisitors, MetricVisits, MetricPageviews, MetricViewsPerVisit,
	MetricBounceRate, MetricVisitDuration, MetricEvents,
}

// Filter operators.
const (
	OpIs          = "is"
	OpIsNot       = "is_not"
	OpContains    = "contains"
	OpContainsNot = "contains_not"
	OpMatches     = "matches"
	OpMatchesNot  = "matches_not"
)

// Limits on the shape of one query. They keep every query cheap to parse and plan; the
// store work is bounded separately (Config.MaxScanEvents, Config.Timeout).
const (
	MaxDimensions   = 3
	MaxFilters      = 20
	MaxFilterValues = 100
	MaxPatternLen   = 1000
	MaxTimeBuckets  = 50_000 // time labels one query may produce
	MaxRangeDays    = 3660   // ~10 years
	maxFilterDepth  = 4
)

// Query is a parsed, validated and normalised query.
type Query struct {
	SiteID     string
	Metrics    []string
	Dimensions []string
	Filters    []Filter // combined with AND
	Range      DateRange
	// OrderBy is the complete order, defaults included.
	OrderBy []Order
	Limit   int
	Offset  int
	Include Include
	// ForceScan answers this query by scanning stored events even when a rollup could.
	// It is not part of the JSON API.
	ForceScan bool

	warnings []string
}

// Filter keeps the events or visits whose Dimension value matches. Filters are built by
// ParseQuery, which also compiles their patterns.
type Filter struct {
	Op         string // one of the Op* constants
	Dimension  string
	Values     []string
	IgnoreCase bool // Plausible's {"case_sensitive": false}

	patterns []*regexp.Regexp // matches / matches_not
	lowered  []string         // contains / contains_not without case
}

// Order is one sort key: a metric or dimension of the query.
type Order struct {
	Field string
	Desc  bool
}

// Include holds optional parts of the answer.
type Include struct {
	// TimeLabels adds meta.time_labels: every bucket label of the time dimension in range,
	// including those without data.
	TimeLabels bool
	// EmptyBuckets adds a zero row for every time bucket without data, so a time series has
	// one row per bucket. It needs the time dimension to be the only dimension.
	EmptyBuckets bool
}

// DateRange is a resolved date range: From <= t < To, both UTC.
type DateRange struct {
	Input    string // what the query said: "day", "7d", "month", "realtime" or "custom"
	From, To time.Time
}

// Error is a problem with the request that its sender can fix; Status is the HTTP status.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

var topLevelFields = []string{"site_id", "metrics", "dimensions", "filters", "date_range", "order_by", "limit", "offset", "pagination", "include"}

const dateRangeHelp = `date_range must be "day" (today), "7d", "30d" (any "<N>d": the last N days including today), "month" (this month), "realtime" (the last 30 minutes), or two dates ["2026-01-01","2026-01-31"] (inclusive, UTC)`

const filterHelp = `a filter is ["is"|"is_not"|"contains"|"contains_not"|"matches"|"matches_not", dimension, [values...]] with an optional 4th element {"case_sensitive": false}, or ["and", [filters...]]`

// ParseQuery parses and validates a query body. now resolves relative date ranges; the
// limits of cfg (DefaultLimit, MaxLimit) apply to pagination. Every error it returns is an
// *Error with a message meant for the sender.
func ParseQuery(body []byte, now time.Time, cfg Config) (*Query, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, badRequest("request body is not valid JSON: %v (at byte %d)", err, syn.Offset)
		}
		return nil, badRequest(`request body must be a JSON object such as {"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`)
	}
	if top == nil {
		return nil, badRequest(`request body must be a JSON object such as {"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`)
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(topLevelFields, k) {
			return nil, badRequest("unknown field %q; a query has the fields %s", k, strings.Join(topLevelFields, ", "))
		}
	}
	q := &Query{}

	// site_id
	if err := decodeField(top, "site_id", &q.SiteID, "a string such as \"example.com\""); err != nil {
		return nil, err
	}
	q.SiteID = strings.TrimSpace(q.SiteID)
	if q.SiteID == "" {
		return nil, badRequest(`site_id is required: the site's domain as the tracker sends it, e.g. "example.com"`)
	}
	if len(q.SiteID) > event.MaxSiteLen || !utf8.ValidString(q.SiteID) {
		return nil, badRequest("site_id must be valid UTF-8 of at most %d bytes", event.MaxSiteLen)
	}

	// metrics
	if err := decodeField(top, "metrics", &q.Metrics, "an array of metric names"); err != nil {
		return nil, err
	}
	if len(q.Metrics) == 0 {
		return nil, badRequest("metrics is required: a non-empty array of %s", strings.Join(Metrics, ", "))
	}
	for i, m := range q.Metrics {
		if !contains(Metrics, m) {
			return nil, badRequest("unknown metric %q; valid metrics are %s", m, strings.Join(Metrics, ", "))
		}
		if contains(q.Metrics[:i], m) {
			return nil, badRequest("metric %q is listed twice", m)
		}
	}

	// dimensions
	if err := decodeField(top, "dimensions", &q.Dimensions, "an array of dimension names"); err != nil {
		return nil, err
	}
	if len(q.Dimensions) > MaxDimensions {
		return nil, badRequest("at most %d dimensions per query, got %d", MaxDimensions, len(q.Dimensions))
	}
	timeDims := 0
	for i, d := range q.Dimensions {
		if !dims.Known(d) {
			return nil, badRequest("unknown dimension %q; %s", d, dimensionHelp())
		}
		if contains(q.Dimensions[:i], d) {
			return nil, badRequest("dimension %q is listed twice", d)
		}
		if isTimeDim(d) {
			timeDims++
		}
	}
	if timeDims > 1 {
		return nil, badRequest("at most one time dimension per query (time:minute, time:hour, time:day, time:week or time:month)")
	}
	if q.Dimensions == nil {
		q.Dimensions = []string{}
	}

	// filters
	var rawFilters []json.RawMessage
	if err := decodeField(top, "filters", &rawFilters, "an array of filters"); err != nil {
		return nil, err
	}
	for i, rf := range rawFilters {
		fs, err := parseFilter(rf, fmt.Sprintf("filters[%d]", i), 0)
		if err != nil {
			return nil, err
		}
		q.Filters = append(q.Filters, fs...)
	}
	if len(q.Filters) > MaxFilters {
		return nil, badRequest("at most %d filters per query, got %d", MaxFilters, len(q.Filters))
	}

	// date_range
	raw, ok := top["date_range"]
	if !ok || isNull(raw) {
		return nil, badRequest("date_range is required; %s", dateRangeHelp)
	}
	r, err := parseDateRange(raw, now)
	if err != nil {
		return nil, err
	}
	q.Range = r

	// include
	var inc map[string]json.RawMessage
	if err := decodeField(top, "include", &inc, `an object such as {"time_labels": true}`); err != nil {
		return nil, err
	}
	if err := q.parseInclude(inc); err != nil {
		return nil, err
	}
	if td := q.timeDim(); td != "" {
		if n := countTimeLabels(td, q.Range.From, q.Range.To); n > MaxTimeBuckets {
			return nil, badRequest("%s over this date_range makes %d buckets, more than the %d allowed; use a coarser time dimension or a shorter date_range", td, n, MaxTimeBuckets)
		}
	}

	// order_by
	if err := q.parseOrderBy(top["order_by"]); err != nil {
		return nil, err
	}

	// limit / offset, at the top level or in Plausible's "pagination" object
	if err := q.parsePagination(top, cfg); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Query) parseInclude(inc map[string]json.RawMessage) error {
	const help = "include accepts time_labels, empty_buckets, total_rows and imports (each true or false)"
	for k, v := range inc {
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return badRequest("include.%s must be true or false", k)
		}
		switch k {
		case "time_labels":
			q.Include.TimeLabels = b
		case "empty_buckets":
			q.Include.EmptyBuckets = b
		case "total_rows":
			// meta.total_rows is always present; accepted for Plausible clients.
		case "imports":
			if b {
				q.warnings = append(q.warnings, "include.imports is ignored: Glimpse has no imported data")
			}
		default:
			return badRequest("unknown include option %q; %s", k, help)
		}
	}
	if q.Include.TimeLabels && q.timeDim() == "" {
		return badRequest("include.time_labels needs a time dimension (time:minute, time:hour, time:day, time:week or time:month)")
	}
	if q.Include.EmptyBuckets && (len(q.Dimensions) != 1 || q.timeDim() == "") {
		return badRequest("include.empty_buckets needs the time dimension to be the only dimension, e.g. \"dimensions\": [\"time:day\"]")
	}
	return nil
}

func (q *Query) parseOrderBy(raw json.RawMessage) error {
	var entries []json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return badRequest(`order_by must be an array of [field, "asc"|"desc"] pairs, e.g. [["visitors","desc"]]`)
		}
	}
	seen := map[string]bool{}
	for i, e := range entries {
		var pair []string
		if err := json.Unmarshal(e, &pair); err != nil || len(pair) != 2 {
			return badRequest(`order_by[%d] must be a [field, "asc"|"desc"] pair, e.g. ["visitors","desc"]`, i)
		}
		field, dir := pair[0], pair[1]
		if !contains(q.Metrics, field) && !contains(q.Dimensions, field) {
			return badRequest("order_by[%d]: %q is not one of this query's metrics or dimensions (%s)", i, field, strings.Join(append(append([]string{}, q.Metrics...), q.Dimensions...), ", "))
		}
		if dir != "asc" && dir != "desc" {
			return badRequest(`order_by[%d]: direction must be "asc" or "desc", got %q`, i, dir)
		}
		if seen[field] {
			continue
		}
		seen[field] = true
		q.OrderBy = append(q.OrderBy, Order{Field: field, Desc: dir == "desc"})
	}
	// Defaults complete the order so every answer is deterministic: a time dimension
	// ascending, then the first metric descending, then the other dimensions ascending.
	add := func(field string, desc bool) {
		if !seen[field] {
			seen[field] = true
			q.OrderBy = append(q.OrderBy, Order{Field: field, Desc: desc})
		}
	}
	if len(entries) == 0 {
		if td := q.timeDim(); td != "" {
			add(td, false)
		}
		add(q.Metrics[0], true)
	}
	for _, d := range q.Dimensions {
		add(d, false)
	}
	return nil
}

func (q *Query) parsePagination(top map[string]json.RawMessage, cfg Config) error {
	var limit, offset *int
	if err := decodeField(top, "limit", &limit, "a whole number"); err != nil {
		return err
	}
	if err := decodeField(top, "offset", &offset, "a whole number"); err != nil {
		return err
	}
	var pag struct {
		Limit  *int `json:"limit"`
		Offset *int `json:"offset"`
	}
	if raw, ok := top["pagination"]; ok && !isNull(raw) {
		if limit != nil || offset != nil {
			return badRequest("use either limit/offset or pagination, not both")
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return badRequest(`pagination must be an object such as {"limit": 100, "offset": 0}`)
		}
		for k := range m {
			if k != "limit" && k != "offset" {
				return badRequest("unknown pagination option %q; pagination accepts limit and offset", k)
			}
		}
		if err := decodeField(m, "limit", &pag.Limit, "a whole number"); err != nil {
			return err
		}
		if err := decodeField(m, "offset", &pag.Offset, "a whole number"); err != nil {
			return err
		}
		limit, offset = pag.Limit, pag.Offset
	}
	q.Limit = cfg.DefaultLimit
	if limit != nil {
		if *limit < 1 || *limit > cfg.MaxLimit {
			return badRequest("limit must be between 1 and %d, got %d", cfg.MaxLimit, *limit)
		}
		q.Limit = *limit
	}
	if offset != nil {
		if *offset < 0 {
			return badRequest("offset must not be negative, got %d", *offset)
		}
		q.Offset = *offset
	}
	return nil
}

// parseFilter parses one filter expression; "and" expressions are flattened.
func parseFilter(raw json.RawMessage, where string, depth int) ([]Filter, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) < 2 {
		return nil, badRequest("%s: %s", where, filterHelp)
	}
	var op string
	if err := json.Unmarshal(parts[0], &op); err != nil {
		return nil, badRequest("%s: the first element must be the operator; %s", where, filterHelp)
	}
	switch op {
	case "and":
		if depth >= maxFilterDepth {
			return nil, badRequest("%s: \"and\" filters nest at most %d deep", where, maxFilterDepth)
		}
		var subs []json.RawMessage
		if len(parts) != 2 || json.Unmarshal(parts[1], &subs) != nil || len(subs) == 0 {
			return nil, badRequest(`%s: "and" takes one array of filters: ["and", [filter, filter, ...]]`, where)
		}
		var out []Filter
		for i, s := range subs {
			fs, err := parseFilter(s, fmt.Sprintf("%s[1][%d]", where, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
			if len(out) > MaxFilters {
				return nil, badRequest("at most %d filters per query", MaxFilters)
			}
		}
		return out, nil
	case "or", "not", "has_done", "has_not_done":
		return nil, badRequest("%s: the %q filter operator is not supported; filters are combined with AND. %s", where, op, filterHelp)
	case OpIs, OpIsNot, OpContains, OpContainsNot, OpMatches, OpMatchesNot:
	default:
		return nil, badRequest("%s: unknown filter operator %q; %s", where, op, filterHelp)
	}
	if len(parts) != 3 && len(parts) != 4 {
		return nil, badRequest("%s: %s", where, filterHelp)
	}
	f := Filter{Op: op}
	if err := json.Unmarshal(parts[1], &f.Dimension); err != nil {
		return nil, badRequest("%s: the second element must be a dimension name; %s", where, filterHelp)
	}
	if isTimeDim(f.Dimension) {
		return nil, badRequest("%s: time dimensions cannot be filtered; choose the time span with date_range", where)
	}
	if !dims.Known(f.Dimension) {
		return nil, badRequest("%s: unknown dimension %q; %s", where, f.Dimension, dimensionHelp())
	}
	if err := json.Unmarshal(parts[2], &f.Values); err != nil {
		return nil, badRequest("%s: the third element must be an array of strings, e.g. [\"/pricing\"]; %s", where, filterHelp)
	}
	if len(f.Values) == 0 || len(f.Values) > MaxFilterValues {
		return nil, badRequest("%s: a filter needs between 1 and %d values, got %d", where, MaxFilterValues, len(f.Values))
	}
	if len(parts) == 4 {
		var mod map[string]json.RawMessage
		if err := json.Unmarshal(parts[3], &mod); err != nil {
			return nil, badRequest(`%s: the 4th element must be an object such as {"case_sensitive": false}`, where)
		}
		for k, v := range mod {
			var b bool
			if k != "case_sensitive" || json.Unmarshal(v, &b) != nil {
				return nil, badRequest(`%s: the only filter option is "case_sensitive" (true or false)`, where)
			}
			f.IgnoreCase = !b
		}
	}
	if f.Op == OpMatches || f.Op == OpMatchesNot {
		for _, v := range f.Values {
			if len(v) > MaxPatternLen {
				return nil, badRequest("%s: a pattern may be at most %d bytes", where, MaxPatternLen)
			}
			expr := v
			if f.IgnoreCase {
				expr = "(?i)" + v
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, badRequest("%s: %q is not a valid regular expression (RE2 syntax): %v", where, v, err)
			}
			f.patterns = append(f.patterns, re)
		}
	}
	if f.IgnoreCase && (f.Op == OpContains || f.Op == OpContainsNot) {
		f.lowered = make([]string, len(f.Values))
		for i, v := range f.Values {
			f.lowered[i] = strings.ToLower(v)
		}
	}
	return []Filter{f}, nil
}

// Match reports whether value v passes the filter.
func (f *Filter) Match(v string) bool {
	switch f.Op {
	case OpIs, OpIsNot:
		hit := false
		for _, x := range f.Values {
			if x == v || (f.IgnoreCase && strings.EqualFold(x, v)) {
				hit = true
				break
			}
		}
		return hit == (f.Op == OpIs)
	case OpContains, OpContainsNot:
		hit := false
		if f.IgnoreCase {
			lv := strings.ToLower(v)
			for _, x := range f.lowered {
				if strings.Contains(lv, x) {
					hit = true
					break
				}
			}
		} else {
			for _, x := range f.Values {
				if strings.Contains(v, x) {
					hit = true
					break
				}
			}
		}
		return hit == (f.Op == OpContains)
	case OpMatches, OpMatchesNot:
		hit := false
		for _, re := range f.patterns {
			if re.MatchString(v) {
				hit = true
				break
			}
		}
		return hit == (f.Op == OpMatches)
	}
	return false
}

// decodeField decodes top[name] into v when present and not null.
func decodeField(top map[string]json.RawMessage, name string, v any, expected string) error {
	raw, ok := top[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return badRequest("%s must be %s, got %s", name, expected, describeJSON(raw))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }

// describeJSON names the kind of a JSON value for error messages.
func describeJSON(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '[':
		return "an array (or an array holding the wrong kind of values)"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number (" + truncate(s, 40) + ")"
}

func dimensionHelp() string {
	return "valid dimensions are " + strings.Join([]string{
		dims.Page, dims.Hostname, dims.Name, dims.PropsPrefix + "<key>",
		dims.EntryPage, dims.ExitPage, dims.Source, dims.Referrer,
		dims.UTMSource, dims.UTMMedium, dims.UTMCampaign, dims.UTMTerm, dims.UTMContent,
		dims.Browser, dims.BrowserVer, dims.OS, dims.OSVersion, dims.Device,
		dims.Country, dims.Region, dims.City,
		dims.TimeMinute, dims.TimeHour, dims.TimeDay, dims.TimeWeek, dims.TimeMonth,
	}, ", ")
}

func isTimeDim(d string) bool { return strings.HasPrefix(d, dims.TimePrefix) }

// timeDim returns the query's time dimension, or "".
func (q *Query) timeDim() string {
	for _, d := range q.Dimensions {
		if isTimeDim(d) {
			return d
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
