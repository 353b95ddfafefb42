package mapper

import (
	"fmt"
	"iter"
	"math"
)

// Version is an on-storage map format.
type Version uint32

// The map formats of the original (mapper-version{0,1,2}.c).
const (
	// V0 is a Pithos hashmap: raw SHA-256 digests, no header. Read only.
	V0 Version = 0
	// V1 is the map of Archipelago ≤ 0.3: a 12-byte header and 33-byte
	// entries in one object. Read only.
	V1 Version = 1
	// V2 is the map of Archipelago 0.4: a 32-byte header object and the
	// entries in separate map-block objects. Read and written.
	V2 Version = 2
)

// MapFlags are the flags of a v2 map header.
type MapFlags uint32

const (
	// MapReadOnly marks a snapshot or an image: no writes, clones allowed.
	MapReadOnly MapFlags = 1
	// MapDeleted marks a removed volume. The header stays on storage so
	// that the name's epoch survives and object names are never reused.
	MapDeleted MapFlags = 2
)

// EntryFlags are the flags of a map entry (one byte on storage).
type EntryFlags uint8

const (
	// EntryWritable: the object belongs to this map alone and is written in
	// place. Without it a write first copies the object up.
	EntryWritable EntryFlags = 1
	// EntryArchip: the object was created by Archipelago (not a Pithos
	// block), so it may be deleted with the last map that owns it.
	EntryArchip EntryFlags = 2
	// EntryZero: the object is the zero block; it reads as zeros, no I/O.
	EntryZero EntryFlags = 4
	// EntryDeleted: the object was deleted while removing the volume.
	EntryDeleted EntryFlags = 8

	entryFlagsMask = EntryWritable | EntryArchip | EntryZero | EntryDeleted
)

// Limits and defaults.
const (
	// DefaultBlockSize is the object size of a volume when none is given,
	// and the only one of v0 and v1 maps: 4 MiB.
	DefaultBlockSize = 4 << 20
	// MaxEntries bounds the entries of one map (our limit, not the
	// original's): 2^26 entries of 4 MiB blocks are 256 TiB, and up to
	// 1.5 GiB of memory if every block is written.
	MaxEntries = 1 << 26
	// NoSizeHint tells DecodeV0 that the image size is not known.
	NoSizeHint = math.MaxUint64
)

// ValidBlockSize reports whether bs is a block size the original accepts
// (is_valid_blocksize): a power of two larger than one 128-byte entry.
func ValidBlockSize(bs uint32) bool {
	return bs > EntryLen && bs&(bs-1) == 0
}

// Header is what a map's header says, whatever its format. For v0 and v1
// maps, which have no such fields, it holds the values the original
// assumed (4 MiB blocks, epoch 0, v0 read-only).
type Header struct {
	Version   Version
	Size      uint64 // volume size in bytes
	BlockSize uint32 // object size in bytes, a power of two > 128
	Flags     MapFlags
	Epoch     uint64
}

// Entries is the number of map entries the header implies:
// ceil(Size/BlockSize).
func (h Header) Entries() uint64 {
	if h.BlockSize == 0 {
		return 0
	}
	n := h.Size / uint64(h.BlockSize)
	if h.Size%uint64(h.BlockSize) != 0 {
		n++
	}
	return n
}

// ReadOnly reports whether the map is a snapshot or an image.
func (h Header) ReadOnly() bool { return h.Flags&MapReadOnly != 0 }

// Deleted reports whether the map was removed.
func (h Header) Deleted() bool { return h.Flags&MapDeleted != 0 }

func (h Header) check() error {
	if !ValidBlockSize(h.BlockSize) {
		return fmt.Errorf("%w: block size %d is not a power of two above %d", ErrInvalidSize, h.BlockSize, EntryLen)
	}
	if n := h.Entries(); n > MaxEntries {
		return fmt.Errorf("%w: %d bytes in blocks of %d need %d entries, the limit is %d", ErrTooLarge, h.Size, h.BlockSize, n, MaxEntries)
	}
	return nil
}

// Entry is one block of a volume: the object that holds it, and flags.
type Entry struct {
	Name  string
	Flags EntryFlags
}

// ZeroEntry is the entry of a never-written block, as create writes it.
var ZeroEntry = Entry{Name: ZeroObject, Flags: EntryZero}

// Writable reports whether writes go to the object in place.
func (e Entry) Writable() bool { return e.Flags&EntryWritable != 0 }

// Zero reports whether the block reads as zeros without I/O.
func (e Entry) Zero() bool { return e.Flags&EntryZero != 0 }

// Archip reports whether Archipelago created the object.
func (e Entry) Archip() bool { return e.Flags&EntryArchip != 0 }

// Deleted reports whether the object was deleted.
func (e Entry) Deleted() bool { return e.Flags&EntryDeleted != 0 }

// Deletable reports whether removing the volume deletes the object: only
// objects this map created and owns alone (EntryArchip and EntryWritable),
// not the zero block, not one already deleted. Objects shared with
// snapshots are never writable, so they are never deleted here.
func (e Entry) Deletable() bool {
	return e.Flags&(EntryArchip|EntryWritable) == EntryArchip|EntryWritable && e.Flags&(EntryZero|EntryDeleted) == 0
}

