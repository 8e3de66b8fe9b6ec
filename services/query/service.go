// Package query is the query service: it answers Glimpse's REST API (POST /api/v1/query,
// GET /api/v1/realtime, CSV export) from the store.
//
// A query is answered from rollup rows when a rollup holds the answer (unfiltered
// dashboards, one breakdown, time series) and otherwise by scanning the stored events of
// the date range with a bound; both paths follow docs/metrics.md and give the same numbers
// (visitors excepted: rollups estimate them with HyperLogLog, exact for small sets). The
// API is documented in docs/api.md.
package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Deps are what the query service is wired to.
type Deps struct {
	Store   store.Store
	Log     *slog.Logger
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Now     func() time.Time      // nil: time.Now
}

// Service answers queries. Its only state beyond metrics is the cache of past rollup
// buckets, which Stop detaches from the store; in-flight requests are drained by the HTTP
// server that serves Handler.
type Service struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	cache *rollupCache // nil when disabled
	// finalOnly limits the cache to buckets no processor changes any more (see sealed.go):
	// the store does not report writes (Cassandra, written by other processes), so a cached
	// bucket that could still change would go stale.
	finalOnly bool
	seals     seals // finished days merged across shards (sealed.go)
	stopWatch func()
	auth      *authorizer // nil when Config.Auth is off

	// siteDir gives the goals and reporting currency of sites; fx the exchange rates of
	// Config.FXRates, nil without (goals.go, revenue.go, fx.go).
	siteDir *sites.Directory
	fx      FXRates
}

// New builds a query service.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("query: a store is required")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, store: deps.Store, log: deps.Log, now: deps.Now, metrics: m}
	s.seals.writing = make(chan struct{}, 1)
	s.siteDir = sites.NewDirectory(deps.Store, sites.Options{})
	if cfg.FXRates != "" {
		if s.fx, err = LoadFXRates(cfg.FXRates); err != nil {
			return nil, err
		}
	}
	if cfg.Auth {
		s.auth = newAuthorizer(deps.Store, deps.Now)
	}
	if w, ok := deps.Store.(rowWatcher); ok && cfg.CacheBytes > 0 {
		s.cache = newRollupCache(cfg.CacheBytes, m)
		s.stopWatch = w.WatchRows(s.cache.invalidate)
	} else if cfg.CacheBytes > 0 && cfg.SealedDays {
		s.cache = newRollupCache(cfg.CacheBytes, m)
		s.finalOnly = true
	}
	return s, nil
}

// Name implements lifecycle.Service.
func (s *Service) Name() string { return "query" }

// Start implements lifecycle.Service; there is nothing to prepare.
func (s *Service) Start(context.Context) error { return nil }

// Run implements lifecycle.Service: it waits for ctx to end.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Stop implements lifecycle.Service: it stops following the store's writes and waits for
// merged days being stored (or ctx).
func (s *Service) Stop(ctx context.Context) error {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	done := make(chan struct{})
	go func() { s.seals.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// API paths.
const (
	QueryPath    = "/api/v1/query"
	RealtimePath = "/api/v1/realtime"
)

// Handler serves POST (and GET) /api/v1/query and GET /api/v1/realtime.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case QueryPath:
			s.handleQuery(w, r)
		case RealtimePath:
			s.handleRealtime(w, r)
		case ExportPath:
			s.handleExport(w, r) // export.go
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %q; the query API serves POST %s and GET %s?site_id=...", r.URL.Path, QueryPath, RealtimePath))
		}
	})
}

const (
	formatJSON = "json"
	formatCSV  = "csv"
)

