package mapper

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func zeroDigest() []byte {
	d, _ := hex.DecodeString(ZeroObject)
	return d
}

// v1Bytes builds a v1 map object by hand: header, then per entry a
// writable byte and a raw digest.
func v1Bytes(size uint64, entries ...[]byte) []byte {
	b := []byte{1, 0, 0, 0}
	b = binary.LittleEndian.AppendUint64(b, size)
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

func TestDecodeV1(t *testing.T) {
	a, c := digest("a"), digest("c")
	data := v1Bytes(10<<20,
		append([]byte{1}, a...),            // writable: archip_<hex>
		append([]byte{0}, zeroDigest()...), // the zero block
		append([]byte{0}, c...),            // read-only: <hex>
	)
	data = append(data, 0xde, 0xad) // trailing bytes are ignored
	if v, err := Detect(data[:HeaderLen], false); v != V1 || err != nil {
		t.Fatalf("Detect = %v, %v", v, err)
	}
	h, err := DecodeV1Header(data)
	if err != nil || V1Len(h) != 12+3*33 {
		t.Fatalf("DecodeV1Header = %+v, %v", h, err)
	}
	m, err := DecodeV1("old", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "archip_" + hex.EncodeToString(a), Flags: EntryWritable | EntryArchip},
		ZeroEntry,
		{Name: hex.EncodeToString(c)},
	}
	wantHeader := Header{Version: V1, Size: 10 << 20, BlockSize: DefaultBlockSize}
	if m.Header != wantHeader || m.Len() != 3 {
		t.Fatalf("header %+v, %d entries", m.Header, m.Len())
	}
	for i, e := range want {
		if got := m.Entry(uint64(i)); got != e {
			t.Errorf("entry %d = %v, want %v", i, got, e)
		}
	}
	// A v1 map is written only once upgraded.
	if _, _, err := MapWrite(m, 0, 1); !errors.Is(err, ErrNotUpgraded) {
		t.Errorf("MapWrite on v1: %v", err)
	}
	if _, err := Snapshot(m, "s", nil); !errors.Is(err, ErrNotUpgraded) {
		t.Errorf("Snapshot of v1: %v", err)
	}
	// Reads work as they are.
	segs, err := MapRead(m, 4<<20, 6<<20)
	if err != nil || len(segs) != 2 || !segs[0].Zero || segs[1].Object != want[2].Name {
		t.Errorf("MapRead = %+v, %v", segs, err)
	}
	for name, b := range map[string][]byte{
		"truncated entries": data[:12+2*33],
		"short header":      data[:11],
		"version 2 LE":      append([]byte{2, 0, 0, 0}, data[4:]...),
	} {
		if _, err := DecodeV1("old", b); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: %v, want ErrBadFormat", name, err)
		}
	}
}

// TestUpgradeV1 rewrites a v1 map in place as v2, as an exclusive open did
// in the original, with a crash at every step: the map always loads, as v1
// until the v2 header is written, as v2 after, with the same entries.
func TestUpgradeV1(t *testing.T) {
	data := v1Bytes(6<<20, append([]byte{1}, digest("a")...), append([]byte{0}, digest("b")...))
	base := newFakeStore()
	base.write(MapStore, "old", 0, data)
	m, _, err := base.load("old", false, NoSizeHint)
	if err != nil {
		t.Fatal(err)
	}
	up, err := Upgrade(m)
	if err != nil {
		t.Fatal(err)
	}
	p := NewMapPlan(up)
	for limit := 0; limit <= p.Actions(); limit++ {
		st := base.clone()
		st.run(p, limit)
		got, _, err := st.load("old", false, NoSizeHint)
		if err != nil {
			t.Fatalf("crash after %d actions: %v", limit, err)
		}
		want := m
		if limit == p.Actions() {
			want = up
		}
		if !got.Equal(want) {
			t.Fatalf("crash after %d actions: loaded\n%swant\n%s", limit, dumpMap(got), dumpMap(want))
		}
	}
	// Once upgraded, a write to the writable v1 object goes in place; to
	// the read-only one, it copies up with epoch 0, as the original.
	segs, cus, err := MapWrite(up, 0, 6<<20)
	if err != nil || len(cus) != 1 || segs[0].Object != m.Entry(0).Name || cus[0].To.Name != "old_0000000000000000_0000000000000001" {
		t.Fatalf("MapWrite = %+v, %+v, %v", segs, cus, err)
	}
}

