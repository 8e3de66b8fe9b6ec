package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/dims"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
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
	// Goals and revenue (goals.go, revenue.go).
	MetricConversionRate = "conversion_rate"
	MetricTotalRevenue   = "total_revenue"
	MetricAverageRevenue = "average_revenue"
)

// Metrics lists the traffic metrics; with GoalMetrics, every metric the API accepts.
var Metrics = []string{
	MetricVisitors, MetricVisits, MetricPageviews, MetricViewsPerVisit,
	MetricBounceRate, MetricVisitDuration, MetricEvents,
}

// GoalMetrics are the metrics of goals and revenue (goals.go, revenue.go).
var GoalMetrics = []string{MetricConversionRate, MetricTotalRevenue, MetricAverageRevenue}

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
	Filters    []Filter // all must hold (AND)
	Range      DateRange
	// OrderBy is the complete order, defaults included.
	OrderBy []Order
	Limit   int
	Offset  int
	Include Include
	// ForceScan answers this query by scanning stored events even when a rollup could.
	// It is not part of the JSON API.
	ForceScan bool
	// Location is the site's time zone, which days, weeks, months and time labels follow.
	// Nil until Execute looks it up (ParseQuery resolves date_range in UTC meanwhile).
	Location *time.Location
	// Compare is the period the query is compared with (include.comparisons), or nil.
	Compare *Comparison

	warnings []string
	rawRange json.RawMessage // date_range as sent, resolved again in the site's time zone
	now      time.Time       // what relative date ranges are resolved against
	// minuteRetention is Config.MinuteRetention: how far back minute rollup rows exist.
	minuteRetention time.Duration
	// goals are the site's goals, for queries that use event:goal; revenue says how revenue
	// metrics are reported. Execute sets both from the site (goals.go).
	goals   []sites.Goal
	revenue *revenueView
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

// DateRange is a resolved date range: From <= t < To.
type DateRange struct {
	Input    string // what the query said: "day", "7d", "month", "6mo", "year", "all", "realtime" or "custom"
	From, To time.Time
	// Days is set when the range is whole days of the site's time zone (everything but
	// "realtime" and timestamps).
	Days bool
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

const dateRangeHelp = `date_range must be "day" (today), "7d", "30d" (any "<N>d": the last N days including today), "month" (this month), "6mo" or "12mo" (this month and the 5 or 11 before it), "year" (this year), "all" (since the site was added), "realtime" (the last 30 minutes), or two dates ["2026-01-01","2026-01-31"] (inclusive); days are those of the site's time zone`

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
		return nil, badRequest("metrics is required: a non-empty array of %s", strings.Join(append(slices.Clone(Metrics), GoalMetrics...), ", "))
	}
	for i, m := range q.Metrics {
		if !contains(Metrics, m) && !contains(GoalMetrics, m) {
			return nil, badRequest("unknown metric %q; valid metrics are %s", m, strings.Join(append(slices.Clone(Metrics), GoalMetrics...), ", "))
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
		if !knownDimension(d) {
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
	leaves := 0
	for i := range q.Filters {
		leaves += q.Filters[i].leaves()
	}
	if leaves > MaxFilters {
		return nil, badRequest("at most %d filters per query, got %d", MaxFilters, leaves)
	}
	if err := q.checkGoalsAndRevenue(); err != nil { // goals.go
		return nil, err
	}

	// date_range
	raw, ok := top["date_range"]
	if !ok || isNull(raw) {
		return nil, badRequest("date_range is required; %s", dateRangeHelp)
	}
	q.rawRange, q.now = raw, now
	q.minuteRetention = cfg.MinuteRetention
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
	if err := q.checkRanges(); err != nil {
		return nil, err
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
	const help = "include accepts time_labels, empty_buckets, total_rows and imports (each true or false) and comparisons (an object)"
	for k, v := range inc {
		if k == "comparisons" {
			c, err := parseComparisons(v)
			if err != nil {
				return err
			}
			q.Compare = c
			continue
		}
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
		dims.Page, dims.Hostname, dims.Name, dims.Goal, dims.PropsPrefix + "<key>",
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
