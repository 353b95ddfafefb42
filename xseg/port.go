package xseg

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultSpin is how long Wait polls at most before it sleeps: long enough
// to catch a reply that crosses two more peers (client, vlmcd, blocker)
// without a sleep; waking a sleeping process costs tens of microseconds on
// a small VM. While polling, Wait yields the core now and then, so more
// busy peers than cores still make progress. A port whose waits lately
// outlasted the spin polls only briefly (see Port.spinFor).
const DefaultSpin = 100 * time.Microsecond

// Port is a bound port: an address in the segment with a request ring
// (requests to serve) and a reply ring (replies to requests it submitted).
// Its methods are safe for concurrent use; Wait is meant for one goroutine.
type Port struct {
	seg   *Segment
	num   uint32
	gen   uint32
	e     *portEntry
	rings *portRings

	spin atomic.Int64
	// missed is the moving share, in missScale units, of recent waits
	// that outlasted the spin time (see spinFor).
	missed atomic.Int64
	// scheduled is when (since monoBase) a waiter last passed through
	// the Go scheduler; see passScheduler.
	scheduled   atomic.Int64
	interrupted atomic.Bool
	released    atomic.Bool
}

// Bind binds static port n. If a dead process owns it, the port is first
// recovered; if a live one does, Bind fails with ErrPortBusy.
func (s *Segment) Bind(n int) (*Port, error) {
	if err := s.checkPort(n); err != nil {
		return nil, err
	}
	if n >= int(s.hdr.Geometry.StaticPorts) {
		return nil, fmt.Errorf("bind port %d: %w: ports %d and up are dynamic, use BindDynamic", n, ErrNoSuchPort, s.hdr.Geometry.StaticPorts)
	}
	return s.bind(uint32(n), true)
}

