package mapper

import (
	"cmp"
	"fmt"
	"slices"
)

// Segment is the part of one object that a volume I/O touches: what
// X_MAPR and X_MAPW reply, one per block, in volume order.
type Segment struct {
	Index  uint64 // block index in the volume
	Object string
	Offset uint64 // byte offset in the object
	Length uint64
	// Zero: the block is the zero block, which reads as zeros with no I/O
	// (and need not exist). MapWrite never returns a zero segment.
	Zero bool
}

// CopyUp is the copy of one block to a fresh object that a write (or a cut
// by Resize) needs because the block's object is shared or is the zero
// block.
type CopyUp struct {
	Index uint64
	// From is the entry before: read-only (shared with a snapshot or an
	// image) or the zero block.
	From Entry
	// To is the entry after: the fresh object CopyUpName(volume, epoch,
	// Index), flags EntryWritable|EntryArchip.
	To Entry
	// Size is how many bytes of From to copy: the block size, or less when
	// Resize cuts the last block.
	Size uint64
}

// NeedsCopy reports whether the copy-up copies data: not when it starts
// from the zero block (the fresh object is created, reading as zeros), nor
// when From already names the fresh object (see MapWrite).
func (c CopyUp) NeedsCopy() bool { return !c.From.zeroBlock() && c.From.Name != c.To.Name }

// zeroBlock reports whether e reads as zeros: the EntryZero flag (which
// vlmcd trusts), or the zero block's name without it (the original's hash
// code wrote such entries).
func (e Entry) zeroBlock() bool { return e.Zero() || e.Name == ZeroObject }

// blockRange calls f for each block that [offset, offset+size) touches.
func (m *Map) blockRange(offset, size uint64, f func(i, off, n uint64) error) error {
	if err := m.check(); err != nil {
		return err
	}
	if m.Deleted() {
		return fmt.Errorf("%w: %q", ErrDeleted, m.Name)
	}
	if end := offset + size; end < offset || end > m.Size {
		return fmt.Errorf("%w: %q: [%d, +%d) in a volume of %d bytes", ErrOutOfRange, m.Name, offset, size, m.Size)
	}
	bs := uint64(m.BlockSize)
	for size > 0 {
		i, off := offset/bs, offset%bs
		n := min(size, bs-off)
		if err := f(i, off, n); err != nil {
			return err
		}
		offset += n
		size -= n
	}
	return nil
}

