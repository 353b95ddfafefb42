package mapper

import (
	"fmt"
	"math"
)

// The operations on maps. Each takes maps and returns new ones (its inputs
// are left as they were) with, where the map on storage changes, the Plan
// that makes the change durable. Locking is the peer's: every operation
// here assumes the caller holds the lock of every map it writes, and that
// `existing` is the header just read under that lock.
//
// existing is the header stored under the name of the map being made,
// nil if there is none. A map marked deleted may be replaced: its epoch is
// carried on, so the new map never produces an object name the old one
// produced (the names of objects that snapshots of the old map still use).
// A peer that finds an object of that name it cannot decode should refuse
// (ErrExists) rather than overwrite it.

// checkNew refuses to make a map over a live one and returns the epoch the
// new map starts from (the deleted map's, or 0).
func checkNew(name string, existing *Header) (uint64, error) {
	if err := ValidateVolumeName(name); err != nil {
		return 0, err
	}
	if existing == nil {
		return 0, nil
	}
	if !existing.Deleted() {
		return 0, fmt.Errorf("%w: %q", ErrExists, name)
	}
	return existing.Epoch, nil
}

// Create returns a new thin volume of size bytes: every entry the zero
// block, flags 0, epoch 1 (or the deleted predecessor's + 1). blockSize 0
// means DefaultBlockSize. Store it with NewMapPlan. The original created
// volumes through X_CLONE with no parent, and refused epochs beyond 2^64-3
// so that at least one snapshot stays possible; so do we.
func Create(name string, size uint64, blockSize uint32, existing *Header) (*Map, error) {
	prev, err := checkNew(name, existing)
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", name, err)
	}
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if size == 0 {
		return nil, fmt.Errorf("create %q: %w: size 0", name, ErrInvalidSize)
	}
	if prev >= math.MaxUint64-2 {
		return nil, fmt.Errorf("create %q: %w", name, ErrEpochExhausted)
	}
	h := Header{Version: V2, Size: size, BlockSize: blockSize, Epoch: prev + 1}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("create %q: %w", name, err)
	}
	return &Map{Name: name, Header: h, entries: emptyBuilder(h.Entries()).table()}, nil
}

// Clone returns a new writable volume name made from the snapshot parent:
// size bytes (0 means the parent's; less than the parent's is
// ErrInvalidSize), the parent's block size, epoch 1 (or the deleted
// predecessor's + 1). Its entries name the parent's objects with
// EntryArchip and EntryZero kept and EntryWritable (and EntryDeleted)
// dropped, so the first write to each copies it up; entries past the
// parent's are zero blocks. Nothing is copied: the clone shares the
// parent's memory too. Store it with NewMapPlan.
//
// The original always gave clones 4 MiB blocks, whatever the parent's,
// which mis-addressed the data of parents with other block sizes (only
// X_CREATE made those); we keep the parent's.
func Clone(parent *Map, name string, size uint64, existing *Header) (*Map, error) {
	if err := parent.check(); err != nil {
		return nil, fmt.Errorf("clone %q to %q: %w", parent.Name, name, err)
	}
	if !parent.ReadOnly() {
		return nil, fmt.Errorf("clone %q to %q: %w: clone a snapshot of it", parent.Name, name, ErrNotSnapshot)
	}
	if parent.Deleted() {
		return nil, fmt.Errorf("clone %q to %q: %w: %q", parent.Name, name, ErrDeleted, parent.Name)
	}
	prev, err := checkNew(name, existing)
	if err != nil {
		return nil, fmt.Errorf("clone %q to %q: %w", parent.Name, name, err)
	}
	if size == 0 {
		size = parent.Size
	}
	if size < parent.Size {
		return nil, fmt.Errorf("clone %q to %q: %w: %d bytes is smaller than the parent's %d", parent.Name, name, ErrInvalidSize, size, parent.Size)
	}
	if prev >= math.MaxUint64-2 {
		return nil, fmt.Errorf("clone %q to %q: %w", parent.Name, name, ErrEpochExhausted)
	}
	h := Header{Version: V2, Size: size, BlockSize: parent.BlockSize, Epoch: prev + 1}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("clone %q to %q: %w", parent.Name, name, err)
	}
	b := newBuilder(parent.entries)
	b.clearFlags(EntryWritable | EntryDeleted)
	b.resize(h.Entries())
	return &Map{Name: name, Header: h, entries: b.table()}, nil
}

