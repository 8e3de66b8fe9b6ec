package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
)

// The forward of one attempt to a network upstream: the request sent upstream (by
// h1Client, or http.Transport for HTTPS) and the copy of the answer. It does what
// httputil.ReverseProxy did here, without building a proxy, cloning the request and its
// header and wrapping the body for every request. The wrapper mattered most: a request
// body not known to be in memory is sent in a write of its own after the header, so every
// beacon cost two loopback writes here and two reads at the collector.

// isHopHeader reports the headers that belong to one connection (RFC 9110, 7.6.1): they
// are passed on in neither direction, and neither are the headers a Connection header
// names.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isForwardingHeader reports the request headers the gateway sets or settles itself: what
// a client sent under these names never reaches an upstream.
func isForwardingHeader(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", requestIDHeader:
		return true
	case "Expect": // the gateway has read the body already; the upstream need not invite it
		return true
	}
	return false
}

// namedByConnection reports whether the Connection header values conn name k.
func namedByConnection(conn []string, k string) bool {
	for _, v := range conn {
		for token := range strings.SplitSeq(v, ",") {
			if token = strings.TrimSpace(token); token != "" && textproto.CanonicalMIMEHeaderKey(token) == k {
				return true
			}
		}
	}
	return false
}

// hasToken reports whether one of the comma-separated header values holds token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Header values every forwarded request shares. The transport only reads a request's
// header, and each slice has room for exactly its value, so an Add copies it.
var (
	protoHTTP   = []string{"http"}
	protoHTTPS  = []string{"https"}
	noUserAgent = []string{""} // keeps the transport from sending its own User-Agent
	teTrailers  = []string{"trailers"}
)

// outboundHeader is the header of the request sent upstream: the client's without
// hop-by-hop and forwarding headers, then X-Forwarded-For (the client as this gateway
// determined it, trusted proxies applied, so upstreams only need to trust the gateways),
// X-Forwarded-Host, X-Forwarded-Proto and the request id. The value slices are the
// client's, shared rather than copied.
func outboundHeader(r *http.Request, client netip.Addr, id string) http.Header {
	in := r.Header
	conn := in["Connection"]
	out := make(http.Header, len(in)+4)
	for k, vv := range in {
		if isHopHeader(k) || isForwardingHeader(k) || (conn != nil && namedByConnection(conn, k)) {
			continue
		}
		out[k] = vv
	}
	if hasToken(in["Te"], "trailers") {
		out["Te"] = teTrailers // the one hop-by-hop value that says something end to end
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = noUserAgent
	}
	if client.IsValid() {
		out["X-Forwarded-For"] = []string{client.String()}
	}
	out["X-Forwarded-Host"] = []string{r.Host}
	if r.TLS != nil {
		out["X-Forwarded-Proto"] = protoHTTPS
	} else {
		out["X-Forwarded-Proto"] = protoHTTP
	}
	if v := in[requestIDHeader]; len(v) == 1 && v[0] == id {
		out[requestIDHeader] = v
	} else {
		out[requestIDHeader] = []string{id}
	}
	return out
}

// outboundRequest is r addressed to target, with header and the buffered body. GetBody
// lets the transport send it again on a fresh connection when a reused one failed before
// any of it was written.
func outboundRequest(ctx context.Context, r *http.Request, target *url.URL, header http.Header, body []byte) *http.Request {
	u := *r.URL
	u.Scheme, u.Host, u.User, u.Fragment, u.RawFragment = target.Scheme, target.Host, nil, "", ""
	if target.Path != "" || target.RawPath != "" {
		u.Path, u.RawPath = joinURLPath(target, r.URL)
	}
	if target.RawQuery != "" {
		if u.RawQuery == "" {
			u.RawQuery = target.RawQuery
		} else {
			u.RawQuery = target.RawQuery + "&" + u.RawQuery
		}
	}
	out := http.Request{
		Method: r.Method, URL: &u, Host: r.Host, Header: header,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: int64(len(body)), Body: http.NoBody,
	}
	if len(body) > 0 {
		// A *bytes.Reader behind io.NopCloser is a body the transport knows is in
		// memory: it writes the header and the body in one go.
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.Body, _ = out.GetBody()
	}
	return out.WithContext(ctx)
}

// joinURLPath appends the request's path to an upstream address that has one, as
// httputil.ReverseProxy does, keeping an escaped form when either has one.
func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// copyBuffers hold the response bodies on their way to the client; without a pool each
// response would allocate 32 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// maxDrain is how much of an answer that is not passed on is read so that its connection
// can serve the next request; a longer one closes the connection instead.
const maxDrain = 64 << 10

// discard drops an answer that is not passed on.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
}

// Why copying an answer to the client broke off.
var (
	errUpstreamBroke = errors.New("upstream response broke off")
	errClientGone    = errors.New("client stopped reading")
)

// copyResponse writes the upstream's answer to the client: its header without hop-by-hop
// fields, its status, its body (flushed as it arrives when its length is unknown or it is
// an event stream, so streamed answers stream through) and its trailers. It returns
// errUpstreamBroke or errClientGone, wrapped, when the body could not be passed on whole.
func copyResponse(w http.ResponseWriter, resp *http.Response) error {
	defer resp.Body.Close()
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if isHopHeader(k) || (conn != nil && namedByConnection(conn, k)) {
			continue
		}
		if prior, ok := h[k]; ok {
			// Added to what the gateway set (as httputil.ReverseProxy did), copying the
			// prior values, which may be shared.
			h[k] = append(prior[:len(prior):len(prior)], vv...)
		} else {
			h[k] = vv // the response's header is this request's alone
		}
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	if resp.ContentLength != 0 {
		var flusher *http.ResponseController
		if resp.ContentLength < 0 || isEventStream(resp.Header) {
			flusher = http.NewResponseController(w)
		}
		bp := copyBuffers.Get().(*[]byte)
		err := copyBody(w, resp.Body, *bp, flusher)
		copyBuffers.Put(bp)
		if err != nil {
			return err
		}
	}
	if len(resp.Trailer) > 0 {
		_ = resp.Body.Close() // fills resp.Trailer
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				h.Add(http.TrailerPrefix+k, v)
			}
		}
	}
	return nil
}

func copyBody(w io.Writer, body io.Reader, buf []byte, flusher *http.ResponseController) error {
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return errors.Join(errClientGone, err)
			}
			if flusher != nil {
				if err := flusher.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return errors.Join(errClientGone, err)
				}
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return errors.Join(errUpstreamBroke, rerr)
		}
	}
}

// isEventStream reports a server-sent event stream, which is flushed as it arrives
// whatever its length.
func isEventStream(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}
