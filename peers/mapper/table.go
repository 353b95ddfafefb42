package mapper

import "slices"

// The entries of a map live in a table of fixed-size chunks. A chunk is
// immutable once a table holding it is returned to a caller, so tables
// share chunks freely, and a change copies only the chunks it touches. A
// nil chunk holds only zero entries, so a thin volume costs memory in
// proportion to the blocks written, and an all-zero map (a fresh volume)
// one pointer per 1024 blocks.
//
// A table refers to each chunk with a mask of flags to clear from its
// entries when read. Snapshot (clear EntryWritable) and Clone (clear
// EntryWritable and EntryDeleted) only set masks: their cost is one
// reference per chunk (256 for 1 TiB of 4 MiB blocks), whatever was
// written. The mask is applied to the entries when a chunk is next copied.
//
// We measured the alternative, one dense []Entry per map (24 bytes an
// entry, 6 MiB for 1 TiB): a snapshot of 1 TiB then costs two 6 MiB copies
// and a pass over 262144 entries, 15 to 40 ms and 12 MiB allocated
// (BenchmarkSnapshotDense); the chunked table with masks takes a few
// microseconds (BenchmarkSnapshot). Lookups cost one more index.

const (
	chunkShift = 10
	chunkLen   = 1 << chunkShift // entries per chunk: 24 KiB
	chunkMask  = chunkLen - 1
)

// chunk holds entries [k·chunkLen, (k+1)·chunkLen) of a table. An entry
// equal to Entry{} stands for ZeroEntry; entries past the table's length
// are always Entry{}.
type chunk struct {
	e [chunkLen]Entry
	// flags is the OR of the flags of the chunk's stored entries, so whole
	// chunks are skipped when looking for writable or deleted entries.
	// While a builder changes the chunk it may hold more.
	flags EntryFlags
}

// chunkRef is a table's reference to a chunk: its entries read with the
// flags in clear removed.
type chunkRef struct {
	c     *chunk
	clear EntryFlags
}

// flags returns the OR of the flags of the entries as the table reads them
// (possibly more: an entry cleared to ZeroEntry still counts).
func (r chunkRef) flags() EntryFlags {
	if r.c == nil {
		return 0
	}
	return r.c.flags &^ r.clear
}

// at returns entry j of the chunk as the table reads it; Entry{} for the
// zero block.
func (r chunkRef) at(j uint64) Entry {
	e := r.c.e[j]
	if e.Name == "" {
		return e
	}
	e.Flags &^= r.clear
	if e == ZeroEntry {
		return Entry{}
	}
	return e
}

// table is an immutable sequence of n entries.
type table struct {
	n      uint64
	chunks []chunkRef
}

func chunksFor(n uint64) uint64 { return (n + chunkLen - 1) >> chunkShift }

func (t *table) get(i uint64) Entry {
	r := t.chunks[i>>chunkShift]
	if r.c == nil {
		return ZeroEntry
	}
	if e := r.at(i & chunkMask); e.Name != "" {
		return e
	}
	return ZeroEntry
}

// eachStored calls f for every entry that is not ZeroEntry, in index order,
// skipping whole chunks whose flags share no bit with want (want == 0 visits
// every stored entry). It stops when f returns false.
func (t *table) eachStored(want EntryFlags, f func(i uint64, e Entry) bool) bool {
	for k, r := range t.chunks {
		if r.c == nil || (want != 0 && r.flags()&want == 0) {
			continue
		}
		base := uint64(k) << chunkShift
		for j := range uint64(chunkLen) {
			if e := r.at(j); e.Name != "" && !f(base+j, e) {
				return false
			}
		}
	}
	return true
}

// builder makes a new table from an old one, copying a shared chunk the
// first time it changes one of its entries.
type builder struct {
	t     table
	owned []bool // owned[k]: chunk k was allocated by this builder
}

func newBuilder(from table) *builder {
	return &builder{t: table{n: from.n, chunks: slices.Clone(from.chunks)}, owned: make([]bool, len(from.chunks))}
}

// emptyBuilder starts a table of n zero entries.
func emptyBuilder(n uint64) *builder {
	k := chunksFor(n)
	return &builder{t: table{n: n, chunks: make([]chunkRef, k)}, owned: make([]bool, k)}
}

// own returns chunk k, made private to this builder, its mask applied.
func (b *builder) own(k uint64) *chunk {
	if b.owned[k] {
		return b.t.chunks[k].c
	}
	c := new(chunk)
	if r := b.t.chunks[k]; r.c != nil {
		for j := range uint64(chunkLen) {
			c.e[j] = r.at(j)
		}
		c.flags = r.flags()
	}
	b.t.chunks[k] = chunkRef{c: c}
	b.owned[k] = true
	return c
}

func (b *builder) get(i uint64) Entry { return b.t.get(i) }

func (b *builder) set(i uint64, e Entry) {
	k := i >> chunkShift
	if e == ZeroEntry {
		if b.get(i) == ZeroEntry {
			return
		}
		e = Entry{}
	}
	c := b.own(k)
	c.e[i&chunkMask] = e
	c.flags |= e.Flags // kept a superset until table() recomputes it
}

// clearFlags removes flags from every entry, in O(chunks): shared chunks
// get a mask, chunks of this builder are changed in place. flags must not
// hold EntryZero, which the implicit zero entries keep.
func (b *builder) clearFlags(flags EntryFlags) {
	if flags&EntryZero != 0 {
		panic("mapper: clearing EntryZero")
	}
	for k := range b.t.chunks {
		r := &b.t.chunks[k]
		if r.flags()&flags == 0 {
			continue
		}
		if !b.owned[k] {
			r.clear |= flags
			continue
		}
		for j := range r.c.e {
			if e := &r.c.e[j]; e.Name != "" {
				e.Flags &^= flags
				if *e == ZeroEntry {
					*e = Entry{}
				}
			}
		}
	}
}

// resize changes the length to n: new entries are zero, dropped entries are
// cleared so that a later growth finds zeros.
func (b *builder) resize(n uint64) {
	if n < b.t.n {
		if r := n & chunkMask; r != 0 {
			k := n >> chunkShift
			if ref := b.t.chunks[k]; ref.c != nil {
				for j := r; j < chunkLen; j++ {
					if ref.c.e[j].Name != "" {
						clear(b.own(k).e[r:])
						break
					}
				}
			}
		}
		b.t.chunks = b.t.chunks[:chunksFor(n)]
		b.owned = b.owned[:chunksFor(n)]
	} else {
		for uint64(len(b.t.chunks)) < chunksFor(n) {
			b.t.chunks = append(b.t.chunks, chunkRef{})
			b.owned = append(b.owned, false)
		}
	}
	b.t.n = n
}

// table finishes the builder: the chunks it owns get their flags, and those
// left all zero are dropped. The builder must not be used afterwards.
func (b *builder) table() table {
	for k, owned := range b.owned {
		if !owned {
			continue
		}
		c := b.t.chunks[k].c
		c.flags = 0
		stored := false
		for j := range c.e {
			if c.e[j].Name != "" {
				c.flags |= c.e[j].Flags
				stored = true
			}
		}
		if !stored {
			b.t.chunks[k] = chunkRef{}
		}
	}
	b.owned = nil
	return b.t
}
