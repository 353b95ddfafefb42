package drivers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotQueued is returned by a Queue's StartRead or StartWrite for an
// operation the queue does not take (a size or flags its backend serves
// better with a blocking call): the caller performs it through the Store
// instead.
var ErrNotQueued = errors.New("operation not taken by the queue")

// AsyncStore is a Store that can also start a read or a write and return
// at once, its result delivered later through a Queue that the caller
// polls: a backend with its own asynchronous I/O (librados aio) then keeps
// many requests in flight without an OS thread blocked on each, and no
// backend thread ever runs the caller's code. A blocker serves READ and
// WRITE through it when its store has it; other callers need not care.
type AsyncStore interface {
	Store
	// NewQueue returns a queue to start operations through. wake, when not
	// nil, is the futex word of the goroutine that polls the queue, and
	// every completion wakes it: a poller about to sleep stores 1 in the
	// word, checks Ready, and sleeps (FUTEX_WAIT, not private: the word may
	// live in a mapping shared between processes) while the word holds 1;
	// a completion, once Ready reports it, swaps the word from 1 to 0 and
	// wakes every sleeper. xseg.Port.WaitFor sleeps that way.
	NewQueue(wake *atomic.Uint32) (Queue, error)
}

// A Queue starts reads and writes and delivers their results. One
// goroutine at a time calls Start, Poll and Close; any may call Ready.
type Queue interface {
	// StartRead starts Read(ctx, name, p, off) and returns without waiting
	// for it. On a nil return, done runs exactly once, from a later Poll,
	// with Read's result, p filled (zeros past the end of the object, and
	// for a missing one); on an error (an invalid name or range, a closed
	// store, ctx ended, ErrNotQueued) done never runs. An operation started
	// may wait in the queue until the next Poll, which hands it to the
	// backend: start a batch, then Poll. p belongs to the store until done
	// runs: the caller must neither read nor write it in between, and it
	// may be memory the Go runtime does not manage (a shared mapping).
	StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error
	// StartWrite starts Write(ctx, name, p, off, flags) and returns without
	// waiting for it, with the rules of StartRead; the write is as durable
	// as Write's when done runs. A write of nothing is a flush (Flush when
	// flags ask for one), as in Write.
	StartWrite(ctx context.Context, name string, p []byte, off int64, flags WriteFlags, done func(error)) error
	// Ready reports whether an operation has completed and waits for Poll.
	Ready() bool
	// Poll runs done of every operation completed so far, on the calling
	// goroutine, and returns how many ran.
	Poll() int
	// Close waits for every operation started to complete, running their
	// done, and releases the queue.
	Close()
}

// A Sleeper is a Queue whose completions cannot wake the poller's futex
// word themselves (io_uring completions): the poller sleeps through Sleep
// instead of on the word, as long as Sleep reports true.
type Sleeper interface {
	// Sleep is called by the poller in place of its futex sleep, with the
	// word at 1 and nothing ready. It returns once the word is woken, an
	// operation completes, timeout passes (0: no limit), or earlier (a
	// signal); false, at once, when the queue has nothing in flight and
	// the poller sleeps on the word itself.
	Sleep(timeout time.Duration) bool
}

// Completions gathers the results of operations that end on other
// goroutines for the one goroutine that polls them, as a Queue's Poll
// does. Its zero value is empty and ready for use. Once its buffers have
// grown to the depth used, it allocates nothing.
type Completions struct {
	mu      sync.Mutex
	done    []completion
	running []completion // Run's, swapped with done
	ready   atomic.Bool
}

type completion struct {
	done func(error)
	err  error
}

// Add queues done(err) for the next Run and makes Ready true; the caller
// then wakes the poller.
func (c *Completions) Add(done func(error), err error) {
	c.mu.Lock()
	c.done = append(c.done, completion{done, err})
	c.ready.Store(true)
	c.mu.Unlock()
}

// Ready reports whether Add queued something since the last Run.
func (c *Completions) Ready() bool { return c.ready.Load() }

// Run runs what Add queued, on the calling goroutine, and returns how
// many ran. A done that Adds again runs at the next Run.
func (c *Completions) Run() int {
	if !c.ready.Load() {
		return 0
	}
	c.mu.Lock()
	run := c.done
	c.done, c.running = c.running[:0], nil
	c.ready.Store(false)
	c.mu.Unlock()
	for _, d := range run {
		d.done(d.err)
	}
	clear(run)
	c.running = run
	return len(run)
}
