package blocker

import (
	"context"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/xseg"
)

// Async reports whether the store has an asynchronous path
// (drivers.AsyncStore), which Loop serves READ and WRITE through.
func (b *Blocker) Async() bool {
	_, ok := b.store.(drivers.AsyncStore)
	return ok
}

// Loop returns a peers.Loop (for peers.RunLoop) that serves the ports as
// peers.Server with b as the handler would, up to inflight requests at
// once per port, except for READ and WRITE when the store is a
// drivers.AsyncStore: one goroutine per port accepts requests and starts
// those on the store's asynchronous path, and the store's completion
// answers them, on whatever thread it runs. Requests in flight are then
// backend operations in flight, not goroutines each holding an OS thread
// in a blocking call, and no request waits for a hand-off between
// goroutines. Every other request (and a zero-size WRITE, a flush) runs
// Serve on a goroutine of its own.
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
		var wg sync.WaitGroup
		for _, p := range ports {
			ap := &asyncPort{b: b, port: p, log: log, slots: make(chan struct{}, inflight)}
			if ap.log != nil {
				ap.log = ap.log.WithField("port", p.Number())
			}
			ap.async, _ = b.store.(drivers.AsyncStore)
			wg.Go(func() { ap.run(ctx) })
		}
		wg.Wait()
	}
}

// asyncPort serves one port for Loop.
type asyncPort struct {
	b     *Blocker
	async drivers.AsyncStore // nil: every request runs Serve
	port  *xseg.Port
	log   *logrus.Entry
	// slots holds a token per request accepted and not yet answered.
	slots    chan struct{}
	answered sync.WaitGroup
}

func (ap *asyncPort) run(ctx context.Context) {
	defer ap.answered.Wait()
	for {
		select {
		case ap.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		r, ok := ap.next(ctx)
		if !ok {
			<-ap.slots
			return
		}
		ap.answered.Add(1)
		if !ap.start(r) {
			go ap.serve(ctx, r)
		}
	}
}

// next waits for and accepts a request; false once the peer drains.
func (ap *asyncPort) next(ctx context.Context) (xseg.Request, bool) {
	for !ap.port.Interrupted() && ctx.Err() == nil {
		if r, ok := ap.port.Accept(); ok {
			return r, true
		}
		ap.port.Wait(0)
	}
	return xseg.Request{}, false
}

// start starts a READ or WRITE on the asynchronous path, or answers it at
// once when it is invalid; false leaves the request to serve.
func (ap *asyncPort) start(r xseg.Request) bool {
	op := r.Op()
	if ap.async == nil || (op != xseg.OpRead && op != xseg.OpWrite) {
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
		err = ap.async.StartRead(context.Background(), name, p, off, done)
	} else {
		err = ap.async.StartWrite(context.Background(), name, p, off, writeFlags(r.Flags()), done)
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

// respond answers r as peers.Server does (peers.Answer) and frees the
// request's slot.
func (ap *asyncPort) respond(r xseg.Request, err error) {
	peers.Answer(ap.port, ap.log, r, err)
	<-ap.slots
	ap.answered.Done()
}