func (e Entry) String() string {
	return fmt.Sprintf("%s[%s]", e.Name, e.Flags)
}

func (f EntryFlags) String() string {
	s := []byte("----")
	for i, c := range "wazd" {
		if f&(1<<i) != 0 {
			s[i] = byte(c)
		}
	}
	if extra := f &^ entryFlagsMask; extra != 0 {
		return fmt.Sprintf("%s+%#x", s, uint8(extra))
	}
	return string(s)
}

// IndexedEntry is an entry with its index in the map.
type IndexedEntry struct {
	Index uint64
	Entry
}

// Map is a volume's map: its header and one entry per block.
//
// A Map is a value: no function of this package modifies a Map once it is
// returned; operations return new maps, which share memory with their
// inputs (so snapshots and clones are cheap). The entries are immutable,
// so a copy (c := *m) is independent of m; its exported fields may be
// changed, but a Map whose Size or BlockSize no longer matches its entries
// is refused with ErrBadFormat, and changing the Epoch or the Name of a
// live map breaks the uniqueness of object names. Maps are safe to read
// from several goroutines.
type Map struct {
	Name string
	Header
	entries table
}

// NewMap builds a map from a header and all its entries (len(entries) must
// equal h.Entries()). Every entry's name is checked; nothing else is, so it
// can describe any map the original could hold (X_CREATE's object lists,
// tests). Entries equal to ZeroEntry cost no memory.
func NewMap(name string, h Header, entries []Entry) (*Map, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	if uint64(len(entries)) != h.Entries() {
		return nil, fmt.Errorf("%w: %d entries for a map of %d", ErrBadFormat, len(entries), h.Entries())
	}
	b := emptyBuilder(uint64(len(entries)))
	for i, e := range entries {
		if err := checkObjectName(e.Name); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		b.set(uint64(i), e)
	}
	return &Map{Name: name, Header: h, entries: b.table()}, nil
}

// Len returns the number of entries (blocks) of the map.
func (m *Map) Len() uint64 { return m.entries.n }

// Entry returns entry i; it panics if i >= m.Len().
func (m *Map) Entry(i uint64) Entry {
	if i >= m.entries.n {
		panic(fmt.Sprintf("mapper: entry %d of a map of %d", i, m.entries.n))
	}
	return m.entries.get(i)
}

// All yields every entry in index order: m.Len() of them, so beware of
// large thin volumes; Stored skips the zero blocks.
func (m *Map) All() iter.Seq2[uint64, Entry] {
	return func(yield func(uint64, Entry) bool) {
		for i := range m.entries.n {
			if !yield(i, m.entries.get(i)) {
				return
			}
		}
	}
}

// Stored yields, in index order, the entries that are not ZeroEntry: the
// written blocks and the blocks shared with a snapshot or an image. It
// skips never-written runs of 1024 blocks at no cost.
func (m *Map) Stored() iter.Seq2[uint64, Entry] {
	return func(yield func(uint64, Entry) bool) {
		m.entries.eachStored(0, yield)
	}
}

// Deletable returns the entries whose objects removing the volume deletes
// (see Entry.Deletable).
func (m *Map) Deletable() []IndexedEntry {
	var out []IndexedEntry
	m.entries.eachStored(EntryWritable, func(i uint64, e Entry) bool {
		if e.Deletable() {
			out = append(out, IndexedEntry{i, e})
		}
		return true
	})
	return out
}

// Equal reports whether two maps have the same name, header and entries.
func (m *Map) Equal(o *Map) bool {
	if m.Name != o.Name || m.Header != o.Header || m.entries.n != o.entries.n {
		return false
	}
	for k := range m.entries.chunks {
		if m.entries.chunks[k] == o.entries.chunks[k] {
			continue
		}
		base := uint64(k) << chunkShift
		for j := uint64(0); j < chunkLen && base+j < m.entries.n; j++ {
			if m.entries.get(base+j) != o.entries.get(base+j) {
				return false
			}
		}
	}
	return true
}

// check verifies that m is usable: a valid header whose entry count matches
// the entries.
func (m *Map) check() error {
	if err := m.Header.check(); err != nil {
		return fmt.Errorf("map %q: %w", m.Name, err)
	}
	if m.entries.n != m.Entries() {
		return fmt.Errorf("%w: map %q has %d entries, its size and block size imply %d", ErrBadFormat, m.Name, m.entries.n, m.Entries())
	}
	return nil
}

// checkLive verifies that an operation may write m (its header or
// entries): a usable, live, v2 map.
func (m *Map) checkLive() error {
	if err := m.check(); err != nil {
		return err
	}
	if m.Deleted() {
		return fmt.Errorf("%w: %q", ErrDeleted, m.Name)
	}
	if m.Version != V2 {
		return fmt.Errorf("%w: %q is v%d", ErrNotUpgraded, m.Name, m.Version)
	}
	return nil
}

// with returns a copy of m with another table.
func (m *Map) with(t table) *Map {
	c := *m
	c.entries = t
	return &c
}
