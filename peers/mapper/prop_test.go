package mapper

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randEntry returns a random entry: often the zero block, else a name of
// the kinds maps hold, with random flags.
func randEntry(rng *rand.Rand) Entry {
	switch rng.IntN(4) {
	case 0:
		return ZeroEntry
	case 1:
		return Entry{Name: CopyUpName("v", rng.Uint64N(4), rng.Uint64N(1<<20)), Flags: EntryFlags(rng.IntN(16))}
	case 2:
		var d [32]byte
		for i := range d {
			d[i] = byte(rng.IntN(256))
		}
		return Entry{Name: hex.EncodeToString(d[:]), Flags: EntryFlags(rng.IntN(16))}
	}
	n := 1 + rng.IntN(MaxObjectLen)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(1 + rng.IntN(255))
		if b[i] == '/' {
			b[i] = '.'
		}
	}
	return Entry{Name: string(b), Flags: EntryFlags(rng.IntN(16))}
}

// checkTable compares a table with a dense model and checks its invariants:
// chunk flags are the OR of their entries' flags, entries past the length
// are empty, owned chunks left all zero are dropped.
func checkTable(t *testing.T, tb table, model []Entry, what string) {
	t.Helper()
	if tb.n != uint64(len(model)) || uint64(len(tb.chunks)) != chunksFor(tb.n) {
		t.Fatalf("%s: %d entries in %d chunks, model %d", what, tb.n, len(tb.chunks), len(model))
	}
	for i, e := range model {
		if got := tb.get(uint64(i)); got != e {
			t.Fatalf("%s: entry %d = %v, model %v", what, i, got, e)
		}
	}
	for k, r := range tb.chunks {
		c := r.c
		if c == nil {
			continue
		}
		var flags EntryFlags
		stored := false
		for j, e := range c.e {
			if uint64(k*chunkLen+j) >= tb.n && e != (Entry{}) {
				t.Fatalf("%s: chunk %d holds %v past the end", what, k, e)
			}
			if e == ZeroEntry {
				t.Fatalf("%s: chunk %d stores ZeroEntry explicitly", what, k)
			}
			if e.Name != "" {
				flags |= e.Flags
				stored = true
			}
		}
		if flags != c.flags || !stored {
			t.Fatalf("%s: chunk %d flags %v, entries' %v, stored %v", what, k, c.flags, flags, stored)
		}
	}
}

// TestTableModel drives the chunked table with random changes and checks
// it against a dense slice after every step; every earlier table must stay
// as it was (tables share chunks and must never see later changes).
func TestTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type kept struct {
		t     table
		model []Entry
	}
	var history []kept
	cur, model := emptyBuilder(0).table(), []Entry{}
	for step := range 2000 {
		b := newBuilder(cur)
		m := slices.Clone(model)
		for range rng.IntN(30) {
			if rng.IntN(12) == 0 {
				f := EntryFlags(rng.IntN(16)) &^ EntryZero
				b.clearFlags(f)
				for i := range m {
					if m[i].Flags &^= f; m[i].Name == ZeroObject && m[i].Flags == EntryZero {
						m[i] = ZeroEntry
					}
				}
				continue
			}
			if rng.IntN(8) == 0 {
				n := rng.IntN(5 * chunkLen)
				b.resize(uint64(n))
				for len(m) < n {
					m = append(m, ZeroEntry)
				}
				m = m[:n]
				continue
			}
			if len(m) == 0 {
				continue
			}
			i := rng.IntN(len(m))
			e := randEntry(rng)
			b.set(uint64(i), e)
			m[i] = e
			if got := b.get(uint64(i)); got != e {
				t.Fatalf("step %d: builder get %d = %v after set %v", step, i, got, e)
			}
		}
		cur, model = b.table(), m
		checkTable(t, cur, model, fmt.Sprintf("step %d", step))
		if step%50 == 0 {
			history = append(history, kept{cur, model})
		}
	}
	for i, h := range history {
		checkTable(t, h.t, h.model, fmt.Sprintf("kept table %d", i))
	}
}