// BindDynamic binds the first free dynamic port.
func (s *Segment) BindDynamic() (*Port, error) {
	g := s.hdr.Geometry
	for n := g.StaticPorts; n < g.Ports; n++ {
		if p, err := s.bind(n, false); err == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("segment %q: %w (all %d in use)", s.name, ErrNoFreePort, g.Ports-g.StaticPorts)
}

// bind claims port n. With wait, it waits up to a second for another
// process that is recovering the port.
func (s *Segment) bind(n uint32, wait bool) (*Port, error) {
	e := s.port(n)
	deadline := time.Now().Add(time.Second)
	var gen uint32
	for {
		o := e.owner.Load()
		pid := uint32(o)
		gen = uint32(o >> 32)
		if pid != 0 {
			state := e.state.Load()
			start := e.start.Load()
			if state == portFree {
				start = 0 // a binder between its claim and its start time
			}
			mine := pid == s.self.pid && (start == 0 || start == s.self.start)
			if mine || alive(pid, start) {
				if wait && state == portRecovering && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				return nil, fmt.Errorf("bind port %d: %w: owner pid %d", n, ErrPortBusy, pid)
			}
			s.recoverPort(n, o)
			continue
		}
		if e.owner.CompareAndSwap(o, uint64(gen+1)<<32|uint64(s.self.pid)) {
			gen++
			break
		}
	}
	e.start.Store(s.self.start)
	if err := s.layRings(n); err != nil {
		e.owner.Store(uint64(gen) << 32)
		return nil, fmt.Errorf("bind port %d: %w", n, err)
	}
	p := &Port{seg: s, num: n, gen: gen, e: e, rings: s.portRings(n)}
	p.spin.Store(int64(DefaultSpin))
	// Requests or replies stranded by a previous owner carry an older
	// generation; fail them back before serving.
	s.drainRequests(n)
	s.drainReplies(n)
	e.state.Store(portBound)
	s.mu.Lock()
	s.bound[n] = p
	s.mu.Unlock()
	return p, nil
}

// Number returns the port number.
func (p *Port) Number() int { return int(p.num) }

// Segment returns the segment the port belongs to.
func (p *Port) Segment() *Segment { return p.seg }

// SetSpin sets how long Wait polls before sleeping; 0 sleeps at once.
func (p *Port) SetSpin(d time.Duration) { p.spin.Store(int64(d)) }

// Release unbinds the port. Requests queued to it or being served by it
// fail back with ErrPeerDied; requests it holds as a client are put back.
// Replies to requests it still has in flight are dropped when they arrive.
func (p *Port) Release() error {
	if p.released.Swap(true) {
		return nil
	}
	p.interrupted.Store(true)
	s := p.seg
	s.mu.Lock()
	delete(s.bound, p.num)
	s.mu.Unlock()
	o := p.e.owner.Load()
	if uint32(o>>32) != p.gen || uint32(o) != s.self.pid {
		return nil // recovered by someone else already
	}
	s.reclaim(p.num, o)
	return nil
}

// Interrupt wakes Wait and makes every later Wait return at once; peers
// call it to stop their serving loop.
func (p *Port) Interrupt() {
	p.interrupted.Store(true)
	p.seg.wake(p.e)
}

// Interrupted reports whether Interrupt or Release was called.
func (p *Port) Interrupted() bool { return p.interrupted.Load() }

// pending reports whether either ring has something published.
func (p *Port) pending() bool {
	return !p.rings.requests.Empty() || !p.rings.replies.Empty()
}

// Wait returns when a request or a reply is ready for the port, when
// timeout passes (0 waits without limit), or after Interrupt. It polls for
// the port's spin time, then sleeps until a submitter wakes it; submitters
// wake only ports that sleep, so a busy port costs them no system call.
func (p *Port) Wait(timeout time.Duration) { p.WaitFor(timeout, nil) }

// WaitFor is Wait that also returns once ready reports true. ready is
// called often while the port polls, so it must be cheap (an atomic load);
// whatever makes it true must then wake the port through WakeWord, as a
// submitter does.
func (p *Port) WaitFor(timeout time.Duration, ready func() bool) {
	p.WaitWith(timeout, ready, nil)
}

// WaitWith is WaitFor that sleeps through sleep, when not nil, instead of
// on the wake word: a source of work whose completions cannot wake a
// futex (io_uring) sleeps where they and the word both end the sleep.
// sleep is called with the word at 1 after a last look for work; it
// returns once the word leaves 1, its own work is ready, timeout (0: no
// limit) passes, or earlier; false, at once, makes WaitWith sleep on the
// word itself.
func (p *Port) WaitWith(timeout time.Duration, ready func() bool, sleep func(timeout time.Duration) bool) {
	if p.ready(ready) {
		p.learn(0)
		return
	}
	begin := time.Now()
	defer func() { p.learn(time.Since(begin)) }()
	if spin := p.spinFor(); spin > 0 {
		for i := 1; ; i++ {
			if p.ready(ready) {
				return
			}
			if i%64 == 0 {
				if time.Since(begin) > spin {
					break
				}
				if i%512 != 0 {
					continue
				}
				// Let another runnable process have this core: on a host
				// with more busy peers than cores (client, vlmcd and a
				// blocker on two cores), spinning without yielding keeps
				// out the very peer whose reply we wait for.
				yieldCPU()
			}
		}
	}
	p.passScheduler()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		p.e.sleeping.Store(1)
		// The store above and a submitter's push are both full barriers:
		// either this check sees the push, or the submitter sees sleeping.
		if p.ready(ready) {
			p.e.sleeping.Store(0)
			return
		}
		left := time.Duration(0)
		if timeout > 0 {
			if left = time.Until(deadline); left <= 0 {
				p.e.sleeping.Store(0)
				return
			}
		}
		if sleep == nil || !sleep(left) {
			futexSleep(&p.e.sleeping, 1, left)
		}
		p.e.sleeping.Store(0)
		// A signal to this thread also ends the sleep: look again.
		if p.ready(ready) {
			p.e.wakeups.Add(1)
			return
		}
	}
}

