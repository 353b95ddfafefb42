package mapper

import (
	"fmt"
	"math"
)

// DiscardResult is the outcome of Discard.
type DiscardResult struct {
	Map *Map
	// Dropped are the blocks that now read as zeros, with the entries they
	// had.
	Dropped []IndexedEntry
}

// Discard returns m with every block wholly inside [offset, offset+size)
// pointing at the zero block, as TRIM and WRITE_ZEROES of an NBD client
// ask: the blocks read as zeros and the objects m owned alone are deleted,
// giving their space back. Parts of blocks are left alone (the caller
// writes zeros there if it must). The epoch is bumped when an owned object
// is dropped, for the reason Resize bumps it: a later write to the block
// copies up to a fresh name, never to the dropped object's, which a crash
// may leave behind with its old bytes. Snapshots are not discarded
// (ErrReadOnly); a range past the end is ErrOutOfRange.
func Discard(m *Map, offset, size uint64) (*DiscardResult, error) {
	if err := m.checkLive(); err != nil {
		return nil, fmt.Errorf("discard %q: %w", m.Name, err)
	}
	if m.ReadOnly() {
		return nil, fmt.Errorf("discard %q: %w", m.Name, ErrReadOnly)
	}
	if end := offset + size; end < offset || end > m.Size {
		return nil, fmt.Errorf("discard %q: %w: %d bytes at %d, volume of %d", m.Name, ErrOutOfRange, size, offset, m.Size)
	}
	bs := uint64(m.BlockSize)
	first, end := (offset+bs-1)/bs, (offset+size)/bs
	if offset+size == m.Size { // the last block, even if short
		end = m.Len()
	}
	h := m.Header
	var dropped []IndexedEntry
	b := newBuilder(m.entries)
	bump := false
	for i := first; i < end; i++ {
		e := b.get(i)
		if e.zeroBlock() {
			continue
		}
		dropped = append(dropped, IndexedEntry{Index: i, Entry: e})
		bump = bump || e.Deletable()
		b.set(i, ZeroEntry)
	}
	if bump {
		if h.Epoch == math.MaxUint64 {
			return nil, fmt.Errorf("discard %q: %w", m.Name, ErrEpochExhausted)
		}
		h.Epoch++
	}
	return &DiscardResult{Map: &Map{Name: m.Name, Header: h, entries: b.table()}, Dropped: dropped}, nil
}

// Plan returns the discard's storage I/O: the header with the new epoch
// (if it changed), then the entries of the dropped blocks, then the
// deletion of the objects m owned. Cut short, a block reads its old data
// or zeros, and an object left undeleted only leaks space: no entry names
// it and, the epoch being past it, no copy-up will.
func (r *DiscardResult) Plan() Plan {
	var p Plan
	if len(r.Dropped) == 0 {
		return p
	}
	p.add("write the header with the new epoch", []Action{headerWrite(r.Map.Name, r.Map.Header)})
	idx := make([]uint64, len(r.Dropped))
	var dels []Action
	for k, d := range r.Dropped {
		idx[k] = d.Index
		if d.Entry.Deletable() {
			dels = append(dels, Action{Op: OpDelete, Store: DataStore, Object: d.Entry.Name})
		}
	}
	p.add("point the dropped blocks at the zero block", spanWrites(r.Map, idx))
	p.add("delete the dropped objects", dels)
	return p
}
