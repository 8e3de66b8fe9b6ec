package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/clientip"
	"github.com/glimpse-analytics/glimpse/internal/event"
	"github.com/glimpse-analytics/glimpse/internal/geo"
	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Path is the route the collector serves.
const Path = "/api/event"

// DroppedHeader is set on a 202 answer to a request that was not (or not for every site)
// published, with the reason ("bot", "unknown_site: ...", "foreign_hostname: ..."), so
// whoever tests a tracker with curl can see why nothing shows up.
const DroppedHeader = "X-Glimpse-Dropped"

// maintainEvery is how often Run checks the salts. Tomorrow's salt is created a day ahead,
// so midnight needs no precise wake-up.
const maintainEvery = time.Minute

// Deps are the collector's collaborators.
type Deps struct {
	Bus     bus.Bus
	Meta    store.Meta            // salts and the site list
	Log     *slog.Logger          // nil: slog.Default()
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Now     func() time.Time      // nil: time.Now; the event time and the salt day come from it
}

// Collector validates, enriches and publishes beacons. It is a lifecycle.Service.
type Collector struct {
	cfg   Config
	bus   bus.Bus
	log   *slog.Logger
	now   func() time.Time
	m     *metrics
	ua    *UAParser
	salts *salts
	sites *sites.Directory
	geo   *geo.DB // nil: no database, locations are unknown

	geoMetrics *geoMetrics
	// mpSecrets verifies the api_secret of Measurement Protocol requests (mp.go).
	mpSecrets *sites.MPSecrets

	deadlines *sharedDeadlines // bound each request's lookups and publish by cfg.PublishTimeout

	maintainEvery time.Duration
	cleanedDay    int64 // last day whose stale salts were deleted; Run's goroutine only

	mu       sync.Mutex // guards closing against inflight.Add
	closing  bool
	inflight sync.WaitGroup
	pending  atomic.Int64

	publishLog, saltLog, geoLog throttle
}

// New checks cfg and deps and returns a collector. Call Start before serving requests.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil {
		return nil, errors.New("collector: Deps.Bus is required")
	}
	if deps.Meta == nil {
		return nil, errors.New("collector: Deps.Meta is required (it holds the visitor-id salts)")
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
	gm, err := newGeoMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	geoDB, err := openGeo(cfg.GeoIPDB, deps.Log, gm)
	if err != nil {
		return nil, err
	}
	cfg.TrustedProxies = append(clientip.PrefixList(nil), cfg.TrustedProxies...)
	return &Collector{
		cfg:           cfg,
		bus:           deps.Bus,
		log:           deps.Log,
		now:           deps.Now,
		m:             m,
		ua:            NewUAParser(cfg.UACacheSize),
		salts:         newSalts(deps.Meta),
		sites:         sites.NewDirectory(deps.Meta, sites.Options{TTL: cfg.SitesRefresh, Now: deps.Now}),
		geo:           geoDB,
		geoMetrics:    gm,
		mpSecrets:     sites.NewMPSecrets(deps.Meta, sites.Options{TTL: cfg.SitesRefresh, Now: deps.Now}),
		deadlines:     &sharedDeadlines{timeout: cfg.PublishTimeout},
		maintainEvery: maintainEvery,
		cleanedDay:    math.MinInt64,
	}, nil
}

// Name implements lifecycle.Service.
func (c *Collector) Name() string { return "collector" }

// Start makes sure today's salt and the first-party key exist and are cached, and loads the
// site list.
func (c *Collector) Start(ctx context.Context) error {
	if err := c.sites.Refresh(ctx); err != nil {
		return fmt.Errorf("collector: load the site list: %w", err)
	}
	today := dayOf(c.now().UnixMilli())
	if _, err := c.salts.forDay(ctx, today); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if _, err := c.salts.firstPartyKey(ctx); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if _, err := c.salts.forDay(ctx, today+1); err != nil {
		c.log.Warn("could not prepare tomorrow's visitor-id salt; will retry", "err", err)
	}
	return nil
}

// Run keeps the salts current until ctx ends: it creates tomorrow's salt ahead of midnight
// UTC, forgets and deletes the salts of days before yesterday.
func (c *Collector) Run(ctx context.Context) error {
	for {
		c.maintain(ctx)
		t := time.NewTimer(c.maintainEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Collector) maintain(ctx context.Context) {
	today := dayOf(c.now().UnixMilli())
	for _, d := range []int64{today, today + 1} {
		if _, err := c.salts.forDay(ctx, d); err != nil && ctx.Err() == nil {
			c.log.Warn("could not load the visitor-id salt; will retry", "day", dayName(d), "err", err)
		}
	}
	c.salts.forget(today - 1)
	if c.cleanedDay == today {
		return
	}
	n, err := c.salts.deleteBefore(ctx, today-1)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("could not delete old visitor-id salts; will retry", "err", err)
		}
		return
	}
	c.cleanedDay = today
	if n > 0 {
		c.log.Info("deleted old visitor-id salts", "count", n, "kept_from", dayName(today-1))
	}
}