// randomMap makes a random map of n entries, some shared, with blocks of
// bs bytes.
func randomMap(t *testing.T, rng *rand.Rand, name string, n uint64, bs uint32) (*Map, []Entry) {
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = randEntry(rng)
	}
	size := n * uint64(bs)
	if size > 0 {
		size -= rng.Uint64N(uint64(bs))
	}
	m, err := NewMap(name, Header{Version: V2, Size: size, BlockSize: bs, Flags: MapFlags(rng.IntN(4)), Epoch: rng.Uint64()}, entries)
	if err != nil {
		t.Fatal(err)
	}
	return m, entries
}

// TestRoundTripV2 stores random maps with NewMapPlan and loads them back
// through the fake blocker, and round-trips their entries through
// EncodeEntries/DecodeEntries.
func TestRoundTripV2(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 300 {
		bs := uint32(256) << rng.IntN(8)
		n := rng.Uint64N(3000)
		if iter%7 == 0 {
			n = EntriesPerBlock(bs) * rng.Uint64N(4) // whole map blocks
		}
		m, entries := randomMap(t, rng, "rt", n, bs)
		if m.Len() != n {
			// size rounding: a map of n entries with a size cut inside
			// the last block still has n entries.
			t.Fatalf("iter %d: %d entries, want %d", iter, m.Len(), n)
		}
		st := newFakeStore()
		if _, err := st.run(NewMapPlan(m), -1); err != nil {
			t.Fatal(err)
		}
		var got *Map
		var err error
		if m.Deleted() {
			// A deleted map loads as its header; decode it anyway.
			var entriesBytes []byte
			for _, c := range Chunks(m.Name, bs, 0, n) {
				p, _ := st.read(MapStore, c.Object, c.Offset, c.Len())
				entriesBytes = append(entriesBytes, p...)
			}
			got, err = DecodeV2(m.Name, m.Header, entriesBytes)
		} else {
			got, _, err = st.load(m.Name, false, NoSizeHint)
		}
		if err != nil || !got.Equal(m) {
			t.Fatalf("iter %d: loaded %v, %v", iter, got, err)
		}
		enc, err := EncodeEntries(nil, m, 0, n)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeEntries(enc)
		if err != nil {
			t.Fatal(err)
		}
		for i := range entries {
			want := entries[i]
			want.Flags &= entryFlagsMask
			if dec[i] != want {
				t.Fatalf("iter %d: entry %d = %v, want %v", iter, i, dec[i], want)
			}
		}
		if v0, err := EncodeV0(m); err == nil {
			back, err := DecodeV0(m.Name, v0, NoSizeHint)
			if n == 0 {
				continue
			}
			if err != nil || back.Len() != n {
				t.Fatalf("iter %d: v0 round trip: %v", iter, err)
			}
		}
	}
}

