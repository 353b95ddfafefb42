package mapserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// mapIO serves MAPR and MAPW. On a cached map MAPR, and MAPW of blocks
// already copied up, cost no blocker I/O.
func (s *Server) mapIO(ctx context.Context, r xseg.Request, write bool, name string, assumeV0 bool) error {
	v := s.volume(name)
	defer s.done(v)
	off, size := r.Offset(), r.Size()
	if !write {
		m := v.cached.Load()
		if m == nil {
			peers.HandOff(ctx)
			var err error
			if m, err = s.openForRead(v, assumeV0); err != nil {
				return err
			}
		}
		segs, err := mapper.MapRead(m, off, size)
		if err != nil {
			return err
		}
		return replyMap(r, m, segs)
	}
	for {
		v.ops.RLock()
		m := v.cached.Load()
		if m != nil && m.ReadOnly() {
			v.ops.RUnlock()
			return fmt.Errorf("%w: %q is a snapshot", mapper.ErrReadOnly, name)
		}
		if m == nil || !v.locked.Load() {
			v.ops.RUnlock()
			peers.HandOff(ctx)
			if err := s.open(name, assumeV0, false); err != nil {
				return err
			}
			continue
		}
		m, segs, err := s.mapWrite(ctx, v, off, size)
		v.ops.RUnlock()
		if err != nil {
			return err
		}
		return replyMap(r, m, segs)
	}
}

// mapWrite maps a write of v, running the copy-ups it needs first, one
// per block at a time: a write that needs a block another write is
// copying up waits for that copy-up and maps again. v.ops is held shared
// and v is open.
func (s *Server) mapWrite(ctx context.Context, v *volume, off, size uint64) (*mapper.Map, []mapper.Segment, error) {
	for {
		v.mu.Lock()
		m := v.cached.Load()
		segs, cus, err := mapper.MapWrite(m, off, size)
		if err != nil || len(cus) == 0 {
			v.mu.Unlock()
			return m, segs, err
		}
		var busy chan struct{}
		for _, c := range cus {
			if ch := v.copying[c.Index]; ch != nil {
				busy = ch
				break
			}
		}
		if busy != nil {
			v.mu.Unlock()
			peers.HandOff(ctx)
			<-busy
			continue
		}
		done := make(chan struct{})
		for _, c := range cus {
			v.copying[c.Index] = done
		}
		v.mu.Unlock()

		peers.HandOff(ctx)
		started := time.Now()
		err = s.st.runPlan(mapper.CopyUpPlan(m, cus))
		v.mu.Lock()
		if err == nil {
			var next *mapper.Map
			if next, err = mapper.ApplyCopyUps(v.cached.Load(), cus); err == nil {
				v.cached.Store(next)
			}
		}
		for _, c := range cus {
			delete(v.copying, c.Index)
		}
		close(done)
		v.mu.Unlock()
		if err != nil {
			return nil, nil, fmt.Errorf("copy up %d blocks: %w", len(cus), err)
		}
		s.log.WithFields(map[string]any{"volume": v.name, "blocks": len(cus), "took": time.Since(started).String()}).Debug("copied up")
		// Map again: the blocks are writable now.
	}
}

// replyMap writes the map reply of segs into r's data buffer.
func replyMap(r xseg.Request, m *mapper.Map, segs []mapper.Segment) error {
	need := protocol.MapLen(len(segs))
	data := r.Data()
	if len(data) < need {
		r.SetServiced(uint64(need))
		return fmt.Errorf("%w: %d segments take %d bytes, the buffer has %d", ErrBufferTooSmall, len(segs), need, len(data))
	}
	out := make([]protocol.Segment, len(segs))
	for i, sg := range segs {
		var flags uint32
		if sg.Zero {
			flags |= protocol.SegmentZero
		}
		if !m.Entry(sg.Index).Writable() {
			flags |= protocol.SegmentReadOnly
		}
		out[i] = protocol.Segment{Object: sg.Object, Flags: flags, Offset: sg.Offset, Size: sg.Length}
	}
	if err := protocol.EncodeMap(data, out); err != nil {
		return err
	}
	r.SetServiced(uint64(need))
	return nil
}