// Stop refuses new events and waits for publishes in flight, bounded by ctx.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("collector: %d publishes still in flight: %w", c.pending.Load(), ctx.Err())
	}
}

// Handler serves POST /api/event (and OPTIONS; other methods get 405) and the Measurement
// Protocol endpoint POST /mp/collect (mp.go).
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(MPPath, c.serveMP)
	mux.HandleFunc("/", c.serveHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The beacon path straight away: a ServeMux match allocates, once per beacon.
		// Everything else goes through the mux (path cleaning, redirects).
		if r.URL.Path == Path {
			c.serveHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Header values of every accepted beacon, shared by all answers: net/http only reads them.
var (
	textPlainHeader = []string{"text/plain; charset=utf-8"}
)

const allowed = "POST, OPTIONS"

func (c *Collector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		c.m.events.WithLabelValues(resultNotFound).Inc()
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %q: send events with POST %s", clip(r.URL.Path, 100), Path))
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		w.Header().Set("Allow", allowed)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		c.m.events.WithLabelValues(resultMethod).Inc()
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: send events with POST", clip(r.Method, 20), Path))
		return
	}

	t0 := time.Now()
	c.m.inFlight.Inc()
	res := c.collect(r)
	c.m.inFlight.Dec()
	switch res.result {
	case "": // counted where the events were dropped (admit)
	case resultAccepted:
		c.m.accepted.Add(float64(max(res.count, 1)))
	default:
		c.m.events.WithLabelValues(res.result).Add(float64(max(res.count, 1)))
	}

	switch {
	case res.code == http.StatusAccepted:
		h := w.Header()
		if res.dropped != "" {
			h.Set(DroppedHeader, res.dropped)
		}
		h["Content-Type"] = textPlainHeader
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "ok")
	default:
		if res.retry {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(c.cfg.RetryAfter.Seconds()))))
		}
		writeError(w, res.code, res.msg)
	}
	if res.code == http.StatusAccepted {
		c.m.acceptedDuration.Observe(time.Since(t0).Seconds())
	} else {
		c.m.duration.WithLabelValues(strconv.Itoa(res.code)).Observe(time.Since(t0).Seconds())
	}
}

// outcome is the answer to one POST.
type outcome struct {
	code    int
	msg     string // error message for codes other than 202
	result  string // metric label
	count   int    // events the result applies to
	retry   bool   // add Retry-After
	dropped string // reason a 202 was not published
}

func reject(code int, result, msg string) outcome {
	return outcome{code: code, result: result, msg: msg}
}

