package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/clientip"
	"github.com/glimpse-analytics/glimpse/services/registry"
)

// route is one family of proxied paths and the service behind it.
type route struct {
	name      string // metrics label
	service   string // registry service name
	what      string // how error messages name the service
	maxBytes  int64
	timeout   time.Duration // for the whole request, retries included
	siteLimit *keyedLimiter
	sites     func(r *http.Request, body []byte) []string
	// readOnlyPosts are POST paths that only read, so sending them again is safe.
	readOnlyPosts []string
}

// What failed in an attempt that wrote nothing to the client.
const (
	failDial      = "dial"      // no connection: nothing reached the upstream
	failTransport = "transport" // the connection broke; the upstream may have seen the request
	failStatus    = "status"    // 502/503/504 from the upstream, held back to retry
	failTimeout   = "timeout"   // the route's time ran out
	failCanceled  = "canceled"  // the client went away
)

// statusError is an upstream answer that counts as a failure of that upstream.
type statusError struct{ code int }

func (e *statusError) Error() string { return "upstream answered " + strconv.Itoa(e.code) }

// errAborted is a response that broke off after it had started.
var errAborted = errors.New("upstream response aborted")

func (g *Gateway) upstream(rt *route) http.Handler {
	return g.instrument(rt.name, func(w http.ResponseWriter, r *http.Request) { g.serveUpstream(w, r, rt) })
}

// serveUpstream limits, buffers and forwards one request.
func (g *Gateway) serveUpstream(w http.ResponseWriter, r *http.Request, rt *route) {
	if r.ContentLength > rt.maxBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is %d bytes; the limit is %d", r.ContentLength, rt.maxBytes))
		return
	}
	now := g.deps.Now()
	client := clientip.Of(r, g.cfg.TrustedProxies)
	if key := ipKey(client); key != "" {
		if ok, wait := g.ipLimit.allow(now, key); !ok {
			g.tooMany(w, rt, "ip_rate", wait, fmt.Sprintf("too many requests from your address (more than %v per second)", g.cfg.RateLimit.IPRate))
			return
		}
	}
	// Bodies are small and bounded: read them whole, so that a retry can send them again.
	// The buffer is reused unless an HTTP upstream may still be sending it: a transport can
	// go on reading a request body after RoundTrip returned.
	buf := bodyBuffers.Get().(*bytes.Buffer)
	reuse := true
	defer func() {
		if reuse && buf.Cap() <= maxReusedBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, rt.maxBytes))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes", rt.maxBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "could not read the request body: "+err.Error())
		return
	}
	if rt.siteLimit != nil {
		if sites := rt.sites(r, body); len(sites) > 0 {
			if ok, wait := rt.siteLimit.allow(now, sites...); !ok {
				g.tooMany(w, rt, "site_rate", wait, fmt.Sprintf("too many requests for site %s through this gateway", strings.Join(sites, ",")))
				return
			}
		}
	}
	var ctx context.Context
	var cancel func()
	if len(g.deps.InProc) > 0 {
		// glimpse all: the upstreams run in this process (see deadlineCtx).
		ctx, cancel = withLazyDeadline(r.Context(), time.Now().Add(rt.timeout))
	} else {
		ctx, cancel = context.WithTimeout(r.Context(), rt.timeout)
	}
	defer cancel()
	insts, err := g.deps.Registry.Instances(ctx, rt.service)
	if err != nil || len(insts) == 0 {
		if err != nil && g.lookupWarn.allow(now) {
			// Once per interval, not per request: while the registry has no answer every
			// request fails the same way.
			g.deps.Log.Warn("registry lookup failed; answering 503", "service", rt.service, "err", err, "request_id", r.Header.Get(requestIDHeader))
		}
		g.unavailable(w, rt, reasonNoInstance, "")
		return
	}
	for _, inst := range insts {
		if _, ok := g.deps.InProc[inst.Address]; !ok {
			reuse = false
		}
	}
	g.forward(ctx, w, r, rt, insts, body, client)
}

// bodyBuffers keeps the request body buffers of forwards to in-process upstreams; one that
// grew past maxReusedBody (a large query) goes to the collector of garbage instead.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxReusedBody = 64 << 10