// MapRead maps a read of size bytes at offset of volume m to segments, as
// X_MAPR: one per block touched. A size of 0 gives no segment. Reading a
// deleted map, past its end, or a block whose object was deleted fails.
// Snapshots and images are read like volumes.
func MapRead(m *Map, offset, size uint64) ([]Segment, error) {
	segs := make([]Segment, 0, segmentsFor(m, offset, size))
	err := m.blockRange(offset, size, func(i, off, n uint64) error {
		e := m.entries.get(i)
		if e.Deleted() {
			return fmt.Errorf("%w: %q block %d: object %q was deleted", ErrDeleted, m.Name, i, e.Name)
		}
		segs = append(segs, Segment{Index: i, Object: e.Name, Offset: off, Length: n, Zero: e.zeroBlock()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("map read: %w", err)
	}
	return segs, nil
}

func segmentsFor(m *Map, offset, size uint64) int {
	if size == 0 || m.BlockSize == 0 {
		return 0
	}
	bs := uint64(m.BlockSize)
	n := (offset%bs + size + bs - 1) / bs
	return int(min(n, 64))
}

// MapWrite maps a write of size bytes at offset of volume m to segments, as
// X_MAPW, and lists the copy-ups they need: every touched block whose entry
// is not writable is copied up to CopyUpName(m.Name, m.Epoch, index), and
// its segment already names that object. m itself is not changed.
//
// The peer then runs CopyUpPlan (object first, entry after: an entry never
// names an object that was not written), applies the copy-ups to its map
// with ApplyCopyUps, and only then replies with the segments: data written
// to them is in the volume for good.
//
// Hazard: two writes to the same block, mapped before either copy-up is
// applied, get the same copy-up; the second copy would overwrite with the
// old data what the first write put in the fresh object. The peer must run
// at most one copy-up per block at a time, and map a write again once the
// copy-up it waited for is applied (the original's per-object COPYING
// state).
//
// An entry that is read-only yet already names the object its copy-up
// would make can be left by the original when it was killed in the middle
// of a snapshot (entries written, header not); no snapshot names it, so the
// copy-up just makes it writable again (NeedsCopy is false).
func MapWrite(m *Map, offset, size uint64) ([]Segment, []CopyUp, error) {
	if m.ReadOnly() && !m.Deleted() {
		return nil, nil, fmt.Errorf("map write: %w: %q", ErrReadOnly, m.Name)
	}
	if err := m.checkLive(); err != nil {
		return nil, nil, fmt.Errorf("map write: %w", err)
	}
	segs := make([]Segment, 0, segmentsFor(m, offset, size))
	var cus []CopyUp
	err := m.blockRange(offset, size, func(i, off, n uint64) error {
		e := m.entries.get(i)
		if e.Deleted() {
			return fmt.Errorf("%w: %q block %d: object %q was deleted", ErrDeleted, m.Name, i, e.Name)
		}
		if !e.Writable() {
			to := Entry{Name: CopyUpName(m.Name, m.Epoch, i), Flags: EntryWritable | EntryArchip}
			cus = append(cus, CopyUp{Index: i, From: e, To: to, Size: uint64(m.BlockSize)})
			e = to
		}
		segs = append(segs, Segment{Index: i, Object: e.Name, Offset: off, Length: n})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("map write: %w", err)
	}
	return segs, cus, nil
}

// CopyUpPlan returns the storage I/O of copy-ups of map m: the objects
// first (copied from their source, or created empty for a zero block), the
// entries after, each written alone (adjacent ones in one write): other
// entries of the same map block may be changing at the same time.
func CopyUpPlan(m *Map, cus []CopyUp) Plan {
	var data, entries []Action
	for _, c := range cus {
		switch {
		case c.From.zeroBlock():
			data = append(data, Action{Op: OpCreate, Store: DataStore, Object: c.To.Name, Size: uint64(m.BlockSize)})
		case c.NeedsCopy():
			data = append(data, Action{Op: OpCopy, Store: DataStore, Object: c.To.Name, Source: c.From.Name, Size: c.Size})
		}
	}
	sorted := slices.SortedFunc(slices.Values(cus), func(a, b CopyUp) int { return cmp.Compare(a.Index, b.Index) })
	perChunk := uint64(min(m.BlockSize, ChunkLen)) / EntryLen
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Index == sorted[j-1].Index+1 && sorted[j].Index/perChunk == sorted[i].Index/perChunk {
			j++
		}
		a := entryWrite(m, sorted[i].Index, sorted[i].To)
		for _, c := range sorted[i+1 : j] {
			var b [EntryLen]byte
			mustEncode(b[:], c.To)
			a.Data = append(a.Data, b[:]...)
		}
		entries = append(entries, a)
		i = j
	}
	var p Plan
	p.add("copy up the objects", data)
	p.add("point the entries at them", entries)
	return p
}

// entryWrite is the write of entry e at index i of m.
func entryWrite(m *Map, i uint64, e Entry) Action {
	obj, off := EntryPosition(m.Name, m.BlockSize, i)
	data := make([]byte, EntryLen, EntryLen*2)
	mustEncode(data, e)
	return Action{Op: OpWrite, Store: MapStore, Object: obj, Offset: off, Data: data}
}

func mustEncode(b []byte, e Entry) {
	if err := EncodeEntry(b, e); err != nil {
		panic(fmt.Sprintf("mapper: encoding entry %v: %v", e, err))
	}
}

// ApplyCopyUps returns m with the copy-ups' entries in place, once their
// plan is done. A copy-up whose entry already holds its To is skipped (it
// was applied); one whose entry holds neither its From nor its To is
// ErrConflict: something else changed the block meanwhile (a snapshot or a
// removal that did not wait for it), and the peer must not reply with its
// segments.
func ApplyCopyUps(m *Map, cus []CopyUp) (*Map, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b := newBuilder(m.entries)
	for _, c := range cus {
		if c.Index >= m.Len() {
			return nil, fmt.Errorf("apply copy-up: %w: %q block %d of %d", ErrOutOfRange, m.Name, c.Index, m.Len())
		}
		if err := checkObjectName(c.To.Name); err != nil {
			return nil, fmt.Errorf("apply copy-up of %q block %d: %w", m.Name, c.Index, err)
		}
		switch cur := b.get(c.Index); cur {
		case c.To:
		case c.From:
			b.set(c.Index, c.To)
		default:
			return nil, fmt.Errorf("apply copy-up: %w: %q block %d is %v, the copy-up went from %v to %v", ErrConflict, m.Name, c.Index, cur, c.From, c.To)
		}
	}
	return m.with(b.table()), nil
}