// openForRead returns the map of v for MAPR when it is not cached: a
// read-only map is cached without a lock; a writable one is opened (its
// lock taken, its map cached) if its lock is free, else loaded for this
// read alone, as the original served reads of volumes open elsewhere.
func (s *Server) openForRead(v *volume, assumeV0 bool) (*mapper.Map, error) {
	v.ops.Lock()
	defer v.ops.Unlock()
	if m := v.cached.Load(); m != nil {
		return m, nil
	}
	f, err := s.st.find(v.name, assumeV0, false)
	if err != nil {
		return nil, err
	}
	if err := f.mustLive(v.name); err != nil {
		return nil, err
	}
	if f.header.ReadOnly() || f.header.Version == mapper.V0 {
		m, err := s.st.loadMap(f.object, *f.header)
		if err != nil {
			return nil, err
		}
		v.cached.Store(m)
		return m, nil
	}
	err = s.st.lock(v.name)
	if errors.Is(err, ErrLocked) {
		return s.st.lookup(v.name, assumeV0)
	}
	if err != nil {
		return nil, err
	}
	m, err := s.st.loadLive(v.name, assumeV0, false)
	if err != nil {
		s.unlockQuietly(v.name)
		return nil, err
	}
	v.cached.Store(m)
	v.locked.Store(true)
	s.log.WithField("volume", v.name).Debug("opened by MAPR")
	return m, nil
}

// open takes the volume's lock (a try-lock; force breaks another host's
// lock first) and caches its map. Opening an open volume succeeds; a
// read-only map is cached without a lock, on as many hosts as like.
func (s *Server) open(name string, assumeV0, force bool) error {
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	if v.cached.Load() != nil && v.locked.Load() {
		return nil
	}
	f, err := s.st.find(name, assumeV0, false)
	if err != nil {
		return err
	}
	if err := f.mustLive(name); err != nil {
		return err
	}
	if f.header.ReadOnly() || f.header.Version == mapper.V0 {
		if v.cached.Load() != nil {
			return nil
		}
		m, err := s.st.loadMap(f.object, *f.header)
		if err != nil {
			return err
		}
		v.cached.Store(m)
		return nil
	}
	if force {
		holder := s.st.lockHolder(name)
		if err := s.st.unlock(name, true); err != nil {
			return err
		}
		s.log.WithField("volume", name).WithField("holder", holder).Warn("lock broken by a forced open")
	}
	if err := s.st.lock(name); err != nil {
		return err
	}
	m, err := s.st.loadLive(name, assumeV0, false)
	if err != nil {
		s.unlockQuietly(name)
		return err
	}
	v.cached.Store(m)
	v.locked.Store(true)
	s.log.WithField("volume", name).Info("opened")
	return nil
}

// close releases the volume's lock and drops its cached map, after the
// operations running on it. A volume this peer did not open may still be
// locked by this host's owner (mapperd restarted): its lock is released
// too. force breaks another host's lock.
func (s *Server) close(name string, force bool) error {
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	m, locked := v.cached.Load(), v.locked.Load()
	v.cached.Store(nil)
	v.locked.Store(false)
	if m != nil && !locked {
		return nil // a read-only map: no lock
	}
	if err := s.st.unlock(name, force); err != nil {
		if locked {
			return fmt.Errorf("our lock was broken while the volume was open: %w", err)
		}
		return err
	}
	if !locked {
		f, err := s.st.find(name, false, false)
		if err != nil {
			return err
		}
		if err := f.mustLive(name); err != nil {
			return err
		}
	}
	s.log.WithField("volume", name).Info("closed")
	return nil
}

// info replies the volume's size, and its block size to a client that
// gives room for it (protocol.VolumeInfo).
func (s *Server) info(r xseg.Request, name string, assumeV0 bool) error {
	if len(r.Data()) < protocol.InfoLen {
		return protocol.EncodeInfo(r.Data(), 0) // says why
	}
	var h mapper.Header
	if m := s.cachedMap(name); m != nil {
		h = m.Header
	} else {
		f, err := s.st.find(name, assumeV0, false)
		if err != nil {
			return err
		}
		if err := f.mustLive(name); err != nil {
			return err
		}
		h = *f.header
		if h.Version == mapper.V0 { // no header: its size is its length
			m, err := s.st.loadMap(f.object, h)
			if err != nil {
				return err
			}
			h = m.Header
		}
	}
	n, err := protocol.EncodeVolumeInfo(r.Data(), volumeInfo(h))
	if err != nil {
		return err
	}
	r.SetServiced(uint64(n))
	return nil
}