// forward sends the request to the least loaded admissible instance and, when that fails
// before anything was written to the client, to another one if that is safe:
//
//   - a failed dial reached nobody, so any request (a beacon too) goes elsewhere;
//   - a request that only reads (GET, HEAD, OPTIONS, or a POST of a read-only path) also
//     goes elsewhere after a broken connection or a 502/503/504;
//   - anything else (a beacon the collector may have published) is never sent twice;
//   - no attempt starts once the route's time is up, and each instance is tried once.
func (g *Gateway) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, insts []registry.Instance, body []byte, client netip.Addr) {
	replayable := isReadOnly(r, rt)
	var tried []string
	last := ""
	for attempt := 0; ; attempt++ {
		l, why := g.pool.acquire(insts, tried, g.next.Add(1)-1)
		if l == nil {
			if last == "" {
				last = why
			}
			g.unavailable(w, rt, why, last)
			return
		}
		more := attempt < g.cfg.Retries && len(insts) > len(tried)+1
		res := g.attemptOn(ctx, w, r, rt, l, body, client, replayable && more)
		if res.written {
			return
		}
		if res.kind == failCanceled {
			w.WriteHeader(499) // nobody is listening; recorded for the metrics only
			return
		}
		tried = append(tried, l.u.addr)
		last = res.kind
		if more && ctx.Err() == nil && (res.kind == failDial || (replayable && res.kind != failTimeout)) {
			g.m.retries.WithLabelValues(rt.name, res.kind).Inc()
			g.deps.Log.Debug("upstream failed; trying another instance", "route", rt.name, "upstream", l.u.addr, "failure", res.kind, "err", res.err, "request_id", r.Header.Get(requestIDHeader))
			continue
		}
		g.deps.Log.Warn("upstream failed", "route", rt.name, "upstream", l.u.addr, "failure", res.kind, "err", res.err, "attempts", attempt+1, "request_id", r.Header.Get(requestIDHeader))
		g.unavailable(w, rt, "upstream_failed", last)
		return
	}
}

type outcome struct {
	written bool   // the response (or its start) went to the client
	err     error  // what the breaker is told: nil, a failure, or context.Canceled
	kind    string // when nothing was written: which failure
	// abort: the response broke off after it had started; the client's connection is
	// cut (http.ErrAbortHandler) so that it cannot take a part for the whole.
	abort bool
}

// attemptOn runs one attempt on a leased upstream and reports the result to its breaker.
func (g *Gateway) attemptOn(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, l *lease, body []byte, client netip.Addr, retryStatus bool) (res outcome) {
	finished := false
	defer func() {
		if !finished {
			// A panic (http.ErrAbortHandler when an in-process response breaks off
			// midway): the upstream failed this request; release the lease and let the
			// server handle it.
			l.finish(errAborted)
		}
	}()
	res = g.attempt(ctx, w, r, rt, l.u, body, client, retryStatus)
	finished = true
	l.finish(res.err)
	if res.abort {
		panic(http.ErrAbortHandler)
	}
	return res
}

func (g *Gateway) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, u *upstream, body []byte, client netip.Addr, retryStatus bool) (res outcome) {
	if u.bad != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("%s instance %v", rt.what, u.bad))
		return outcome{written: true, err: u.bad}
	}
	if u.handler != nil {
		return attemptInProcess(ctx, w, r, u.handler, body)
	}

	out := outboundRequest(ctx, r, u.target, outboundHeader(r, client, r.Header.Get(requestIDHeader)), body)
	var resp *http.Response
	var err error
	if u.conns != nil {
		resp, err = g.h1.roundTrip(ctx, u.conns, u.hostport, out)
	} else {
		resp, err = g.transport.RoundTrip(out)
	}
	if err == nil && resp.StatusCode >= 500 {
		res.err = &statusError{code: resp.StatusCode}
		if retryStatus && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) {
			discard(resp)
			res.kind = failStatus
			return res
		}
	}
	if err == nil {
		res.written = true
		if cerr := copyResponse(w, resp); cerr != nil {
			res.abort = true
			if errors.Is(cerr, errUpstreamBroke) {
				res.err = cerr
				g.deps.Log.Debug("upstream response broke off", "route", rt.name, "upstream", u.addr, "err", cerr, "request_id", r.Header.Get(requestIDHeader))
			} else {
				res.err = context.Canceled // the client left: nothing to hold against the upstream
			}
			return res
		}
		if r.Context().Err() != nil {
			res.err = context.Canceled
		}
		return res
	}
	res.err = err
	switch {
	case r.Context().Err() != nil:
		res.err, res.kind = context.Canceled, failCanceled
	case isDialError(err):
		res.kind = failDial
	case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		res.kind = failTimeout
		res.err = fmt.Errorf("no answer within %s: %w", rt.timeout, ctx.Err())
	default:
		res.kind = failTransport
	}
	return res
}