func (s *Service) handleQuery(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	path, code := "none", http.StatusOK
	defer func() { s.observe(endpointQuery, path, code, t0) }()
	fail := func(status int, msg string) {
		code = status
		writeError(w, status, msg)
	}

	format, err := responseFormat(r)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	var body []byte
	switch r.Method {
	case http.MethodPost:
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			// curl -d sends application/x-www-form-urlencoded unless told otherwise; the body
			// is still the JSON query, so it is read as one.
			if err != nil || (mt != "application/json" && mt != "text/plain" && mt != "application/x-www-form-urlencoded") {
				fail(http.StatusUnsupportedMediaType, fmt.Sprintf("send the query as JSON with the header \"Content-Type: application/json\" (got %q)", truncate(ct, 80)))
				return
			}
		}
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the query body is larger than %d bytes (query.max-body-bytes)", s.cfg.MaxBodyBytes))
				return
			}
			fail(http.StatusBadRequest, "could not read the request body: "+err.Error())
			return
		}
	case http.MethodGet:
		// GET ?query=<json> lets a link download a CSV export.
		body = []byte(r.URL.Query().Get("query"))
		if len(body) == 0 {
			fail(http.StatusBadRequest, "POST the query as a JSON body, or GET with the query as JSON in the \"query\" URL parameter")
			return
		}
		if int64(len(body)) > s.cfg.MaxBodyBytes {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the query is larger than %d bytes (query.max-body-bytes)", s.cfg.MaxBodyBytes))
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		fail(http.StatusMethodNotAllowed, fmt.Sprintf("use POST %s with a JSON body", QueryPath))
		return
	}

	q, err := ParseQuery(body, s.now(), s.cfg)
	if err != nil {
		code, msg := s.classify(r.Context(), err)
		fail(code, msg)
		return
	}
	if status, msg := s.authorize(w, r, q.SiteID); status != 0 {
		fail(status, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	resp, err := s.Execute(ctx, q)
	if resp != nil {
		path = resp.Meta.Path
	}
	if err != nil {
		status, msg := s.classify(r.Context(), err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		s.log.Log(r.Context(), levelFor(status), "query failed", "site", q.SiteID, "path", path, "status", status, "err", err)
		fail(status, msg)
		return
	}
	if format == formatCSV {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", csvFilename(q)))
		w.Header().Set("X-Glimpse-Path", resp.Meta.Path)
		w.Header().Set("X-Glimpse-Total-Rows", strconv.Itoa(resp.Meta.TotalRows))
		w.Header().Set("Cache-Control", "no-store")
		if err := writeCSV(w, q, resp); err != nil {
			s.log.Debug("writing CSV answer failed", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handleRealtime(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	path, code := "none", http.StatusOK
	defer func() { s.observe(endpointRealtime, path, code, t0) }()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		code = http.StatusMethodNotAllowed
		writeError(w, code, fmt.Sprintf("use GET %s?site_id=example.com", RealtimePath))
		return
	}
	site := strings.TrimSpace(r.URL.Query().Get("site_id"))
	if site == "" || len(site) > event.MaxSiteLen {
		code = http.StatusBadRequest
		writeError(w, code, fmt.Sprintf("site_id is required: GET %s?site_id=example.com", RealtimePath))
		return
	}
	if status, msg := s.authorize(w, r, site); status != 0 {
		code = status
		writeError(w, code, msg)
		return
	}
	path = PathRollup
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	n, err := s.RealtimeVisitors(ctx, site)
	if err != nil {
		var msg string
		code, msg = s.classify(r.Context(), err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		s.log.Log(r.Context(), levelFor(code), "realtime query failed", "site", site, "status", code, "err", err)
		writeError(w, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"visitors": n})
}

// statusClientClosed is recorded (nginx's convention) when the client went away.
const statusClientClosed = 499

// classify maps an error to an HTTP status and a message for the sender.
func (s *Service) classify(reqCtx context.Context, err error) (int, string) {
	var qe *Error
	switch {
	case errors.As(err, &qe):
		return qe.Status, qe.Msg
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, fmt.Sprintf("the store cannot serve queries right now (%v); try again in a few seconds", err)
	case reqCtx.Err() != nil:
		return statusClientClosed, "the request was cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, fmt.Sprintf("the query did not finish within %s (query.timeout); ask for a shorter date_range, or fewer filters and dimensions", s.cfg.Timeout)
	}
	return http.StatusInternalServerError, "internal error while answering the query; the query service log has the details"
}

func levelFor(status int) slog.Level {
	if status >= 500 && status != statusClientClosed {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (s *Service) observe(endpoint, path string, code int, t0 time.Time) {
	s.metrics.requests.WithLabelValues(endpoint, path, strconv.Itoa(code)).Inc()
	s.metrics.latency.WithLabelValues(endpoint, path).Observe(time.Since(t0).Seconds())
}

// responseFormat picks JSON or CSV from ?format= or, without it, the Accept header.
func responseFormat(r *http.Request) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case formatJSON, formatCSV:
		return f, nil
	case "":
	default:
		return "", fmt.Errorf(`format must be "json" or "csv", got %q`, truncate(f, 40))
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return formatCSV, nil
		case "application/json":
			return formatJSON, nil
		}
	}
	return formatJSON, nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