// spinFor returns how long the next wait polls before it sleeps: the spin
// time, unless most recent waits outlasted it, then a twentieth of it. A
// wait that outlasts the spin pays for a poll and a sleep both. That is
// the common case of radosd and its clients at low queue depth, whose
// work comes a cluster round trip (200 µs and more) apart: polling there
// burns a core that a VM or the OSD could use, while a short poll still
// catches work that comes in bursts.
func (p *Port) spinFor() time.Duration {
	spin := time.Duration(p.spin.Load())
	if p.missed.Load() > missScale/2 {
		return spin / 20
	}
	return spin
}

// missScale is the fixed-point 1 of Port.missed.
const missScale = 1 << 10

// learn adds a wait that lasted d, whether it polled or slept, to the
// port's moving share of waits that outlasted the spin time.
func (p *Port) learn(d time.Duration) {
	var miss int64
	if d >= time.Duration(p.spin.Load()) {
		miss = missScale
	}
	m := p.missed.Load()
	p.missed.Store(m + (miss-m)/8)
}

// schedulerPass is how often a port that sleeps passes through the Go
// scheduler (passScheduler).
const schedulerPass = 4 * time.Millisecond

// passScheduler has the goroutine about to sleep pass through the Go
// scheduler when it has not done so for schedulerPass. A goroutine that
// never does, whatever system calls it makes, looks to the runtime's
// monitor like one that has run for 10 ms without a break: the monitor then
// takes its P away in the middle of a sleep, hands the P to another thread
// and goes back to polling every 20 µs. Each of those wake-ups costs a
// context switch, taken from the cores the peers need; measured on radosd,
// the monitor alone used a fifth of the process's CPU. A pass costs a
// wake-up of an idle thread too, so it happens at most every few ms.
func (p *Port) passScheduler() {
	now := time.Since(monoBase)
	if last := p.scheduled.Load(); now-time.Duration(last) < schedulerPass {
		return
	}
	p.scheduled.Store(int64(now))
	runtime.Gosched()
}

// monoBase is the base of Port.scheduled's monotonic clock.
var monoBase = time.Now()

func (p *Port) ready(ready func() bool) bool {
	return p.pending() || p.interrupted.Load() || (ready != nil && ready())
}

// WakeWord returns the futex word the port sleeps on in Wait, for a
// source of work outside the segment (a backend's completions, possibly
// on threads that are not Go's) to wake it by: publish the work so that
// WaitFor's ready sees it, then, with a full barrier in between, Wake the
// word. The word lives in the segment's shared mapping.
func (p *Port) WakeWord() *atomic.Uint32 { return &p.e.sleeping }

// Wake wakes whatever sleeps on a port's wake word: it swaps the word from
// 1 (a sleeper, or one about to sleep, after its last look for work) to 0
// and then wakes every sleeper with FUTEX_WAKE; a word at 0 costs nothing.
func Wake(word *atomic.Uint32) {
	if word.Load() == 1 && word.CompareAndSwap(1, 0) {
		futexWakeAll(word)
	}
}

func (s *Segment) wake(e *portEntry) { Wake(&e.sleeping) }

// Get takes a free request slot for this port to fill and submit.
func (p *Port) Get() (Request, error) {
	if p.released.Load() {
		return Request{}, ErrClosed
	}
	s := p.seg
	i, ok := s.free.Pop()
	if !ok {
		return Request{}, fmt.Errorf("port %d: %w (all %d in use)", p.num, ErrNoFreeRequests, s.hdr.Geometry.Requests)
	}
	sl := s.slot(i)
	sl.op, sl.flags, sl.status, sl.code, sl.tlen = 0, 0, statusNone, 0, 0
	sl.offset, sl.size, sl.served, sl.dlen, sl.priv = 0, 0, 0, 0, 0
	sl.src, sl.dst, sl.npath, sl.gen, sl.parent = p.num, p.num, 0, p.gen, 0
	sl.orphan.Store(0)
	sl.holder.Store(p.num)
	sl.state.Store(slotHeld)
	return Request{s, i, sl}, nil
}