func (c *Collector) collect(r *http.Request) outcome {
	if !jsonCapable(r.Header.Get("Content-Type")) {
		return reject(http.StatusUnsupportedMediaType, resultUnsupported, fmt.Sprintf(
			"unsupported Content-Type %q: send the event as a JSON object with Content-Type application/json or text/plain",
			clip(r.Header.Get("Content-Type"), 100)))
	}
	limit := c.cfg.MaxBodyBytes
	tooLarge := func() outcome {
		return reject(http.StatusRequestEntityTooLarge, resultTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes; send one event per request and keep props short", limit))
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	body := bodyPool.Get().(*bodyBuffer)
	defer putBody(body)
	buf := &body.buf
	buf.Reset()
	body.limit = io.LimitedReader{R: r.Body, N: limit + 1}
	if _, err := buf.ReadFrom(&body.limit); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return reject(http.StatusBadRequest, resultCanceled, "the request body could not be read: "+err.Error())
	}
	if int64(buf.Len()) > limit {
		return tooLarge()
	}

	b, err := DecodeBeacon(buf.Bytes(), c.cfg.MaxSites)
	if err != nil {
		c.log.Debug("rejected event", "reason", err.Error())
		return reject(http.StatusBadRequest, resultInvalid, err.Error())
	}

	uaString := r.UserAgent()
	ua := c.ua.Parse(uaString)
	if ua.Bot {
		return outcome{code: http.StatusAccepted, result: resultBot, count: len(b.Sites), dropped: "bot"}
	}

	ctx := c.deadlines.forRequest(r.Context(), time.Now())
	dropped, err := c.admit(ctx, b)
	if err != nil {
		// Declared here, not before the check: errors.As moves its target to the heap.
		var bad *InputError
		if errors.As(err, &bad) {
			return outcome{code: http.StatusBadRequest, result: resultInvalid, count: len(b.Sites), msg: bad.Error()}
		}
		c.saltLog.do(func(suppressed int64) {
			c.log.WarnContext(ctx, "site list unavailable; answering 503", "err", err, "suppressed", suppressed)
		})
		return outcome{code: http.StatusServiceUnavailable, result: resultUnavailable, count: len(b.Sites), retry: true,
			msg: "the collector cannot read the site list right now (store unavailable); retry later"}
	}
	if len(b.Sites) == 0 {
		return outcome{code: http.StatusAccepted, dropped: dropped}
	}
	now := c.now().UnixMilli()
	// The client address lives only in this function: it is looked up and hashed into the
	// visitor ids, and no event, log line or metric carries it.
	ip := clientip.Of(r, c.cfg.TrustedProxies)
	loc := c.locate(ip)
	// Nearly every beacon names one site: its ids stay on the stack.
	var idBuf [4]uint64
	ids, err := c.visitorIDs(ctx, idBuf[:0], b, ip, uaString, now)
	if err != nil {
		c.saltLog.do(func(suppressed int64) {
			c.log.WarnContext(ctx, "visitor-id salt unavailable; answering 503", "err", err, "suppressed", suppressed)
		})
		return outcome{code: http.StatusServiceUnavailable, result: resultUnavailable, count: len(b.Sites), retry: true,
			msg: "the collector cannot compute visitor ids right now (salt store unavailable); retry later"}
	}

	msgs, err := c.build(b, ua, loc, ids, now)
	if err != nil {
		c.log.ErrorContext(ctx, "could not encode an event", "err", err)
		return outcome{code: http.StatusInternalServerError, result: resultError, count: len(b.Sites),
			msg: "internal error: the event could not be encoded"}
	}
	res := c.publish(ctx, msgs)
	if res.code == http.StatusAccepted {
		res.dropped = dropped
	}
	return res
}

// admit keeps in b.Sites the sites that take b's event and counts the others as
// unknown_site (never added, and Config.OpenSites is off) or foreign_hostname (the page's
// hostname is not one of the site's). In open mode an unknown site is created, allowing the
// page's hostname. It returns why sites were dropped, for the X-Glimpse-Dropped header.
func (c *Collector) admit(ctx context.Context, b *Beacon) (string, error) {
	host := normalizeHost(b.page.Hostname())
	kept := b.Sites[:0]
	var dropped []string
	for _, site := range b.Sites {
		s, ok, err := c.sites.Lookup(ctx, site)
		if err != nil {
			return "", err
		}
		if !ok && c.cfg.OpenSites {
			var created bool
			if _, err := (sites.Site{Domain: site, Hostnames: sites.DefaultHostnames(site)}).Normalize(); err != nil {
				// not a name a site can have ("*", ...): the sender can fix it
				return "", inputErr("d", "%q cannot be a site id: %v", clip(site, 100), err)
			}
			if s, created, err = c.sites.EnsureOpen(ctx, site, host); err != nil {
				return "", err
			}
			if created {
				c.log.Info("created a site on its first event (collector.open-sites)", "site", site, "hostnames", s.Hostnames)
			}
			ok = true
		}
		switch {
		case !ok:
			c.m.events.WithLabelValues(resultUnknownSite).Inc()
			dropped = append(dropped, fmt.Sprintf("%s: %q is not a site of this Glimpse; add it with `glimpse sites add %s`",
				resultUnknownSite, clip(site, 100), clip(site, 100)))
		case !s.AllowsHostname(host):
			c.m.events.WithLabelValues(resultForeignHostname).Inc()
			allowed := clip(strings.Join(s.Hostnames, ","), 200)
			dropped = append(dropped, fmt.Sprintf("%s: pages on %q do not count for %q, which allows %s; to count them: glimpse sites add %s --update --hostnames=%s,%s",
				resultForeignHostname, clip(host, 100), clip(site, 100), allowed, clip(site, 100), allowed, clip(host, 100)))
		default:
			kept = append(kept, site)
		}
	}
	b.Sites = kept
	return strings.Join(dropped, "; "), nil
}

// visitorIDs appends to ids one visitor id per site of b; ip is the client's address.
func (c *Collector) visitorIDs(ctx context.Context, ids []uint64, b *Beacon, ip netip.Addr, ua string, nowMS int64) ([]uint64, error) {
	if b.FirstPartyID != "" {
		k, err := c.salts.firstPartyKey(ctx)
		if err != nil {
			return nil, err
		}
		for _, site := range b.Sites {
			ids = append(ids, firstPartyID(k, site, b.FirstPartyID))
		}
		return ids, nil
	}
	k, err := c.salts.forDay(ctx, dayOf(nowMS))
	if err != nil {
		return nil, err
	}
	for _, site := range b.Sites {
		ids = append(ids, cookielessID(k, site, ip, ua))
	}
	return ids, nil
}

// build enriches b into one encoded message per site.
func (c *Collector) build(b *Beacon, ua UserAgent, loc geo.Location, ids []uint64, nowMS int64) ([]bus.Message, error) {
	msgs := make([]bus.Message, 0, len(b.Sites))
	tmpl := enrich(b, ua, nowMS)
	tmpl.Country, tmpl.Region, tmpl.City = loc.Country, loc.Region, loc.City
	for i, site := range b.Sites {
		e := tmpl
		e.Site, e.VisitorID = site, ids[i]
		key, value, err := event.EncodeMessage(&e)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, bus.Message{Key: key, Value: value})
	}
	return msgs, nil
}

