package blocker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/xseg"
)

// Loop returns a peers.Loop (for peers.RunLoop) that serves the ports as
// peers.Server with b as the handler would, up to inflight requests at
// once per port, except for READ and WRITE when the store is a
// drivers.AsyncStore: one goroutine per port accepts requests, starts
// those through a drivers.Queue of its own, and answers them as the
// queue's completions come in, which wake the port like a new request.
// Requests in flight are then backend operations in flight, not
// goroutines each holding an OS thread in a blocking call; one thread
// accepts, starts and answers, with no hand-off between threads in
// between. The port accepts every request waiting (up to the bound)
// before it polls the queue, so a queue that submits in batches gets
// them. Every other request (and a zero-size WRITE, a flush, and what the
// queue does not take, drivers.ErrNotQueued) runs Serve: on a goroutine of
// its own when it may wait (Options.SlowIO, or a request that hands off
// in Serve), else at once on the port's goroutine, as peers.Server does;
// and as there, when one of those runs past peers.DefaultHandOff, a new
// goroutine takes the port over (peers.Watcher), so a request that turned
// out slow (a cold read from disk, a write the kernel throttles) holds up
// its own client only.
//
// When ctx ends, Loop stops accepting, interrupts the ports, waits until
// every accepted request is answered and returns; it does not close b.
// Failed requests are logged on log as peers.Server logs them; nil logs
// nothing.
func (b *Blocker) Loop(inflight int, log *logrus.Entry) peers.Loop {
	if inflight <= 0 {
		inflight = peers.DefaultInflight
	}
	return func(ctx context.Context, ports []*xseg.Port) {
		defer peers.InterruptWhenDone(ctx, ports)()
		wt := peers.NewWatcher(0)
		// wg counts the ports still served: a port's leaders take turns,
		// and only the one that drains it counts it done.
		var wg sync.WaitGroup
		for _, p := range ports {
			ap := &asyncPort{b: b, port: p, log: log, inflight: int64(inflight), drained: wg.Done}
			if ap.log != nil {
				ap.log = ap.log.WithField("port", p.Number())
			}
			ap.slot = wt.Slot(func() { go ap.lead(ctx) })
			wg.Add(1)
			go ap.run(ctx)
		}
		watchCtx, stopWatch := context.WithCancel(ctx)
		var watching sync.WaitGroup
		watching.Go(func() { wt.Run(watchCtx) })
		wg.Wait()
		stopWatch()
		watching.Wait()
	}
}

// asyncPort serves one port for Loop.
type asyncPort struct {
	b     *Blocker
	queue drivers.Queue // nil: every request runs Serve
	ready func() bool   // the queue's Ready, or nil
	// sleep is the queue's Sleep when it is a drivers.Sleeper, or nil.
	sleep func(time.Duration) bool
	port  *xseg.Port
	log   *logrus.Entry
	// slot hands the port to a new goroutine when a request served on the
	// port's goroutine lasts; one goroutine at a time leads (lead).
	slot *peers.Slot
	// drained is called once the port is drained and its queue closed.
	drained func()
	// inflight bounds unanswered, the requests accepted and not yet
	// answered; only the leading goroutine (lead) adds to it.
	inflight   int64
	unanswered atomic.Int64
}

// A port with inflight requests unanswered sleeps fullPause before it
// looks for answers again, twice as long each time up to maxFullPause
// while it stays full: operations on the queue complete in microseconds to
// milliseconds, a blocking ACQUIRE on a goroutine may wait for minutes.
const (
	fullPause    = 50 * time.Microsecond
	maxFullPause = 5 * time.Millisecond
)

func (ap *asyncPort) run(ctx context.Context) {
	if async, ok := ap.b.store.(drivers.AsyncStore); ok {
		q, err := async.NewQueue(ap.port.WakeWord())
		if err != nil {
			if ap.log != nil {
				ap.log.WithError(err).Warn("no asynchronous queue: serving every request on a goroutine")
			}
		} else {
			ap.queue, ap.ready = q, q.Ready
			if s, ok := q.(drivers.Sleeper); ok {
				ap.sleep = s.Sleep
			}
		}
	}
	ap.lead(ctx)
}