// Put returns a request the port holds to the free pool, with its buffer.
func (p *Port) Put(r Request) error {
	if err := p.holds(r); err != nil {
		return err
	}
	if err := r.checkNoChildren(); err != nil {
		return err
	}
	p.seg.freeSlot(r.idx)
	return nil
}

func (p *Port) holds(r Request) error {
	if r.sl == nil || r.seg != p.seg {
		return fmt.Errorf("port %d: %w: not a request of this segment", p.num, ErrNotHeld)
	}
	st := r.sl.state.Load()
	if (st != slotHeld && st != slotServing) || r.sl.holder.Load() != p.num || r.sl.gen != p.gen {
		return fmt.Errorf("port %d: %w: request %d is %s at port %d", p.num, ErrNotHeld, r.idx, slotStateNames[min(st, slotReplied)], r.sl.holder.Load())
	}
	return nil
}

// Submit sends a held request to port dst and records this port on its
// return path, so the reply comes back here. A serving port may submit a
// request it accepted to another port; the reply then comes back to it to
// respond further.
func (p *Port) Submit(r Request, dst int) error {
	return p.send(r, dst, true)
}

// Forward hands a request this port serves to port dst without recording
// this port: dst's reply goes straight to the previous hop.
func (p *Port) Forward(r Request, dst int) error {
	return p.send(r, dst, false)
}

func (p *Port) send(r Request, dst int, record bool) error {
	if err := p.holds(r); err != nil {
		return err
	}
	s := p.seg
	if err := s.checkPort(dst); err != nil {
		return err
	}
	sl := r.sl
	if record && sl.npath >= MaxPath {
		return fmt.Errorf("submit to port %d: %w (%d hops)", dst, ErrPathTooLong, MaxPath)
	}
	d := uint32(dst)
	e := s.port(d)
	o := e.owner.Load()
	if uint32(o) == 0 || e.state.Load() != portBound {
		return fmt.Errorf("submit to port %d: %w", dst, ErrPortNotBound)
	}
	if record {
		sl.path[sl.npath] = hop{p.num, p.gen}
		sl.npath++
	} else if sl.npath == 0 {
		return fmt.Errorf("forward to port %d: %w: request has no submitter to reply to", dst, ErrNotHeld)
	}
	sl.dst, sl.gen, sl.status, sl.code = d, uint32(o>>32), statusNone, 0
	sl.holder.Store(d)
	sl.state.Store(slotQueued)
	e.submitted.Add(1)
	if !s.portRings(d).requests.Push(r.idx) {
		panic("xseg: request ring full although it has a cell for every slot")
	}
	if e.owner.Load() != o && e.state.Load() != portBound {
		s.drainRequests(d) // the port changed hands during the push
	}
	s.wake(e)
	return nil
}

// Accept takes the next request queued to the port, if any.
func (p *Port) Accept() (Request, bool) {
	s := p.seg
	for {
		i, ok := p.rings.requests.Pop()
		if !ok {
			return Request{}, false
		}
		if !s.claim(i, p.num, slotQueued, slotServing) {
			continue // a stale cell: the request was already failed back
		}
		sl := s.slot(i)
		if sl.gen != p.gen { // queued to a previous owner of this port
			s.failBackParent(i)
			continue
		}
		return Request{s, i, sl}, true
	}
}

// Respond completes a request the port serves: nil marks it served, an
// error failed (a syscall.Errno travels as is, others as EIO). The reply
// goes to the previous hop of its path.
func (p *Port) Respond(r Request, err error) error {
	if herr := p.holds(r); herr != nil {
		return herr
	}
	if herr := r.checkNoChildren(); herr != nil {
		return herr
	}
	if err == nil {
		r.sl.status = statusServed
		p.e.served.Add(1)
	} else {
		r.sl.status, r.sl.code = statusFailed, errorCode(err)
		p.e.failed.Add(1)
	}
	p.seg.deliver(r.idx)
	return nil
}

