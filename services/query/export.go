package query

import (
	"archive/zip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
)

// ExportPath is the full-site export: a zip of CSV files, one per report.
const ExportPath = "/api/v1/export"

// maxConcurrentExports bounds the exports one query service runs at once: an export runs a
// dozen queries over the whole range, and a few at once must not starve the dashboards.
const maxConcurrentExports = 2

// exportSlots is shared by every Service of the process; a process runs one query service.
var exportSlots = make(chan struct{}, maxConcurrentExports)

// ExportReport is one CSV file of an export and the query that fills it.
type ExportReport struct {
	File       string   // name in the zip
	Dimensions []string // the query's dimensions
	Metrics    []string // the query's metrics, in column order
	// Filters is the JSON of the query's filters, or "" for none.
	Filters string
	// EmptyBuckets asks for one row per time bucket (the time series).
	EmptyBuckets bool
}

var visitMetrics = []string{MetricVisitors, MetricVisits, MetricBounceRate, MetricVisitDuration}

// ExportReports are the reports of a full-site export, in zip order. Each is an ordinary
// query (see Query), so its CSV equals the CSV answer of POST /api/v1/query for the same
// site, date_range, dimensions, metrics and filters with limit query.max-limit.
var ExportReports = []ExportReport{
	{File: "timeseries.csv", Dimensions: []string{"time:day"}, Metrics: Metrics, EmptyBuckets: true},
	{File: "pages.csv", Dimensions: []string{"event:page"}, Metrics: []string{MetricVisitors, MetricVisits, MetricPageviews, MetricBounceRate, MetricVisitDuration}},
	{File: "entry_pages.csv", Dimensions: []string{"visit:entry_page"}, Metrics: visitMetrics},
	{File: "exit_pages.csv", Dimensions: []string{"visit:exit_page"}, Metrics: visitMetrics},
	{File: "sources.csv", Dimensions: []string{"visit:source"}, Metrics: visitMetrics},
	{File: "utm_sources.csv", Dimensions: []string{"visit:utm_source"}, Metrics: visitMetrics},
	{File: "utm_mediums.csv", Dimensions: []string{"visit:utm_medium"}, Metrics: visitMetrics},
	{File: "utm_campaigns.csv", Dimensions: []string{"visit:utm_campaign"}, Metrics: visitMetrics},
	{File: "utm_terms.csv", Dimensions: []string{"visit:utm_term"}, Metrics: visitMetrics},
	{File: "utm_contents.csv", Dimensions: []string{"visit:utm_content"}, Metrics: visitMetrics},
	{File: "browsers.csv", Dimensions: []string{"visit:browser"}, Metrics: visitMetrics},
	{File: "operating_systems.csv", Dimensions: []string{"visit:os"}, Metrics: visitMetrics},
	{File: "devices.csv", Dimensions: []string{"visit:device"}, Metrics: visitMetrics},
	{File: "countries.csv", Dimensions: []string{"visit:country"}, Metrics: visitMetrics},
	{File: "custom_events.csv", Dimensions: []string{"event:name"}, Metrics: []string{MetricVisitors, MetricEvents},
		Filters: `[["is_not","event:name",["` + event.PageviewName + `"]]]`},
}

// ExportManifest is the file in every export that lists its reports, with how many rows
// each holds and whether the row bound cut it.
const ExportManifest = "manifest.csv"

// Body returns the JSON query of report r for site over dateRange (a JSON date_range value).
func (r ExportReport) Body(site string, dateRange json.RawMessage, limit int) []byte {
	q := map[string]any{
		"site_id": site, "metrics": r.Metrics, "dimensions": r.Dimensions,
		"date_range": dateRange, "limit": limit,
	}
	if r.Filters != "" {
		q["filters"] = json.RawMessage(r.Filters)
	}
	if r.EmptyBuckets {
		q["include"] = map[string]bool{"empty_buckets": true}
	}
	b, _ := json.Marshal(q)
	return b
}

// exportDateRange turns the date_range URL parameter into its JSON form: "7d" (any
// relative range), "2026-01-01,2026-01-31", or the JSON of either.
func exportDateRange(v string) (json.RawMessage, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return nil, badRequest("date_range is required: GET %s?site_id=example.com&date_range=30d (or date_range=2026-01-01,2026-01-31)", ExportPath)
	case len(v) > 100:
		return nil, badRequest("date_range is %d bytes; %s", len(v), dateRangeHelp)
	case v[0] == '[' || v[0] == '"':
		if !json.Valid([]byte(v)) {
			return nil, badRequest("date_range %q is not valid JSON; %s", v, dateRangeHelp)
		}
		return json.RawMessage(v), nil
	case strings.Contains(v, ","):
		from, to, _ := strings.Cut(v, ",")
		b, _ := json.Marshal([]string{strings.TrimSpace(from), strings.TrimSpace(to)})
		return b, nil
	}
	b, _ := json.Marshal(v)
	return b, nil
}