// lead accepts, starts and answers requests until ctx ends, then drains
// and closes the queue; or until a request it serves itself is handed
// off, and another goroutine leads from then on.
func (ap *asyncPort) lead(ctx context.Context) {
	pause := fullPause
	for ctx.Err() == nil && !ap.port.Interrupted() {
		ap.poll()
		if ap.unanswered.Load() >= ap.inflight {
			time.Sleep(pause)
			pause = min(2*pause, maxFullPause)
			continue
		}
		pause = fullPause
		// Accept what is there before polling: the queue hands the batch
		// to its backend at once.
		accepted := false
		for ap.unanswered.Load() < ap.inflight {
			r, ok := ap.port.Accept()
			if !ok {
				break
			}
			accepted = true
			ap.unanswered.Add(1)
			switch {
			case ap.start(r):
			case ap.b.slowIO || waits(r.Op(), r.Flags(), r.Size()):
				go ap.serve(ctx, r)
			default: // quick: a hand-off would cost more
				start := ap.slot.Begin()
				ap.serve(ctx, r)
				if !ap.slot.End(start) {
					return // it lasted: another goroutine leads now
				}
			}
		}
		if !accepted {
			ap.port.WaitWith(0, ap.ready, ap.sleep)
		}
	}
	// Drain: every accepted request gets its answer.
	for ap.poll(); ap.unanswered.Load() > 0; ap.poll() {
		time.Sleep(fullPause)
	}
	if ap.queue != nil {
		ap.queue.Close()
	}
	ap.drained()
}

// poll answers the requests whose operations completed.
func (ap *asyncPort) poll() {
	if ap.queue != nil {
		ap.queue.Poll()
	}
}

// start starts a READ or WRITE on the asynchronous path, or answers it at
// once when it is invalid; false leaves the request to serve.
func (ap *asyncPort) start(r xseg.Request) bool {
	op := r.Op()
	if ap.queue == nil || (op != xseg.OpRead && op != xseg.OpWrite) {
		return false
	}
	name := r.TargetString()
	if err := drivers.ValidateName(name); err != nil {
		ap.respond(r, describe(op, name, err))
		return true
	}
	p, off, err := ioRange(r)
	switch {
	case err != nil:
		ap.respond(r, describe(op, name, err))
		return true
	case len(p) == 0 && op == xseg.OpRead:
		ap.respond(r, nil)
		return true
	case len(p) == 0:
		return false // a flush barrier, or nothing
	}
	done := func(err error) {
		if err != nil {
			ap.respond(r, describe(op, name, err))
			return
		}
		r.SetServiced(uint64(len(p)))
		ap.respond(r, nil)
	}
	// Draining must not cut accepted I/O short: no ctx.
	if op == xseg.OpRead {
		err = ap.queue.StartRead(context.Background(), name, p, off, done)
	} else {
		err = ap.queue.StartWrite(context.Background(), name, p, off, writeFlags(r.Flags()), done)
	}
	if errors.Is(err, drivers.ErrNotQueued) {
		return false
	}
	if err != nil {
		ap.respond(r, describe(op, name, err))
	}
	return true
}

// serve runs Serve on r and answers it. A panic fails the request with EIO
// and leaves the peer up.
func (ap *asyncPort) serve(ctx context.Context, r xseg.Request) {
	ap.respond(r, peers.ServeRecovered(ctx, ap.b, r, ap.log))
}

// respond answers r as peers.Server does (peers.Answer) and counts it
// answered.
func (ap *asyncPort) respond(r xseg.Request, err error) {
	peers.Answer(ap.port, ap.log, r, err)
	ap.unanswered.Add(-1)
}
