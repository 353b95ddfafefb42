package xseg

import "time"

// Recovery. A port whose owner died is reclaimed by whichever joined
// process notices first (the monitor, a Bind, or `xseg recover`): it takes
// the port over with a compare-and-swap on the owner word, bumping the
// generation so every request that recorded the old one is recognised as
// stale, fails back what was queued to or served by the port, puts back
// what it held as a client, and frees the port. A recoverer that dies in
// turn leaves the port to the next one; every step is safe to repeat.

// RecoverStats says what a recovery did.
type RecoverStats struct {
	Ports      []int `json:"ports"`       // ports reclaimed from dead owners
	FailedBack int   `json:"failed_back"` // requests failed back to submitters
	Freed      int   `json:"freed"`       // slots returned to the pool
}

// Recover reclaims every port whose owner is dead, and fails back requests
// stranded in the rings of free ports. The monitor does this on its own;
// Recover does it now.
func (s *Segment) Recover() RecoverStats {
	var total RecoverStats
	s.recoverDead(&total)
	g := s.hdr.Geometry
	for n := uint32(0); n < g.Ports; n++ {
		e := s.port(n)
		if e.ready.Load() == 1 && e.state.Load() == portFree && uint32(e.owner.Load()) == 0 {
			total.FailedBack += s.drainRequests(n) + s.drainReplies(n)
		}
	}
	return total
}

func (s *Segment) recoverDead(total *RecoverStats) {
	g := s.hdr.Geometry
	for n := uint32(0); n < g.Ports; n++ {
		e := s.port(n)
		o := e.owner.Load()
		pid := uint32(o)
		if pid == 0 {
			continue
		}
		state := e.state.Load()
		start := e.start.Load()
		if state == portFree {
			start = 0
		}
		if pid == s.self.pid && (start == 0 || start == s.self.start) {
			continue
		}
		if alive(pid, start) {
			continue
		}
		if st, ok := s.recoverPort(n, o); ok && total != nil {
			total.Ports = append(total.Ports, int(n))
			total.FailedBack += st.FailedBack
			total.Freed += st.Freed
		}
	}
}

// recoverPort reclaims port n if its owner word still reads o.
func (s *Segment) recoverPort(n uint32, o uint64) (RecoverStats, bool) {
	e := s.port(n)
	gen := uint32(o>>32) + 1
	mine := uint64(gen)<<32 | uint64(s.self.pid)
	if !e.owner.CompareAndSwap(o, mine) {
		return RecoverStats{}, false
	}
	e.start.Store(s.self.start)
	e.state.Store(portRecovering)
	return s.reclaim(n, mine), true
}

// reclaim empties port n, which this process owns with owner word o, and
// frees it.
func (s *Segment) reclaim(n uint32, o uint64) RecoverStats {
	e := s.port(n)
	e.state.Store(portRecovering)
	var st RecoverStats
	if e.ready.Load() == 1 {
		failed := s.drainRequests(n)
		e.failed.Add(uint64(failed))
		st.FailedBack += failed + s.drainReplies(n)
	}
	// Requests the port was serving, and those it held as a client.
	var stranded []uint32
	for i := uint32(0); i < s.hdr.Geometry.Requests; i++ {
		sl := s.slot(i)
		if sl.holder.Load() != n {
			continue
		}
		switch sl.state.Load() {
		case slotQueued, slotReplied:
			stranded = append(stranded, i)
		case slotServing:
			s.failBackParent(i)
			e.failed.Add(1)
			st.FailedBack++
		case slotHeld:
			if sl.npath == 0 {
				s.freeSlot(i)
				st.Freed++
			} else { // a reply it received on its way further back
				s.failBackParent(i)
				st.FailedBack++
			}
		}
	}
	if len(stranded) > 0 {
		st.FailedBack += s.reclaimStranded(n, stranded)
	}
	e.state.Store(portFree)
	e.sleeping.Store(0)
	e.owner.CompareAndSwap(o, o&^0xffffffff)
	return st
}

// strandGrace is how long recovery waits before it takes a request that
// says it is queued at (or replied to) a dead port, but is in none of its
// rings, for lost. Either the dead owner popped it and died before marking
// it, or a live submitter is between marking it and pushing it; the grace
// lets the second finish its push (which then drains the ring itself).
const strandGrace = 50 * time.Millisecond

// reclaimStranded fails back the requests of candidates that are still
// queued at or replied to port n after strandGrace.
func (s *Segment) reclaimStranded(n uint32, candidates []uint32) int {
	time.Sleep(strandGrace)
	count := s.drainRequests(n) + s.drainReplies(n)
	for _, i := range candidates {
		sl := s.slot(i)
		if sl.holder.Load() != n {
			continue
		}
		// One or the other: once failed back, the slot is the next hop's,
		// possibly already replied there, and must not be taken again.
		if sl.state.CompareAndSwap(slotQueued, slotServing) || sl.state.CompareAndSwap(slotReplied, slotServing) {
			s.failBackParent(i)
			count++
		}
	}
	return count
}

// drainRequests fails back everything queued to port n, which nobody serves.
func (s *Segment) drainRequests(n uint32) int {
	r := s.portRings(n)
	if r == nil {
		return 0
	}
	count := 0
	for {
		i, ok := r.requests.Pop()
		if !ok {
			return count
		}
		if s.claim(i, n, slotQueued, slotServing) {
			s.failBackParent(i)
			count++
		}
	}
}

// drainReplies sends replies waiting at port n, which nobody receives,
// further back along their paths as failures.
func (s *Segment) drainReplies(n uint32) int {
	r := s.portRings(n)
	if r == nil {
		return 0
	}
	count := 0
	for {
		i, ok := r.replies.Pop()
		if !ok {
			return count
		}
		if s.claim(i, n, slotReplied, slotServing) {
			s.failBackParent(i)
			count++
		}
	}
}