func (s *Service) handleExport(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	path, code := "none", http.StatusOK
	defer func() { s.observe("export", path, code, t0) }()
	fail := func(status int, msg string) {
		code = status
		writeError(w, status, msg)
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		fail(http.StatusMethodNotAllowed, fmt.Sprintf("use GET %s?site_id=example.com&date_range=30d", ExportPath))
		return
	}
	site := strings.TrimSpace(r.URL.Query().Get("site_id"))
	if site == "" || len(site) > event.MaxSiteLen {
		fail(http.StatusBadRequest, fmt.Sprintf("site_id is required: GET %s?site_id=example.com&date_range=30d", ExportPath))
		return
	}
	dateRange, err := exportDateRange(r.URL.Query().Get("date_range"))
	if err != nil {
		fail(s.classify(r.Context(), err))
		return
	}
	// Every report is parsed before anything is sent, so a bad site_id or date_range gets a
	// JSON error rather than a broken zip.
	now := s.now()
	queries := make([]*Query, len(ExportReports))
	for i, rep := range ExportReports {
		q, err := ParseQuery(rep.Body(site, dateRange, s.cfg.MaxLimit), now, s.cfg)
		if err != nil {
			fail(s.classify(r.Context(), err))
			return
		}
		queries[i] = q
	}
	site = queries[0].SiteID
	if status, msg := s.authorize(w, r, site); status != 0 {
		fail(status, msg)
		return
	}
	select {
	case exportSlots <- struct{}{}:
		defer func() { <-exportSlots }()
	default:
		w.Header().Set("Retry-After", "10")
		fail(http.StatusTooManyRequests, fmt.Sprintf("%d exports are running on this query service already; retry in a few seconds", maxConcurrentExports))
		return
	}

	// The first report runs before the answer starts, so a store that is down gets a 503.
	ctx := r.Context()
	first, err := s.exportQuery(ctx, queries[0])
	if err != nil {
		status, msg := s.classify(ctx, err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		s.log.Log(ctx, levelFor(status), "export failed", "site", site, "status", status, "err", err)
		fail(status, msg)
		return
	}
	path = first.Meta.Path
	rng := queries[0].Range
	filename := strings.TrimSuffix(csvFilename(queries[0]), ".csv") + ".zip"
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filename))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	zw := zip.NewWriter(w)
	manifest := [][]string{{"file", "dimensions", "metrics", "rows", "total_rows", "truncated"}}
	rows := 0
	for i, q := range queries {
		resp := first
		if i > 0 {
			if resp, err = s.exportQuery(ctx, q); err != nil {
				break
			}
		}
		rep := ExportReports[i]
		if err = writeZipCSV(zw, rep.File, func(f io.Writer) error { return writeCSV(f, q, resp) }); err != nil {
			break
		}
		rows += len(resp.Results)
		manifest = append(manifest, []string{rep.File, strings.Join(rep.Dimensions, " "), strings.Join(rep.Metrics, " "),
			strconv.Itoa(len(resp.Results)), strconv.Itoa(resp.Meta.TotalRows), strconv.FormatBool(resp.Meta.TotalRows > len(resp.Results))})
	}
	if err == nil {
		err = writeZipCSV(zw, ExportManifest, func(f io.Writer) error {
			cw := csv.NewWriter(f)
			_ = cw.WriteAll(manifest)
			return cw.Error()
		})
	}
	if err == nil {
		err = zw.Close()
	}
	fields := []any{"site", site, "from", rng.From.Format(dayLayout), "to", rng.To.Add(-1).Format(dayLayout),
		"date_range", rng.Input, "by", s.caller(ctx, r), "rows", rows, "took", time.Since(t0).Round(time.Millisecond)}
	if err != nil {
		// The answer has started: the only honest signal left is to break the download off,
		// so the client sees a failed transfer rather than a zip that looks complete.
		code = http.StatusInternalServerError
		s.log.WarnContext(ctx, "export broken off", append(fields, "err", err)...)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("site exported", fields...)
}

// exportQuery runs one report within the query timeout.
func (s *Service) exportQuery(ctx context.Context, q *Query) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return s.Execute(ctx, q)
}

func writeZipCSV(zw *zip.Writer, name string, write func(io.Writer) error) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now().UTC()})
	if err != nil {
		return err
	}
	return write(f)
}

// caller names who made a request, for the export log: the API key's id (and name), or how
// access was granted without one.
func (s *Service) caller(ctx context.Context, r *http.Request) string {
	if s.auth == nil {
		return "anyone (query.auth is off)"
	}
	token, sent := bearer(r)
	if !sent {
		return "anonymous (public site)"
	}
	k, err := s.auth.keys.Verify(ctx, token)
	switch {
	case errors.Is(err, sites.ErrInvalidKey):
		return "anonymous (public site; the key sent is not valid)"
	case err != nil:
		return "an API key (could not be read again: " + err.Error() + ")"
	case k.Name != "":
		return "key " + k.ID + " (" + k.Name + ")"
	}
	return "key " + k.ID
}