// takeNew takes the lock of a map about to be made under v's name, so
// that no other host makes one at the same time. v.ops is held
// exclusively. A name open here is a live volume: ErrExists.
func (s *Server) takeNew(v *volume) error {
	if v.locked.Load() {
		return fmt.Errorf("%w: %q is open", mapper.ErrExists, v.name)
	}
	return s.st.lock(v.name)
}

// clone makes volume name: empty if c.Parent is empty (a thin volume of
// c.Size bytes in objects of blockSize bytes, 0 for 4 MiB), else a clone
// of the snapshot c.Parent (c.Size 0 for the parent's size; blockSize 0 or
// the parent's).
func (s *Server) clone(name string, c protocol.Clone, blockSize uint64, assumeV0 bool) error {
	started := time.Now()
	if blockSize > math.MaxUint32 {
		return fmt.Errorf("%w: block size %d", mapper.ErrInvalidSize, blockSize)
	}
	var parent *mapper.Map
	if c.Parent != "" {
		if err := mapper.CheckName(c.Parent); err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		// Loaded afresh, not from the cache: another host may have
		// removed the snapshot and made a new one of that name.
		var err error
		if parent, err = s.st.lookup(c.Parent, assumeV0); err != nil {
			return err
		}
		if blockSize != 0 && blockSize != uint64(parent.BlockSize) {
			return fmt.Errorf("%w: block size %d, a clone has its parent's (%d)", mapper.ErrInvalidSize, blockSize, parent.BlockSize)
		}
	}
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	if err := s.takeNew(v); err != nil {
		return err
	}
	defer s.unlockQuietly(name)
	existing, err := s.st.existing(name)
	if err != nil {
		return err
	}
	var m *mapper.Map
	if parent == nil {
		m, err = mapper.Create(name, c.Size, uint32(blockSize), existing)
	} else {
		m, err = mapper.Clone(parent, name, c.Size, existing)
	}
	if err != nil {
		return err
	}
	if err := s.st.runPlan(mapper.NewMapPlan(m)); err != nil {
		return err
	}
	v.cached.Store(nil)
	s.log.WithFields(map[string]any{"volume": name, "parent": c.Parent, "size": m.Size, "took": time.Since(started).String()}).Info("created")
	return nil
}

// snapshot freezes volume name as the read-only map snap.
func (s *Server) snapshot(name, snap string, assumeV0 bool) error {
	started := time.Now()
	v, sv := s.volume(name), s.volume(snap)
	defer s.done(v)
	defer s.done(sv)
	unlock := lockAll(v, sv)
	defer unlock()
	if v == sv {
		return fmt.Errorf("%w: a snapshot needs a name of its own", mapper.ErrExists)
	}
	m, temporary, err := s.hold(v, assumeV0, false)
	if err != nil {
		return err
	}
	next, err := s.snapshotHeld(m, sv)
	if err != nil {
		s.settle(v, temporary, next, false)
		return err
	}
	s.settle(v, temporary, next, false)
	s.log.WithFields(map[string]any{"volume": name, "snapshot": snap, "took": time.Since(started).String()}).Info("snapshot made")
	return nil
}

// snapshotHeld makes the snapshot of m as sv, both held; it returns the
// source's map from now on (nil if storage changed but the plan did not
// finish).
func (s *Server) snapshotHeld(m *mapper.Map, sv *volume) (*mapper.Map, error) {
	if err := s.takeNew(sv); err != nil {
		return m, err
	}
	defer s.unlockQuietly(sv.name)
	existing, err := s.st.existing(sv.name)
	if err != nil {
		return m, err
	}
	res, err := mapper.Snapshot(m, sv.name, existing)
	if err != nil {
		return m, err
	}
	if err := s.st.runPlan(res.Plan()); err != nil {
		return nil, err
	}
	sv.cached.Store(nil)
	return res.Source, nil
}