// attemptInProcess hands the request to a handler in this process (glimpse all).
func attemptInProcess(ctx context.Context, w http.ResponseWriter, r *http.Request, h http.Handler, body []byte) (res outcome) {
	out := r.WithContext(ctx)
	out.ContentLength = int64(len(body))
	out.Body = http.NoBody
	if len(body) > 0 {
		out.Body = newBodyReader(body)
	}
	// The route's instrument already wraps w and records the status; only a bare writer
	// needs a wrapper of its own.
	sw, ok := w.(*statusWriter)
	if !ok || sw.wroteHeader {
		sw = &statusWriter{ResponseWriter: w, code: http.StatusOK}
	}
	h.ServeHTTP(sw, out)
	res.written = true
	switch {
	case r.Context().Err() != nil:
		res.err = context.Canceled
	case sw.code >= 500:
		res.err = &statusError{code: sw.code}
	}
	return res
}

// bodyReader is a request body read from memory: io.NopCloser(bytes.NewReader(b)) in one
// allocation instead of two, once per in-process request: it holds the reader by value.
type bodyReader struct{ r bytes.Reader }

func newBodyReader(b []byte) *bodyReader {
	br := &bodyReader{}
	br.r.Reset(b)
	return br
}

func (b *bodyReader) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *bodyReader) Close() error               { return nil }

// WriteTo keeps io.Copy's shortcut, as io.NopCloser does for a bytes.Reader.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) { return b.r.WriteTo(w) }

// isDialError reports whether err happened while connecting: the request never left.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isReadOnly reports whether sending r twice does no harm.
func isReadOnly(r *http.Request, rt *route) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return contains(rt.readOnlyPosts, strings.TrimSuffix(r.URL.Path, "/"))
	}
	return false
}

// unavailable answers 503 with Retry-After and a JSON error a person can act on.
func (g *Gateway) unavailable(w http.ResponseWriter, rt *route, reason, failure string) {
	g.m.rejected.WithLabelValues(rt.name, reason).Inc()
	var msg string
	switch {
	case reason == reasonBulkhead:
		msg = fmt.Sprintf("every %s is busy right now; retry shortly", rt.what)
	case failure == failTimeout:
		msg = fmt.Sprintf("the %s did not answer within %s; retry shortly", rt.what, rt.timeout)
	case failure == failDial || failure == failTransport || failure == failStatus:
		msg = fmt.Sprintf("the %s did not answer; retry shortly", rt.what)
	case reason == reasonBreakerOpen:
		msg = fmt.Sprintf("no %s is available right now (every instance is failing); retry shortly", rt.what)
	default:
		msg = fmt.Sprintf("no %s is available right now; retry shortly", rt.what)
	}
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(g.cfg.RetryAfter)))
	writeError(w, http.StatusServiceUnavailable, msg)
}

// everyInterval lets one event through per interval.
type everyInterval struct {
	interval time.Duration
	last     atomic.Int64 // unix nanoseconds
}

func (e *everyInterval) allow(now time.Time) bool {
	last := e.last.Load()
	return now.UnixNano()-last >= int64(e.interval) && e.last.CompareAndSwap(last, now.UnixNano())
}

// tooMany answers 429 with Retry-After.
func (g *Gateway) tooMany(w http.ResponseWriter, rt *route, reason string, wait time.Duration, msg string) {
	g.m.rejected.WithLabelValues(rt.name, reason).Inc()
	secs := retryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s; retry in %d s", msg, secs))
}