// TestOperationsModel checks the operations against what they must do to
// each entry, on random maps.
func TestOperationsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 200 {
		n := 1 + rng.Uint64N(4*chunkLen)
		src, entries := randomMap(t, rng, "vol", n, 1024)
		src.Flags = 0
		src.Epoch = rng.Uint64N(1000)
		r, err := Snapshot(src, "snap", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			e.Flags &^= EntryWritable
			if e.Name == ZeroObject && e.Flags == EntryZero {
				e = ZeroEntry
			}
			if r.Source.Entry(uint64(i)) != e || r.Snapshot.Entry(uint64(i)) != e {
				t.Fatalf("iter %d: snapshot entry %d: %v / %v, want %v", iter, i, r.Source.Entry(uint64(i)), r.Snapshot.Entry(uint64(i)), e)
			}
			if src.Entry(uint64(i)) != entries[i] {
				t.Fatalf("iter %d: Snapshot changed its input at %d", iter, i)
			}
		}
		if r.Source.Epoch != src.Epoch+1 || r.Snapshot.Epoch != 0 || !r.Snapshot.ReadOnly() || r.Source.ReadOnly() {
			t.Fatalf("iter %d: headers %+v / %+v", iter, r.Source.Header, r.Snapshot.Header)
		}
		// Clone of the snapshot, maybe larger.
		extra := rng.Uint64N(3 * chunkLen)
		c, err := Clone(r.Snapshot, "clone", r.Snapshot.Size+extra*1024, &Header{Flags: MapDeleted, Epoch: 41})
		if err != nil {
			t.Fatal(err)
		}
		if c.Epoch != 42 || c.Len() < n {
			t.Fatalf("iter %d: clone %+v", iter, c.Header)
		}
		for i := range c.Len() {
			want := ZeroEntry
			if i < n {
				want = r.Snapshot.Entry(i)
				want.Flags &= EntryArchip | EntryZero
				if want.Name == ZeroObject && want.Flags == EntryZero {
					want = ZeroEntry
				}
			}
			if got := c.Entry(i); got != want {
				t.Fatalf("iter %d: clone entry %d = %v, want %v", iter, i, got, want)
			}
		}
		// Writes on the clone copy up exactly the non-writable blocks.
		off := rng.Uint64N(c.Size)
		size := rng.Uint64N(c.Size - off)
		segs, cus, err := MapWrite(c, off, size)
		if err != nil {
			t.Fatal(err)
		}
		var total uint64
		for _, s := range segs {
			total += s.Length
		}
		if total != size {
			t.Fatalf("iter %d: segments cover %d of %d bytes", iter, total, size)
		}
		if len(cus) != len(segs) {
			// c has no writable entry: every block is copied up.
			t.Fatalf("iter %d: %d copy-ups for %d segments", iter, len(cus), len(segs))
		}
		c2, err := ApplyCopyUps(c, cus)
		if err != nil {
			t.Fatal(err)
		}
		if _, again, _ := MapWrite(c2, off, size); len(again) != 0 {
			t.Fatalf("iter %d: %d copy-ups after applying them", iter, len(again))
		}
		if _, err := ApplyCopyUps(c2, cus); err != nil {
			t.Fatalf("iter %d: applying twice: %v", iter, err)
		}
		// Delete deletes exactly the deletable entries.
		d, err := Delete(c2)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Objects) != len(cus) || !d.Map.Deleted() || d.Map.Epoch != c2.Epoch {
			t.Fatalf("iter %d: delete %d objects of %d written", iter, len(d.Objects), len(cus))
		}
	}
}

func TestApplyCopyUpsConflict(t *testing.T) {
	m, _ := Create("v", 8<<20, 0, nil)
	_, cus, _ := MapWrite(m, 0, 1)
	r, _ := Snapshot(m, "s", nil)
	_, cus2, _ := MapWrite(r.Source, 0, 1)
	moved, _ := ApplyCopyUps(r.Source, cus2)
	// The first copy-up started from the zero block; the entry has moved on.
	if _, err := ApplyCopyUps(moved, cus); !errors.Is(err, ErrConflict) {
		t.Fatalf("ApplyCopyUps on a changed entry: %v", err)
	}
}

// TestInPlaceCopyUp: the original, killed inside a snapshot, could leave
// entries read-only with the epoch not yet bumped. A write then finds its
// copy-up target already in the entry; no data is copied.
func TestInPlaceCopyUp(t *testing.T) {
	m, _ := NewMap("v", Header{Version: V2, Size: 4 << 20, BlockSize: 4 << 20, Epoch: 3}, []Entry{{Name: CopyUpName("v", 3, 0), Flags: EntryArchip}})
	_, cus, err := MapWrite(m, 0, 1)
	if err != nil || len(cus) != 1 || cus[0].NeedsCopy() || cus[0].To.Name != cus[0].From.Name {
		t.Fatalf("MapWrite = %+v, %v", cus, err)
	}
	p := CopyUpPlan(m, cus)
	if len(p.Phases) != 1 || p.Phases[0].Actions[0].Store != MapStore {
		t.Fatalf("plan:\n%s", p)
	}
}