// remove removes volume name (or snapshot): the objects it owns alone
// are deleted, its map marked deleted. An open volume is closed.
func (s *Server) remove(name string, assumeV0 bool) error {
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	m, temporary, err := s.hold(v, assumeV0, false)
	if err != nil {
		return err
	}
	res, err := mapper.Delete(m)
	if err != nil {
		s.settle(v, temporary, m, false)
		return err
	}
	if err := s.st.runPlan(res.Plan()); err != nil {
		s.settle(v, temporary, nil, false)
		return err
	}
	s.settle(v, temporary, nil, true)
	s.log.WithFields(map[string]any{"volume": name, "objects": len(res.Objects)}).Info("removed")
	return nil
}

// rename moves volume name to newName. Both are closed after it.
func (s *Server) rename(name, newName string, assumeV0 bool) error {
	v, nv := s.volume(name), s.volume(newName)
	defer s.done(v)
	defer s.done(nv)
	unlock := lockAll(v, nv)
	defer unlock()
	if v == nv {
		return fmt.Errorf("%w: %q is the volume's name", mapper.ErrExists, newName)
	}
	m, temporary, err := s.hold(v, assumeV0, false)
	if err != nil {
		return err
	}
	gone, err := s.renameHeld(m, nv)
	switch {
	case err == nil:
		s.settle(v, temporary, nil, true)
	case gone:
		s.settle(v, temporary, nil, false)
	default:
		s.settle(v, temporary, m, false)
	}
	if err != nil {
		return err
	}
	s.log.WithFields(map[string]any{"volume": name, "to": newName}).Info("renamed")
	return nil
}

// renameHeld renames m to nv's name, both held; changed tells whether
// storage may have changed when it fails.
func (s *Server) renameHeld(m *mapper.Map, nv *volume) (changed bool, err error) {
	if err := s.takeNew(nv); err != nil {
		return false, err
	}
	defer s.unlockQuietly(nv.name)
	existing, err := s.st.existing(nv.name)
	if err != nil {
		return false, err
	}
	res, err := mapper.Rename(m, nv.name, existing)
	if errors.Is(err, mapper.ErrExists) && existing != nil {
		// A rename cut short leaves the new map written and the old one
		// live; finish it if that is what the new name holds.
		if prev, ok := s.interruptedRename(m, nv.name, *existing); ok {
			res, err = mapper.Rename(m, nv.name, &prev)
		}
	}
	if err != nil {
		return false, err
	}
	if err := s.st.runPlan(res.Plan()); err != nil {
		return true, err
	}
	nv.cached.Store(nil)
	return false, nil
}

// interruptedRename reports whether the live map under newName is what a
// rename of m cut short wrote (same size and entries), and returns the
// header to pass as existing so that the rename writes it again with the
// same epoch.
func (s *Server) interruptedRename(m *mapper.Map, newName string, existing mapper.Header) (mapper.Header, bool) {
	if existing.Deleted() || existing.Epoch == 0 || existing.ReadOnly() != m.ReadOnly() {
		return mapper.Header{}, false
	}
	nm, err := s.st.lookup(newName, false)
	if err != nil {
		return mapper.Header{}, false
	}
	c := *nm
	c.Name, c.Header = m.Name, m.Header
	if !c.Equal(m) {
		return mapper.Header{}, false
	}
	prev := existing
	prev.Flags |= mapper.MapDeleted
	prev.Epoch--
	s.log.WithFields(map[string]any{"volume": m.Name, "to": newName}).Warn("finishing a rename cut short")
	return prev, true
}

// change runs an operation that changes the live map of volume name: op
// returns the new map and the plan that stores it; the plan runs with the
// volume's lock held (taken for the operation if the volume is not open
// here), and the new map is cached if the volume is open.
func (s *Server) change(name string, assumeV0 bool, op func(m *mapper.Map) (*mapper.Map, mapper.Plan, error)) error {
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	m, temporary, err := s.hold(v, assumeV0, false)
	if err != nil {
		return err
	}
	next, plan, err := op(m)
	if err != nil {
		s.settle(v, temporary, m, false)
		return err
	}
	if err := s.st.runPlan(plan); err != nil {
		s.settle(v, temporary, nil, false)
		return err
	}
	s.settle(v, temporary, next, false)
	return nil
}

