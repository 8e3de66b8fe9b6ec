package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Client sends a request to a plain-HTTP upstream and reads its answer on the calling
// goroutine, over keep-alive HTTP/1.1 connections kept per upstream. http.Transport hands
// every request to a writer and a reader goroutine of its connection and back; on a
// gateway, where each beacon is one small request, those hand-offs (and the wake-ups of
// idle threads they cause) cost as much CPU as the rest of the forward. HTTPS upstreams
// still go through http.Transport.
type h1Client struct {
	dialer      net.Dialer
	idleTimeout time.Duration // an idle connection older than this is closed, not reused
	maxIdle     int           // idle connections kept per upstream
	now         func() time.Time
}

// connPool holds the idle connections to one upstream, most recently used last.
type connPool struct {
	mu     sync.Mutex
	idle   []*h1Conn
	closed bool
}

type h1Conn struct {
	nc      net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	written int // bytes written to nc for the current request
	idleAt  time.Time
}

// Write counts what reaches the socket, so a failed request on a reused connection is
// known to have sent nothing.
func (c *h1Conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.written += n
	return n, err
}

// get returns an idle connection that is still open, or nil. Connections idle for too
// long and those the upstream has closed meanwhile (it restarted, or its own idle timeout
// struck first) are closed here rather than failing a request.
func (p *connPool) get(now time.Time, idleTimeout time.Duration) *h1Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The oldest connection is the first to go stale: drop it when it has, so that a
	// pool that grew in a burst shrinks again.
	if len(p.idle) > 0 && now.Sub(p.idle[0].idleAt) > idleTimeout {
		_ = p.idle[0].nc.Close()
		p.idle = append(p.idle[:0], p.idle[1:]...)
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.idleAt) <= idleTimeout && peerOpen(c.nc) {
			return c
		}
		_ = c.nc.Close()
	}
	return nil
}

// put keeps c for the next request, or closes it when the pool is full or closed.
func (p *connPool) put(c *h1Conn, now time.Time, maxIdle int) {
	c.idleAt = now
	p.mu.Lock()
	if !p.closed && len(p.idle) < maxIdle {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		_ = c.nc.Close()
	}
}

// close closes the idle connections and every connection returned later.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

// An instant long past: a deadline set to it stops the reads and writes under way.
var longAgo = time.Unix(1, 0)

// roundTrip sends req (whose body is in memory, so GetBody can send it again) to
// hostport and returns the answer. The connection goes back to the pool when the answer's
// body has been read to its end and closed; the end of ctx (the route's deadline, or the
// client going away) ends a request that waits and closes its connection.
func (h *h1Client) roundTrip(ctx context.Context, pool *connPool, hostport string, req *http.Request) (*http.Response, error) {
	for {
		c := pool.get(h.now(), h.idleTimeout)
		reused := c != nil
		if !reused {
			nc, err := h.dialer.DialContext(ctx, "tcp", hostport)
			if err != nil {
				return nil, err
			}
			c = &h1Conn{nc: nc}
			c.br = bufio.NewReader(nc)
			c.bw = bufio.NewWriter(c)
		}
		resp, err := h.exchange(ctx, pool, c, req)
		if err != nil && reused && c.written == 0 && ctx.Err() == nil {
			// The reused connection broke before any of the request left: nothing reached
			// the upstream, so a fresh connection may carry it, whatever the method.
			if req.GetBody != nil {
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				req.Body = body
			}
			continue
		}
		return resp, err
	}
}

// exchange writes req on c and reads the answer's header.
func (h *h1Client) exchange(ctx context.Context, pool *connPool, c *h1Conn, req *http.Request) (*http.Response, error) {
	// The context ends at the route's deadline or when the client goes away; either
	// stops the reads and writes under way. (A deadline set on the connection for every
	// request as well would cost two more timer updates per request.)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(longAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		return nil, err
	}
	c.written = 0
	// Request.Write sends the header and an in-memory body through c.bw, so one Flush
	// puts the whole request on the wire in one write.
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Informational answers (103 Early Hints) precede the real one. The request
		// carries no Expect or Upgrade, so 100 and 101 do not come.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		resp.Body = &h1Body{rc: resp.Body, c: c, pool: pool, h: h, stop: stop, keep: !resp.Close, eof: resp.Body == http.NoBody}
		return resp, nil
	}
}

// h1Body is an answer's body; closing it returns the connection to the pool if the body
// was read to its end, and closes the connection otherwise.
type h1Body struct {
	rc   io.ReadCloser
	c    *h1Conn
	pool *connPool
	h    *h1Client
	stop func() bool
	keep bool // the upstream did not ask to close the connection
	eof  bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("read on a closed upstream answer")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	stillOurs := b.stop() // false: the context ended and poisoned the connection's deadline
	if !b.eof || !b.keep || !stillOurs {
		// Reading the rest could take as long as the upstream likes; a new connection
		// costs less.
		return b.c.nc.Close()
	}
	b.pool.put(b.c, b.h.now(), b.h.maxIdle)
	return nil
}