func TestMerkleHash(t *testing.T) {
	d := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	pair := func(a, b [32]byte) [32]byte { return sha256.Sum256(append(a[:], b[:]...)) }
	var zero [32]byte
	a, b, c := d("a"), d("b"), d("c")
	for _, tc := range []struct {
		in   [][32]byte
		want [32]byte
	}{
		{nil, sha256.Sum256(nil)},
		{[][32]byte{a}, a},
		{[][32]byte{a, b}, pair(a, b)},
		{[][32]byte{a, b, c}, pair(pair(a, b), pair(c, zero))},
		{[][32]byte{a, b, c, a, b}, pair(pair(pair(a, b), pair(c, a)), pair(pair(b, zero), pair(zero, zero)))},
	} {
		if got := MerkleHash(tc.in); got != tc.want {
			t.Errorf("MerkleHash of %d digests = %x, want %x", len(tc.in), got, tc.want)
		}
	}
}

func TestHashed(t *testing.T) {
	pithos := hex.EncodeToString(make([]byte, 31)) + "01"
	s, err := NewMap("snap", Header{Version: V2, Size: 5 << 20, BlockSize: 1 << 20, Flags: MapReadOnly}, []Entry{
		{Name: "v_1", Flags: EntryArchip},
		{Name: pithos},
		ZeroEntry,
		{Name: "v_3", Flags: EntryArchip},
		{Name: ZeroObject}, // the original's hash code left the zero flag out
	})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := HashTargets(s)
	if err != nil || len(targets) != 2 || targets[0].Index != 0 || targets[1].Index != 3 {
		t.Fatalf("HashTargets = %v, %v", targets, err)
	}
	h1 := hex.EncodeToString(make([]byte, 31)) + "02"
	img, err := Hashed(s, map[uint64]string{0: h1, 3: ZeroObject})
	if err != nil {
		t.Fatal(err)
	}
	raw := func(s string) (d [32]byte) { hex.Decode(d[:], []byte(s)); return }
	top := MerkleHash([][32]byte{raw(h1), raw(pithos), raw(ZeroObject), raw(ZeroObject), raw(ZeroObject)})
	if img.Name != hex.EncodeToString(top[:]) || img.Header != (Header{Version: V2, Size: 5 << 20, BlockSize: 1 << 20, Flags: MapReadOnly}) {
		t.Fatalf("image %s %+v", img.Name, img.Header)
	}
	for i, want := range []Entry{{Name: h1}, {Name: pithos}, ZeroEntry, ZeroEntry, ZeroEntry} {
		if got := img.Entry(uint64(i)); got != want {
			t.Errorf("image entry %d = %v, want %v", i, got, want)
		}
	}
	if _, err := Hashed(s, map[uint64]string{0: h1}); !errors.Is(err, ErrBadName) {
		t.Errorf("missing hash: %v", err)
	}
	if _, err := Hashed(s, map[uint64]string{0: "nothex", 3: h1}); !errors.Is(err, ErrBadName) {
		t.Errorf("bad hash: %v", err)
	}
	odd, _ := NewMap("odd", Header{Version: V2, Size: 1, BlockSize: 1 << 20, Flags: MapReadOnly}, []Entry{{Name: "not-content"}})
	if _, err := Hashed(odd, nil); !errors.Is(err, ErrBadName) {
		t.Errorf("non-content entry: %v", err)
	}
}