// resize sets the size of volume name; shrinking needs force.
func (s *Server) resize(name string, size uint64, force, assumeV0 bool) error {
	var from uint64
	err := s.change(name, assumeV0, func(m *mapper.Map) (*mapper.Map, mapper.Plan, error) {
		from = m.Size
		res, err := mapper.Resize(m, size, force)
		if err != nil {
			return nil, mapper.Plan{}, err
		}
		return res.Map, res.Plan(), nil
	})
	if err == nil {
		s.log.WithFields(map[string]any{"volume": name, "from": from, "to": size}).Info("resized")
	}
	return err
}

// discard points the whole blocks of [off, off+size) of volume name at
// the zero block and deletes the objects it owned (NBD TRIM and
// WRITE_ZEROES through vlmcd, which holds the volume's I/O meanwhile).
func (s *Server) discard(name string, off, size uint64, assumeV0 bool) error {
	return s.change(name, assumeV0, func(m *mapper.Map) (*mapper.Map, mapper.Plan, error) {
		res, err := mapper.Discard(m, off, size)
		if err != nil {
			return nil, mapper.Plan{}, err
		}
		return res.Map, res.Plan(), nil
	})
}

// hashParallel is how many objects a HASH has the data blocker hash at
// once: each reads a whole object.
const hashParallel = 4

// hash content-addresses snapshot name: the data blocker hashes each of
// its objects (storing a copy under the content's name), and the image's
// map, named by its Merkle hash, is stored; the reply carries that name.
// Hashing the same content again finds the image there.
func (s *Server) hash(r xseg.Request, name string, assumeV0 bool) error {
	started := time.Now()
	if len(r.Data()) < protocol.NameLen {
		return protocol.EncodeName(r.Data(), "") // says why
	}
	m, err := s.st.lookup(name, assumeV0)
	if err != nil {
		return err
	}
	targets, err := mapper.HashTargets(m)
	if err != nil {
		return err
	}
	hashes := make(map[uint64]string, len(targets))
	var mu sync.Mutex
	err = parallel(len(targets), hashParallel, func(i int) error {
		h, err := s.st.hash(targets[i].Name)
		if err != nil {
			return err
		}
		mu.Lock()
		hashes[targets[i].Index] = h
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	img, err := mapper.Hashed(m, hashes)
	if err != nil {
		return err
	}
	if s.st.mapPort == s.st.dataPort {
		for _, e := range img.Stored() {
			if e.Name == img.Name {
				return fmt.Errorf("%w: the image of %q would be named %s like its only object; run mapperd with a map blocker of its own", ErrSameStore, name, img.Name)
			}
		}
	}
	if err := s.storeImage(img); err != nil {
		return err
	}
	if err := protocol.EncodeName(r.Data(), img.Name); err != nil {
		return err
	}
	r.SetServiced(protocol.NameLen)
	s.log.WithFields(map[string]any{"volume": name, "image": img.Name, "objects": len(targets), "took": time.Since(started).String()}).Info("hashed")
	return nil
}

// storeImage stores a hashed image's map unless the same image is there.
func (s *Server) storeImage(img *mapper.Map) error {
	v := s.volume(img.Name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	if err := s.takeNew(v); err != nil {
		return err
	}
	defer s.unlockQuietly(img.Name)
	f, err := s.st.find(img.Name, false, true)
	if err != nil {
		return err
	}
	if f.live() && f.object == img.Name {
		if f.m.Equal(img) {
			return nil
		}
		return fmt.Errorf("%w: image %s is stored with other sizes or blocks", mapper.ErrExists, img.Name)
	}
	return s.st.runPlan(mapper.NewMapPlan(img))
}

// update makes sure the map of volume name is in the v2 format, upgrading
// a v1 map (and, with FlagAssumeV0, a v0 map: Pithos can no longer read
// it) and moving a legacy "archip_<name>" map to its name.
func (s *Server) update(name string, assumeV0 bool) error {
	f, err := s.st.find(name, assumeV0, false)
	if err != nil {
		return err
	}
	if err := f.mustLive(name); err != nil {
		return err
	}
	if f.header.Version == mapper.V2 && f.object == name {
		return nil
	}
	v := s.volume(name)
	defer s.done(v)
	v.ops.Lock()
	defer v.ops.Unlock()
	m, temporary, err := s.hold(v, assumeV0, true)
	if err != nil {
		return err
	}
	s.settle(v, temporary, m, false)
	s.log.WithField("volume", name).Info("map upgraded to v2")
	return nil
}
