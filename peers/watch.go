package peers

import (
	"context"
	"sync/atomic"
	"time"
)

// A Watcher hands a port over to another goroutine when the goroutine that
// waits on it, the port's leader, has served one request for longer than
// its hand-off time: a request that turned out slow (a cold read from a
// disk, a write throttled by the kernel) then holds up only its client,
// not every request queued behind it on the port. Server and the
// blockers' queue loop each keep one; a Slot per port is what it watches.
//
// The watcher looks every hand-off time / 2 while a leader serves, and
// sleeps once it has seen none serving for a while. Looking more often
// disturbed the serving threads measurably on a 2-core host (a fifth
// fewer 4 KiB reads at iodepth 1 with looks every 1 ms), and Go's timers
// wake an idle process at millisecond granularity anyway.
type Watcher struct {
	handOff time.Duration
	slots   []*Slot
	parked  atomic.Bool
	poke    chan struct{}
}

// NewWatcher returns a watcher that hands off after handOff
// (DefaultHandOff when 0).
func NewWatcher(handOff time.Duration) *Watcher {
	if handOff <= 0 {
		handOff = DefaultHandOff
	}
	return &Watcher{handOff: handOff, poke: make(chan struct{}, 1)}
}

// A Slot is one port's leadership, as a Watcher sees it.
type Slot struct {
	w *Watcher
	// serving is the clock reading at which the leader began serving the
	// request it accepted, 0 while it waits, or handedOff. Handing off is
	// a compare-and-swap from the reading to handedOff, so the leader and
	// the watcher never both give the leadership away.
	serving atomic.Int64
	// takeOver hands the leadership to another goroutine; it runs once
	// per hand-off, on the watcher's goroutine or the leader's.
	takeOver func()
}

// Slot adds a port to watch; takeOver gives its leadership to another
// goroutine. Add every slot before Run.
func (w *Watcher) Slot(takeOver func()) *Slot {
	s := &Slot{w: w, takeOver: takeOver}
	w.slots = append(w.slots, s)
	return s
}

// Begin tells that the leader starts serving a request it accepted; the
// reading it returns identifies that request to End and HandOff.
func (s *Slot) Begin() int64 {
	start := clock()
	s.serving.Store(start)
	s.w.wake()
	return start
}

// End tells that the leader is done with the request Begin returned start
// for; false means it was handed off meanwhile, and the goroutine must no
// longer lead. takeOver may not have run yet then: the watcher calls it
// after its compare-and-swap, so whatever waits for the leaders must not
// count this one's end as the port's.
func (s *Slot) End(start int64) bool { return s.serving.CompareAndSwap(start, 0) }

// HandOff gives the leadership away now, if the request Begin returned
// start for still holds it: its handler knows it is about to wait.
func (s *Slot) HandOff(start int64) {
	if start > 0 && s.serving.CompareAndSwap(start, handedOff) {
		s.takeOver()
	}
}

// handedOff in Slot.serving marks a leadership taken away from the
// goroutine serving a request.
const handedOff = -1

// clockBase makes clock readings positive, so 0 can mean "not serving".
var clockBase = time.Now()

func clock() int64 { return int64(time.Since(clockBase)) + 1 }

// parkAfter is how many idle looks put the watcher to sleep.
const parkAfter = 16

// Run watches the slots until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	tick := time.NewTimer(w.handOff / 2)
	defer tick.Stop()
	idle := 0
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		tick.Reset(w.handOff / 2)
		if w.look() {
			idle = 0
			continue
		}
		if idle++; idle < parkAfter {
			continue
		}
		idle = 0
		// Announce the nap, then look once more: a leader that starts
		// serving either sees parked and pokes, or is seen here.
		w.parked.Store(true)
		if w.look() {
			w.parked.Store(false)
			continue
		}
		select {
		case <-w.poke:
		case <-ctx.Done():
			return
		}
	}
}

// look hands off overdue leaders and reports whether any slot is busy.
func (w *Watcher) look() (busy bool) {
	now := clock()
	for _, s := range w.slots {
		start := s.serving.Load()
		if start <= 0 {
			continue
		}
		busy = true
		if time.Duration(now-start) >= w.handOff {
			s.HandOff(start)
		}
	}
	return busy
}

// wake wakes a parked watcher; cheap when it is not parked.
func (w *Watcher) wake() {
	if w.parked.Load() && w.parked.CompareAndSwap(true, false) {
		select {
		case w.poke <- struct{}{}:
		default:
		}
	}
}