// Receive takes the next reply to a request this port submitted, if any.
func (p *Port) Receive() (Request, bool) {
	s := p.seg
	for {
		i, ok := p.rings.replies.Pop()
		if !ok {
			return Request{}, false
		}
		if !s.claim(i, p.num, slotReplied, slotHeld) {
			continue
		}
		sl := s.slot(i)
		if sl.gen != p.gen { // a reply to a previous owner of this port
			s.failBackParent(i)
			continue
		}
		return Request{s, i, sl}, true
	}
}

// deliver sends slot i back along its path: to the last recorded hop whose
// port still has the generation recorded, failing it with ErrPeerDied past
// every hop that has not; with no hop left the slot is freed.
func (s *Segment) deliver(i uint32) {
	sl := s.slot(i)
	for sl.npath > 0 {
		sl.npath--
		h := sl.path[sl.npath]
		e := s.port(h.port)
		o := e.owner.Load()
		if uint32(o>>32) == h.gen && uint32(o) != 0 && e.state.Load() == portBound {
			sl.gen = h.gen
			sl.holder.Store(h.port)
			sl.state.Store(slotReplied)
			if !s.portRings(h.port).replies.Push(i) {
				panic("xseg: reply ring full although it has a cell for every slot")
			}
			e.replies.Add(1)
			if e.owner.Load() != o && e.state.Load() != portBound {
				s.drainReplies(h.port)
			}
			s.wake(e)
			return
		}
		sl.status, sl.code = statusFailed, codePeerDied
	}
	s.freeSlot(i)
}

// failBack fails slot i with code and delivers it.
func (s *Segment) failBack(i uint32, code uint32) {
	sl := s.slot(i)
	sl.status, sl.code = statusFailed, code
	s.deliver(i)
}

func (s *Segment) freeSlot(i uint32) {
	sl := s.slot(i)
	if sl.bufLen > 0 {
		s.pool.release(sl.bufOff, sl.bufLen)
		sl.bufLen = 0
	}
	if sl.parent != 0 {
		p := sl.parent - 1
		sl.parent = 0
		s.childDone(p)
	}
	sl.state.Store(slotFree)
	sl.holder.Store(0)
	if !s.free.Push(i) {
		panic("xseg: free ring full although it has a cell for every slot")
	}
}

// childDone notes that a request borrowing parent's buffer was put back,
// and fails the parent back if it was orphaned and this was its last child.
func (s *Segment) childDone(parent uint32) {
	ps := s.slot(parent)
	if ps.children.Add(^uint32(0)) == 0 && ps.orphan.CompareAndSwap(orphanWaiting, orphanDone) {
		s.failBack(parent, codePeerDied)
	}
}

// failBackParent fails back a request its dead server was serving, or
// leaves that to its last child if children still use its buffer.
func (s *Segment) failBackParent(i uint32) {
	ps := s.slot(i)
	if ps.children.Load() == 0 {
		s.failBack(i, codePeerDied)
		return
	}
	ps.orphan.Store(orphanWaiting)
	// The last child may have finished between the load and the store.
	if ps.children.Load() == 0 && ps.orphan.CompareAndSwap(orphanWaiting, orphanDone) {
		s.failBack(i, codePeerDied)
	}
}

// claim moves slot i, just popped from a ring of port n, from state want to
// state to, so exactly one party goes on with it. It fails for a stale cell
// (a request recovery already took) and leaves that slot alone.
func (s *Segment) claim(i, n, want, to uint32) bool {
	sl := s.slot(i)
	return sl.holder.Load() == n && sl.state.CompareAndSwap(want, to)
}
