package main

import (
	"errors"
	"fmt"

	"github.com/archipelago-go/archipelago/bench/latency"
	"github.com/archipelago-go/archipelago/xseg"
)

// closedLoop keeps iodepth requests in flight against one port from one
// goroutine, which both submits and receives: the cheapest client there
// is. Each reply is resubmitted at once, refilled by fill.
type closedLoop struct {
	port    *xseg.Port
	dst     int // port to send to
	iodepth int
	meter   *latency.Meter
	sample  *latency.Sampler
	// total, when set, ends the loop after that many submissions instead of
	// when the meter's window closes.
	total uint64
	// fill prepares a request before each submission; first is true when
	// the slot has just been taken, so it needs Prepare.
	fill func(r xseg.Request, first bool) error
	// check, if set, inspects each served reply; an error counts as an
	// error of the run.
	check func(r xseg.Request) error
}

// loopStats is what a closed loop counted besides the meter's figures.
type loopStats struct {
	errors   uint64 // failed replies and failed checks
	firstErr error
}

// run runs the loop until the meter's window closes (or total requests
// were submitted), then collects every reply still in flight.
func (l *closedLoop) run() (loopStats, error) {
	var st loopStats
	m := l.meter
	submitted := make([]int64, l.port.Segment().Geometry().Requests)
	var count uint64
	submit := func(r xseg.Request, first bool) error {
		if err := l.fill(r, first); err != nil {
			return err
		}
		submitted[r.Index()] = 0
		if l.sample.Next() {
			submitted[r.Index()] = m.Now()
		}
		count++
		return l.port.Submit(r, l.dst)
	}
	inflight := 0
	for ; inflight < l.iodepth && (l.total == 0 || count < l.total); inflight++ {
		r, err := l.port.Get()
		if err == nil {
			err = submit(r, true)
		}
		if err != nil {
			if r.Valid() {
				l.port.Put(r)
			}
			l.drain(inflight)
			return st, fmt.Errorf("request %d of --iodepth %d: %w", inflight+1, l.iodepth, err)
		}
	}
	fail := func(err error) {
		st.errors++
		if st.firstErr == nil {
			st.firstErr = err
		}
	}
	running := true
	for inflight > 0 {
		l.port.Wait(0)
		n := 0
		for {
			r, ok := l.port.Receive()
			if !ok {
				break
			}
			n++
			if t := submitted[r.Index()]; t != 0 {
				m.Record(t, m.Now())
			}
			if err := r.Err(); err != nil {
				fail(err)
				if errors.Is(err, xseg.ErrPeerDied) {
					running = false // nobody serves the port any more
				}
			} else if l.check != nil {
				if err := l.check(r); err != nil {
					fail(err)
				}
			}
			if running && l.total > 0 && count >= l.total {
				running = false
			}
			if running {
				err := submit(r, false)
				if err == nil {
					continue
				}
				fail(err)
				running = false
			}
			l.port.Put(r)
			inflight--
		}
		m.Done(n)
		if running && !m.Tick(m.Now()) && l.total == 0 {
			running = false
		}
	}
	return st, nil
}

// drain waits for n replies in flight and puts them back.
func (l *closedLoop) drain(n int) {
	for n > 0 {
		l.port.Wait(0)
		for {
			r, ok := l.port.Receive()
			if !ok {
				break
			}
			l.port.Put(r)
			n--
		}
	}
}
