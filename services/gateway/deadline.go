package gateway

import (
	"context"
	"sync"
	"time"
)

// deadlineCtx is a route's time limit on a request: context.WithTimeout, except that its
// timer starts only when someone first waits on Done. A proxied request always does (the
// transport waits on it), so nothing changes there; but an in-process upstream that only
// reads the deadline, or detaches from cancellation as the collector does for its publish,
// never needs the timer, and on the beacon path the timer and its bookkeeping were a
// measurable share of the gateway's cost. Err reports the deadline as soon as it has
// passed, timer or not, and a Done channel is closed no later than Err turns non-nil.
type deadlineCtx struct {
	context.Context // the request's context: values, and cancellation when the client leaves
	deadline        time.Time

	mu         sync.Mutex
	done       chan struct{} // nil until Done is first called
	err        error
	stopTimer  func() bool
	stopParent func() bool
	afterFuncs map[uint64]func() // registered by AfterFunc, run when the context ends
	nextFunc   uint64
}

// withLazyDeadline returns a context that ends at deadline or when parent ends, and the
// function that releases it (like a CancelFunc, it must be called).
func withLazyDeadline(parent context.Context, deadline time.Time) (*deadlineCtx, func()) {
	c := &deadlineCtx{Context: parent, deadline: deadline}
	return c, func() { c.end(context.Canceled) }
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	c.checkLocked()
	if c.err != nil {
		close(c.done)
		return c.done
	}
	c.stopTimer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) }).Stop
	c.stopParent = context.AfterFunc(c.Context, func() { c.end(c.Context.Err()) })
	return c.done
}

// AfterFunc runs f in its own goroutine once c ends, like context.AfterFunc. Contexts
// derived from c (context.WithCancel and friends) use it to follow c without a goroutine
// of their own.
func (c *deadlineCtx) AfterFunc(f func()) (stop func() bool) {
	c.Done() // from now on a timer ends c at its deadline
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	if c.afterFuncs == nil {
		c.afterFuncs = map[uint64]func(){}
	}
	id := c.nextFunc
	c.nextFunc++
	c.afterFuncs[id] = f
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, pending := c.afterFuncs[id]
		delete(c.afterFuncs, id)
		return pending
	}
}

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	return c.err
}

// checkLocked ends the context if its parent ended or its deadline passed.
func (c *deadlineCtx) checkLocked() {
	if c.err != nil {
		return
	}
	if err := c.Context.Err(); err != nil {
		c.endLocked(err)
	} else if !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

func (c *deadlineCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *deadlineCtx) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.stopTimer != nil {
		c.stopTimer()
		c.stopParent()
	}
	for id, f := range c.afterFuncs {
		delete(c.afterFuncs, id)
		go f()
	}
}