// SnapshotResult is the outcome of Snapshot.
type SnapshotResult struct {
	// Source is the volume after the snapshot: every entry read-only, the
	// epoch one higher, so later writes copy up to fresh names.
	Source *Map
	// Snapshot is the new read-only map, sharing Source's entries.
	Snapshot *Map
	before   *Map
}

// Snapshot freezes the volume src under a new read-only map snapName, as
// the original's X_SNAPSHOT: the snapshot shares src's entries (and its
// memory); src's entries all lose EntryWritable and its epoch grows by one.
// src must be writable and live. The snapshot's epoch is 0, as in the
// original, or, if snapName names a deleted map, that map's epoch: the
// original reset it to 0, which let a later volume of that name reuse the
// old one's object names.
//
// The volume must be quiet meanwhile: vlmcd holds its I/O and the peer
// waits for its copy-ups (the original's SNAPSHOTTING state). In memory
// the cost is one reference per 1024 blocks, whatever was written (a few
// microseconds for 1 TiB); the plan writes the snapshot's whole map and the
// source's entries that were writable.
func Snapshot(src *Map, snapName string, existing *Header) (*SnapshotResult, error) {
	if err := src.checkLive(); err != nil {
		return nil, fmt.Errorf("snapshot %q as %q: %w", src.Name, snapName, err)
	}
	if src.ReadOnly() {
		return nil, fmt.Errorf("snapshot %q as %q: %w: %q is a snapshot", src.Name, snapName, ErrReadOnly, src.Name)
	}
	if snapName == src.Name {
		return nil, fmt.Errorf("snapshot %q as %q: %w", src.Name, snapName, ErrExists)
	}
	prev, err := checkNew(snapName, existing)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q as %q: %w", src.Name, snapName, err)
	}
	if src.Epoch == math.MaxUint64 {
		return nil, fmt.Errorf("snapshot %q as %q: %w", src.Name, snapName, ErrEpochExhausted)
	}
	b := newBuilder(src.entries)
	b.clearFlags(EntryWritable)
	t := b.table()
	source := src.with(t)
	source.Epoch++
	snap := &Map{Name: snapName, Header: Header{
		Version:   V2,
		Size:      src.Size,
		BlockSize: src.BlockSize,
		Flags:     MapReadOnly,
		Epoch:     prev,
	}, entries: t}
	return &SnapshotResult{Source: source, Snapshot: snap, before: src}, nil
}

// Plan returns the snapshot's storage I/O: the source's header (new epoch),
// the source's entries that lost EntryWritable (a span per map I/O chunk),
// then the snapshot's map, entries and header.
//
// The header goes first: were the entries made read-only first and the
// peer killed before the header, the next write would copy a block up to
// the very name it already has (same epoch), onto itself. The original
// wrote entries first and had that window.
func (r *SnapshotResult) Plan() Plan {
	var changed []uint64
	r.before.entries.eachStored(EntryWritable, func(i uint64, e Entry) bool {
		if e.Writable() {
			changed = append(changed, i)
		}
		return true
	})
	var p Plan
	p.add("write the source's header with its new epoch", []Action{headerWrite(r.Source.Name, r.Source.Header)})
	p.add("make the source's entries read-only", spanWrites(r.Source, changed))
	p.add("write the snapshot's entries", entryWrites(r.Snapshot, 0, r.Snapshot.Len()))
	p.add("write the snapshot's header", []Action{headerWrite(r.Snapshot.Name, r.Snapshot.Header)})
	return p
}

// ResizeResult is the outcome of Resize.
type ResizeResult struct {
	Map *Map
	// Tail, if not nil, is the copy-up that cuts the last block at the new
	// size (see Resize).
	Tail   *CopyUp
	before *Map
}

