package collector

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineGrain is how long requests share one deadline timer: a request's deadline is
// between PublishTimeout and PublishTimeout+deadlineGrain after it arrived.
const deadlineGrain = 10 * time.Millisecond

// sharedDeadlines hands out the deadlines that bound each request's store lookups and bus
// publish. A context.WithTimeout per request starts and stops a runtime timer on every
// beacon, a few per cent of the collector's CPU at high rates; requests that arrive within
// deadlineGrain of each other share one timer instead, which fires on its own and is never
// stopped early (so at most timeout/deadlineGrain of them are pending at once).
type sharedDeadlines struct {
	timeout time.Duration
	cur     atomic.Pointer[deadlineSlot]
	mu      sync.Mutex // serialises the creation of slots
}

type deadlineSlot struct {
	ctx     context.Context
	cancel  context.CancelFunc // called by the context's own timer; kept for vet's sake
	joinEnd int64              // Unix ns: requests arriving before this join ctx
}

// forRequest returns the context of one request: parent's values (its request id for the
// log), not its cancellation (a beacon whose sender hung up is still stored), and a deadline
// at least timeout from now.
func (d *sharedDeadlines) forRequest(parent context.Context, now time.Time) context.Context {
	return requestContext{Context: context.WithoutCancel(parent), deadline: d.slot(now.UnixNano())}
}

func (d *sharedDeadlines) slot(now int64) context.Context {
	if s := d.cur.Load(); s != nil && now < s.joinEnd {
		return s.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && now < s.joinEnd {
		return s.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, now).Add(d.timeout+deadlineGrain))
	d.cur.Store(&deadlineSlot{ctx: ctx, cancel: cancel, joinEnd: now + int64(deadlineGrain)})
	return ctx
}

// requestContext has the values of Context and the deadline, Done and Err of deadline.
type requestContext struct {
	context.Context // values only: made with context.WithoutCancel
	deadline        context.Context
}

func (c requestContext) Deadline() (time.Time, bool) { return c.deadline.Deadline() }
func (c requestContext) Done() <-chan struct{}       { return c.deadline.Done() }
func (c requestContext) Err() error                  { return c.deadline.Err() }

// AfterFunc lets contexts derived from c (context.WithCancel and the like) follow its
// deadline without a goroutine each: the context package looks for this method.
func (c requestContext) AfterFunc(f func()) func() bool { return context.AfterFunc(c.deadline, f) }