func TestDecodeV0(t *testing.T) {
	a, b := digest("a"), digest("b")
	data := bytes.Join([][]byte{a, zeroDigest(), b}, nil)
	if v, err := Detect(data, true); v != V0 || err != nil {
		t.Fatalf("Detect = %v, %v", v, err)
	}
	m, err := DecodeV0("img", data, NoSizeHint)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: V0, Size: 3 * DefaultBlockSize, BlockSize: DefaultBlockSize, Flags: MapReadOnly}
	if m.Header != want || m.Entry(0) != (Entry{Name: hex.EncodeToString(a)}) || m.Entry(1) != ZeroEntry {
		t.Fatalf("DecodeV0 = %s", dumpMap(m))
	}
	// The size hint must match the entries.
	if m, err := DecodeV0("img", data, 9<<20); err != nil || m.Size != 9<<20 {
		t.Errorf("hint 9 MiB: %v, %v", m, err)
	}
	if _, err := DecodeV0("img", data, 12<<20+1); !errors.Is(err, ErrBadFormat) {
		t.Errorf("hint of 4 entries: %v", err)
	}
	if _, err := DecodeV0("img", data, 0); !errors.Is(err, ErrBadFormat) {
		t.Errorf("hint 0: %v", err)
	}
	// An all-zero digest ends the map, whatever follows.
	ended := bytes.Join([][]byte{a, make([]byte, 32), b, b}, nil)
	if m, err := DecodeV0("img", ended, NoSizeHint); err != nil || m.Len() != 1 {
		t.Errorf("terminated map: %v, %v", m, err)
	}
	// A trailing partial digest reads as zero padded.
	partial := append(bytes.Clone(data), 0x42)
	if m, err := DecodeV0("img", partial, NoSizeHint); err != nil || m.Len() != 4 || m.Entry(3).Name != "42"+hex.EncodeToString(make([]byte, 31)) {
		t.Errorf("partial digest: %v, %v", m, err)
	}
	if m, err := DecodeV0("img", append(bytes.Clone(data), 0, 0), NoSizeHint); err != nil || m.Len() != 3 {
		t.Errorf("partial zero digest: %v, %v", m, err)
	}
	for name, b := range map[string][]byte{"empty": nil, "first zero": make([]byte, 64)} {
		if _, err := DecodeV0("img", b, NoSizeHint); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: %v, want ErrBadFormat", name, err)
		}
	}
	// Read-only: cloned, not written.
	if _, _, err := MapWrite(m, 0, 1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("MapWrite on v0: %v", err)
	}
	c, err := Clone(m, "vm", 20<<20, nil)
	if err != nil || c.Entry(0) != m.Entry(0) || c.Entry(4) != ZeroEntry || c.Version != V2 {
		t.Fatalf("Clone of v0 = %v, %v", c, err)
	}
	// And back to a Pithos hashmap.
	enc, err := EncodeV0(m)
	if err != nil || !bytes.Equal(enc, data) {
		t.Errorf("EncodeV0 = %x, %v", enc, err)
	}
	if _, err := EncodeV0(c); err != nil {
		t.Errorf("EncodeV0 of the clone (content names only): %v", err)
	}
	w, _ := Create("w", 1, 0, nil)
	segs, cus, _ := MapWrite(w, 0, 1)
	w, _ = ApplyCopyUps(w, cus)
	if _, err := EncodeV0(w); !errors.Is(err, ErrBadName) || len(segs) != 1 {
		t.Errorf("EncodeV0 of a volume with a copy-up: %v", err)
	}
}