// Resize returns m with a new size, as the original's X_TRUNCATE. Growing
// appends zero blocks. Shrinking needs force (ErrShrink otherwise), drops
// the entries past the end and bumps the epoch: otherwise a block dropped
// and grown again would copy up to the name of its dropped object, which
// may still hold the old data (the original had that bug, and never deleted
// the dropped objects). If the new size ends inside a block that holds
// data, that block is copied up to a fresh object cut at the new size, so
// that growing again shows zeros there and not the dropped bytes (the
// original showed them): bytes past the end of a volume are zero in its
// last object, which clones and growths rely on. Snapshots are not resized
// (ErrReadOnly).
func Resize(m *Map, size uint64, force bool) (*ResizeResult, error) {
	if err := m.checkLive(); err != nil {
		return nil, fmt.Errorf("resize %q: %w", m.Name, err)
	}
	if m.ReadOnly() {
		return nil, fmt.Errorf("resize %q: %w", m.Name, ErrReadOnly)
	}
	if size == 0 {
		return nil, fmt.Errorf("resize %q: %w: size 0", m.Name, ErrInvalidSize)
	}
	h := m.Header
	h.Size = size
	shrink := size < m.Size
	if shrink {
		if !force {
			return nil, fmt.Errorf("resize %q from %d to %d bytes: %w", m.Name, m.Size, size, ErrShrink)
		}
		if h.Epoch == math.MaxUint64 {
			return nil, fmt.Errorf("resize %q: %w", m.Name, ErrEpochExhausted)
		}
		h.Epoch++
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("resize %q: %w", m.Name, err)
	}
	b := newBuilder(m.entries)
	b.resize(h.Entries())
	var tail *CopyUp
	if cut := size % uint64(h.BlockSize); shrink && cut != 0 {
		i := size / uint64(h.BlockSize)
		if e := b.get(i); !e.Zero() && !e.Deleted() {
			tail = &CopyUp{
				Index: i,
				From:  e,
				To:    Entry{Name: CopyUpName(m.Name, h.Epoch, i), Flags: EntryWritable | EntryArchip},
				Size:  cut,
			}
			b.set(i, tail.To)
		}
	}
	out := &Map{Name: m.Name, Header: h, entries: b.table()}
	return &ResizeResult{Map: out, Tail: tail, before: m}, nil
}

// Plan returns the resize's storage I/O. Growing: the new entries, then
// the header. Shrinking without a cut: the header (from then on the dropped
// blocks are unreachable), then the dropped objects that m owned and the
// map blocks wholly past the end are deleted. With a cut: the header with
// the new epoch but the old size first, then the cut copy, then the last
// block's entry, then the header with the new size, then the deletions
// (the last block's old object too, if m owned it).
//
// Cut short, the volume has its old or its new size and serves everything
// it keeps; deletions left undone only leak objects. The cut is done while
// the old size still holds, so that a crash cannot leave a volume whose last
// block hides the dropped bytes past its end (a later growth would show
// them); it may leave the volume at its old size with the dropped part of
// the last block already reading zeros, and resizing again finishes. No
// entry ever names an object of an epoch its header has not reached: a
// later copy-up could otherwise take that object for its own.
func (r *ResizeResult) Plan() Plan {
	var p Plan
	oldN, newN := r.before.Len(), r.Map.Len()
	if r.Map.Size >= r.before.Size {
		p.add("write the new entries", entryWrites(r.Map, oldN, newN-oldN))
		p.add("write the header", []Action{headerWrite(r.Map.Name, r.Map.Header)})
		return p
	}
	var dels []Action
	if t := r.Tail; t != nil {
		bumped := r.before.Header
		bumped.Epoch = r.Map.Epoch
		p.add("write the header with the new epoch, the old size", []Action{headerWrite(r.Map.Name, bumped)})
		p.add("copy the last block, cut at the new size", []Action{{Op: OpCopy, Store: DataStore, Object: t.To.Name, Source: t.From.Name, Size: t.Size}})
		p.add("point the last block at its cut copy", []Action{entryWrite(r.Map, t.Index, t.To)})
		if t.From.Deletable() {
			dels = append(dels, Action{Op: OpDelete, Store: DataStore, Object: t.From.Name})
		}
	}
	p.add("write the header with the new size", []Action{headerWrite(r.Map.Name, r.Map.Header)})
	for _, e := range r.before.Deletable() {
		if e.Index >= newN {
			dels = append(dels, Action{Op: OpDelete, Store: DataStore, Object: e.Name})
		}
	}
	for blk := MapBlocks(newN, r.Map.BlockSize); blk < MapBlocks(oldN, r.Map.BlockSize); blk++ {
		dels = append(dels, Action{Op: OpDelete, Store: MapStore, Object: MapBlockName(r.Map.Name, blk)})
	}
	p.add("delete the dropped objects and map blocks", dels)
	return p
}

// DeleteResult is the outcome of Delete.
type DeleteResult struct {
	// Map is the removed map: marked deleted, its deleted objects' entries
	// marked EntryDeleted, its epoch kept.
	Map *Map
	// Objects are the entries whose objects the removal deletes.
	Objects []IndexedEntry
}