func TestEpochLimits(t *testing.T) {
	const top = ^uint64(0)
	if _, err := Create("v", 1, 0, &Header{Flags: MapDeleted, Epoch: top - 2}); !errors.Is(err, ErrEpochExhausted) {
		t.Errorf("Create over epoch 2^64-3: %v", err)
	}
	m, err := Create("v", 1, 0, &Header{Flags: MapDeleted, Epoch: top - 3})
	if err != nil || m.Epoch != top-2 {
		t.Fatalf("Create over epoch 2^64-4: %v, %v", m, err)
	}
	r, err := Snapshot(m, "s", nil)
	if err != nil || r.Source.Epoch != top-1 {
		t.Fatalf("Snapshot: %v", err)
	}
	r, err = Snapshot(r.Source, "s2", nil)
	if err != nil || r.Source.Epoch != top {
		t.Fatalf("Snapshot: %v", err)
	}
	if _, err := Snapshot(r.Source, "s3", nil); !errors.Is(err, ErrEpochExhausted) {
		t.Errorf("Snapshot at epoch 2^64-1: %v", err)
	}
	if _, err := Resize(r.Source, 1, true); err != nil {
		t.Errorf("Resize to the same size needs no epoch: %v", err)
	}
	// A snapshot over a deleted map keeps its epoch (the original reset it).
	r, err = Snapshot(m, "s", &Header{Flags: MapDeleted, Epoch: 9})
	if err != nil || r.Snapshot.Epoch != 9 {
		t.Errorf("Snapshot over a deleted map: %v, %v", r, err)
	}
}

func TestMapInvariants(t *testing.T) {
	m, _ := Create("v", 10<<20, 0, nil)
	bad := *m
	bad.Size = 20 << 20 // no longer matches the entries
	if _, err := MapRead(&bad, 0, 1); !errors.Is(err, ErrBadFormat) {
		t.Errorf("MapRead of a tampered map: %v", err)
	}
	if _, err := Snapshot(&bad, "s", nil); !errors.Is(err, ErrBadFormat) {
		t.Errorf("Snapshot of a tampered map: %v", err)
	}
	if _, err := DecodeV2("v", m.Header, make([]byte, 2*EntryLen)); !errors.Is(err, ErrBadFormat) {
		t.Errorf("DecodeV2 with entries missing: %v", err)
	}
	if _, err := NewMap("v", m.Header, []Entry{ZeroEntry}); !errors.Is(err, ErrBadFormat) {
		t.Errorf("NewMap with entries missing: %v", err)
	}
	if segs, err := MapRead(m, m.Size, 0); err != nil || len(segs) != 0 {
		t.Errorf("empty read at the end: %v, %v", segs, err)
	}
}

// TestCopyUpPlanEntries: the entries of a copy-up are written alone, or
// with their neighbours of the same map I/O chunk, never with entries the
// copy-up did not change.
func TestCopyUpPlanEntries(t *testing.T) {
	m, _ := Create("v", 16*256, 256, nil) // 2 entries per map block and chunk
	_, cus, err := MapWrite(m, 256+10, 4*256-20)
	if err != nil || len(cus) != 4 {
		t.Fatalf("MapWrite = %v, %v", cus, err)
	}
	p := CopyUpPlan(m, cus)
	var got []string
	for _, a := range p.Phases[1].Actions {
		got = append(got, fmt.Sprintf("%s@%d+%d", a.Object, a.Offset, len(a.Data)))
	}
	want := []string{"v_0000000000000000@128+128", "v_0000000000000001@0+256", "v_0000000000000002@0+128"}
	if !slices.Equal(got, want) || len(p.Phases[0].Actions) != 4 {
		t.Fatalf("entry writes %v, want %v\n%s", got, want, p)
	}
	st := newFakeStore()
	st.run(NewMapPlan(m), -1)
	st.run(p, -1)
	applied, _ := ApplyCopyUps(m, cus)
	if got, _, err := st.load("v", false, NoSizeHint); err != nil || !got.Equal(applied) {
		t.Fatalf("stored map differs: %v", err)
	}
}
