package mapserver

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/archipelago-go/archipelago/peers/mapper"
)

// volume is what the peer knows of one volume name: its cached map, if
// any, whether it holds the volume's lock, and the copy-ups running on it.
//
// A map is cached in two cases: a writable volume while this peer holds
// its lock (open: OPEN, or implicitly MAPR/MAPW), and a read-only map (a
// snapshot or an image) without any lock, since it never changes and the
// objects it names are never deleted (removing a snapshot deletes none of
// them).
type volume struct {
	name string
	refs int // under Server.mu

	// ops orders the operations on the volume. Those that change the map
	// other than by copy-ups (open, close, snapshot, resize, remove,
	// rename, upgrade) hold it exclusively; MAPW holds it shared while it
	// maps and copies up. So a snapshot waits for the copy-ups running and
	// holds new ones until it is done.
	ops sync.RWMutex
	// cached is the cached map, nil if none. It changes with ops held
	// exclusively, or, for copy-ups, under mu with ops held shared.
	cached atomic.Pointer[mapper.Map]
	// locked: this peer holds the volume's lock and cached is its map.
	// It changes with ops held exclusively.
	locked atomic.Bool

	mu sync.Mutex
	// copying holds the blocks being copied up, each with a channel closed
	// when its copy-up is applied or failed: one copy-up per block at a
	// time (see mapper.MapWrite).
	copying map[uint64]chan struct{}
}

// volume returns the state of volume name, referenced until done.
func (s *Server) volume(name string) *volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vols[name]
	if v == nil {
		v = &volume{name: name, copying: make(map[uint64]chan struct{})}
		s.vols[name] = v
	}
	v.refs++
	return v
}

// done drops a reference volume took. A volume with no reference left and
// no cached map is forgotten.
func (s *Server) done(v *volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.refs--
	if v.refs == 0 && v.cached.Load() == nil && !v.locked.Load() {
		delete(s.vols, v.name)
	}
}

// cachedMap returns the cached map of volume name, nil if none.
func (s *Server) cachedMap(name string) *mapper.Map {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.vols[name]; v != nil {
		return v.cached.Load()
	}
	return nil
}

// lockAll holds the ops of several volumes exclusively, in name order so
// that two operations on the same two volumes never wait for each other,
// and returns the function that lets them go.
func lockAll(vs ...*volume) (unlock func()) {
	sorted := slices.SortedFunc(slices.Values(vs), func(a, b *volume) int { return strings.Compare(a.name, b.name) })
	sorted = slices.CompactFunc(sorted, func(a, b *volume) bool { return a == b })
	for _, v := range sorted {
		v.ops.Lock()
	}
	return func() {
		for i := len(sorted) - 1; i >= 0; i-- {
			sorted[i].ops.Unlock()
		}
	}
}

// hold returns the live map of v for an operation that changes it, with
// v's lock held: the cached map if this peer holds the lock (v is open),
// else the map loaded after taking the lock for this operation alone
// (temporary). ops must be held exclusively. End with settle.
func (s *Server) hold(v *volume, assumeV0, upgradeV0 bool) (m *mapper.Map, temporary bool, err error) {
	// An open volume's map is v2: opening upgrades v1 maps, and v0 maps
	// are read-only, cached without the lock.
	if m := v.cached.Load(); m != nil && v.locked.Load() {
		return m, false, nil
	}
	if err := s.st.lock(v.name); err != nil {
		return nil, false, err
	}
	m, err = s.st.loadLive(v.name, assumeV0, upgradeV0)
	if err != nil {
		s.unlockQuietly(v.name)
		return nil, false, err
	}
	return m, true, nil
}

// settle ends an operation that held v. next is the map from now on; nil
// drops the cache (the volume is gone, or a plan stopped halfway and the
// next open loads what storage holds). release lets the lock go even if v
// was open (the volume was removed or renamed); a lock taken for this
// operation alone always goes.
func (s *Server) settle(v *volume, temporary bool, next *mapper.Map, release bool) {
	switch {
	case temporary || release:
		v.cached.Store(nil)
		v.locked.Store(false)
		s.unlockQuietly(v.name)
	case next == nil:
		// The lock stays ours on storage; an open takes it again.
		v.cached.Store(nil)
		v.locked.Store(false)
	default:
		v.cached.Store(next)
	}
}

// unlockQuietly releases the lock of volume name, logging a failure: the
// lock then stays with this host's owner, and a later CLOSE or open
// settles it.
func (s *Server) unlockQuietly(name string) {
	if err := s.st.unlock(name, false); err != nil {
		s.log.WithField("volume", name).WithError(err).Warn("lock not released")
	}
}