// enrich builds the event of b, without its site and visitor id.
func enrich(b *Beacon, ua UserAgent, nowMS int64) event.Event {
	p := pageOf(b.page, b.HashRouting)
	source, referrer := sourceOf(b.Referrer, p.Hostname, p.refParam)
	return event.Event{
		Time:           nowMS,
		Name:           b.Name,
		Hostname:       p.Hostname,
		Path:           p.Path,
		Referrer:       referrer,
		Source:         source,
		UTMSource:      p.UTM[0],
		UTMMedium:      p.UTM[1],
		UTMCampaign:    p.UTM[2],
		UTMTerm:        p.UTM[3],
		UTMContent:     p.UTM[4],
		Browser:        ua.Browser,
		BrowserVersion: ua.BrowserVersion,
		OS:             ua.OS,
		OSVersion:      ua.OSVersion,
		Device:         ua.Device,
		Props:          b.Props,
		Revenue:        b.Revenue,
		Interactive:    b.Interactive && b.Name != EngagementName,
		EngagementMS:   b.EngagementMS,
		ID:             b.ID,
	}
}

func (c *Collector) publish(ctx context.Context, msgs []bus.Message) outcome {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return outcome{code: http.StatusServiceUnavailable, result: resultUnavailable, count: len(msgs), retry: true,
			msg: "the collector is shutting down; retry shortly"}
	}
	c.inflight.Add(1)
	c.pending.Add(1)
	c.mu.Unlock()
	defer func() {
		c.pending.Add(-1)
		c.inflight.Done()
	}()

	t0 := time.Now()
	err := c.bus.Publish(ctx, c.cfg.Topic, msgs...)
	took := time.Since(t0).Seconds()
	switch {
	case err == nil:
		c.m.publishOK.Observe(took)
		return outcome{code: http.StatusAccepted, result: resultAccepted, count: len(msgs)}
	case errors.Is(err, bus.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		c.m.publish.WithLabelValues("unavailable").Observe(took)
		c.publishLog.do(func(suppressed int64) {
			c.log.WarnContext(ctx, "bus unavailable; answering 503", "err", err, "suppressed", suppressed)
		})
		return outcome{code: http.StatusServiceUnavailable, result: resultUnavailable, count: len(msgs), retry: true,
			msg: "the event bus is unavailable or too slow right now; retry later, with the same \"eid\" so the event counts once even if this attempt reached the bus after all"}
	default:
		c.m.publish.WithLabelValues("error").Observe(took)
		c.publishLog.do(func(suppressed int64) {
			c.log.ErrorContext(ctx, "publish failed", "err", err, "suppressed", suppressed)
		})
		return outcome{code: http.StatusInternalServerError, result: resultError, count: len(msgs),
			msg: "internal error: the event could not be stored; nothing was stored"}
	}
}

// jsonCapable reports whether a Content-Type can carry a JSON body. A missing type is
// accepted (server-side clients often omit it), and so is text/plain, which
// navigator.sendBeacon uses to avoid a CORS preflight.
func jsonCapable(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch mt {
	case "", "application/json", "text/plain", "text/json", "application/octet-stream":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// bodyBuffer reads one request body. The limiting reader lives next to the buffer so that
// reading a body allocates neither.
type bodyBuffer struct {
	buf   bytes.Buffer
	limit io.LimitedReader
}

var bodyPool = sync.Pool{New: func() any {
	b := &bodyBuffer{}
	b.buf.Grow(2048)
	return b
}}

func putBody(b *bodyBuffer) {
	b.limit = io.LimitedReader{} // do not keep the request's body reachable
	if b.buf.Cap() <= 64<<10 {
		bodyPool.Put(b)
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// throttle lets a repeated log line through at most once per throttleEvery and counts what
// it held back, so an outage does not flood the log with one line per request.
type throttle struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Int64
}

const throttleEvery = 10 * time.Second

func (t *throttle) do(log func(suppressed int64)) {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(throttleEvery) || !t.last.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		return
	}
	log(t.suppressed.Swap(0))
}