// Delete removes the volume m, as the original's X_DELETE: the objects m
// owns alone (Entry.Deletable) are deleted, their entries marked deleted,
// and the header marked deleted. The header and the map blocks stay, so
// that the name's epoch survives: a volume made later under the same name
// never reuses an object name that a snapshot may still point at. Objects
// shared with snapshots or images are kept; nothing collects them (the
// original had no garbage collector either). Removing a removed map is
// ErrDeleted. A snapshot may be removed: it owns no object.
func Delete(m *Map) (*DeleteResult, error) {
	if err := m.checkLive(); err != nil {
		return nil, fmt.Errorf("remove %q: %w", m.Name, err)
	}
	objs := m.Deletable()
	b := newBuilder(m.entries)
	for _, o := range objs {
		e := o.Entry
		e.Flags |= EntryDeleted
		b.set(o.Index, e)
	}
	out := m.with(b.table())
	out.Flags |= MapDeleted
	return &DeleteResult{Map: out, Objects: objs}, nil
}

// Plan returns the removal's storage I/O: delete the objects, mark their
// entries deleted, mark the header deleted. Cut short, the volume is still
// there and a second Delete (on the map loaded again) finishes the job; the
// entries of objects already deleted but not yet marked name missing
// objects, which read as zeros, and the volume was being removed anyway.
func (r *DeleteResult) Plan() Plan {
	var p Plan
	dels := make([]Action, 0, len(r.Objects))
	idx := make([]uint64, 0, len(r.Objects))
	for _, o := range r.Objects {
		dels = append(dels, Action{Op: OpDelete, Store: DataStore, Object: o.Name})
		idx = append(idx, o.Index)
	}
	p.add("delete the volume's own objects", dels)
	p.add("mark their entries deleted", spanWrites(r.Map, idx))
	p.add("mark the header deleted", []Action{headerWrite(r.Map.Name, r.Map.Header)})
	return p
}

// RenameResult is the outcome of Rename.
type RenameResult struct {
	// Map is the volume under its new name.
	Map *Map
	// Old is the header left under the old name, marked deleted with its
	// epoch kept.
	Old     Header
	oldName string
	oldN    uint64
}

// Rename moves m to newName, as the original's X_RENAME: the map is written
// under the new name with epoch 1 (or the deleted predecessor's + 1), and
// the old header is marked deleted, keeping its epoch, and its map blocks
// deleted. Objects keep their names: writable ones stay writable (they are
// still this volume's alone) and later copy-ups use the new name.
func Rename(m *Map, newName string, existing *Header) (*RenameResult, error) {
	if err := m.checkLive(); err != nil {
		return nil, fmt.Errorf("rename %q to %q: %w", m.Name, newName, err)
	}
	if newName == m.Name {
		return nil, fmt.Errorf("rename %q to %q: %w", m.Name, newName, ErrExists)
	}
	prev, err := checkNew(newName, existing)
	if err != nil {
		return nil, fmt.Errorf("rename %q to %q: %w", m.Name, newName, err)
	}
	if prev == math.MaxUint64 {
		return nil, fmt.Errorf("rename %q to %q: %w", m.Name, newName, ErrEpochExhausted)
	}
	out := m.with(m.entries)
	out.Name = newName
	out.Epoch = prev + 1
	old := m.Header
	old.Flags |= MapDeleted
	return &RenameResult{Map: out, Old: old, oldName: m.Name, oldN: m.Len()}, nil
}

// Plan returns the rename's storage I/O: the new map (entries, header),
// then the old header marked deleted, then the old map blocks deleted. Cut
// short before the old header, both names hold the volume and the old one
// is still the live one (its lock is held); the peer finishes by running
// the plan again.
func (r *RenameResult) Plan() Plan {
	p := NewMapPlan(r.Map)
	p.add("mark the old header deleted", []Action{headerWrite(r.oldName, r.Old)})
	var dels []Action
	for blk := range MapBlocks(r.oldN, r.Old.BlockSize) {
		dels = append(dels, Action{Op: OpDelete, Store: MapStore, Object: MapBlockName(r.oldName, blk)})
	}
	p.add("delete the old map blocks", dels)
	return p
}

// Upgrade returns a map loaded from the v0 or v1 format as a v2 map, which
// NewMapPlan stores in place: its map blocks, then the v2 header over the
// start of the old object. Until the header is written the old format is
// what loads. The original did this whenever it opened such a map
// exclusively. Beware that rewriting a v0 map makes it unreadable to Pithos.
// A v2 map is returned as it is.
func Upgrade(m *Map) (*Map, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("upgrade %q: %w", m.Name, err)
	}
	out := m.with(m.entries)
	out.Version = V2
	return out, nil
}
