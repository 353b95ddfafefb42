package mapper

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// goldenMaps are the maps whose storage bytes testdata/v2.golden holds.
func goldenMaps(t testing.TB) []*Map {
	pithos := "a58789e910e5f939afc433a00fef5930702927dc192cb237fd9e7449bd6ffe1d"
	small, err := NewMap("vol", Header{Version: V2, Size: 10<<20 + 1, BlockSize: DefaultBlockSize, Epoch: 2}, []Entry{
		{Name: CopyUpName("vol", 1, 0), Flags: EntryWritable | EntryArchip},
		ZeroEntry,
		{Name: pithos},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Blocks of 512 bytes: 4 entries per map block, 10 entries in 3 map
	// blocks, the last one short.
	entries := make([]Entry, 10)
	for i := range entries {
		entries[i] = ZeroEntry
	}
	entries[3] = Entry{Name: CopyUpName("tiny", 7, 3), Flags: EntryWritable | EntryArchip}
	entries[4] = Entry{Name: CopyUpName("tiny", 6, 4), Flags: EntryArchip | EntryDeleted}
	entries[9] = Entry{Name: pithos, Flags: EntryZero} // odd but legal: kept as is
	tiny, err := NewMap("tiny", Header{Version: V2, Size: 10 * 512, BlockSize: 512, Flags: MapReadOnly, Epoch: 7}, entries)
	if err != nil {
		t.Fatal(err)
	}
	return []*Map{small, tiny}
}

// TestGoldenV2 stores small maps with NewMapPlan and compares every object
// written, byte for byte, with testdata/v2.golden (hex dumps).
func TestGoldenV2(t *testing.T) {
	var out strings.Builder
	for _, m := range goldenMaps(t) {
		st := newFakeStore()
		p := NewMapPlan(m)
		if _, err := st.run(p, -1); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# %s", dumpMap(m))
		out.WriteString(indent(p.String()))
		for _, name := range st.names(MapStore) {
			o := st.objs[MapStore][name]
			fmt.Fprintf(&out, "object %s (%d bytes)\n%s", name, len(o.b), hex.Dump(o.b))
		}
		out.WriteString("\n")
		got, _, err := st.load(m.Name, false, NoSizeHint)
		if err != nil || !got.Equal(m) {
			t.Errorf("%s: loaded back %v, %v", m.Name, got, err)
		}
	}
	const golden = "testdata/v2.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("storage bytes differ from %s:\n%s", golden, diffLines(string(want), out.String()))
	}
}

// TestHeaderBytes checks the header layout against hand-written bytes.
func TestHeaderBytes(t *testing.T) {
	want := []byte{
		'A', 'M', 'F', '.', 0, 0, 0, 2, // signature, version
		0, 0, 0, 0, 0, 0xa0, 0, 0x01, // size 10 MiB + 1
		0, 0x40, 0, 0, // block size 4 MiB
		0, 0, 0, 3, // flags readonly|deleted
		0, 0, 0, 0, 0, 0, 0x01, 0x02, // epoch 258
	}
	h := Header{Version: V2, Size: 10<<20 + 1, BlockSize: 4 << 20, Flags: MapReadOnly | MapDeleted, Epoch: 258}
	if got := EncodeHeader(h); !bytes.Equal(got, want) {
		t.Fatalf("EncodeHeader:\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
	// The loader reads 512 bytes: trailing bytes are ignored.
	area := append(bytes.Clone(want), bytes.Repeat([]byte{0xff}, HeaderAreaLen-HeaderLen)...)
	got, err := DecodeHeader(area)
	if err != nil || got != h {
		t.Fatalf("DecodeHeader = %+v, %v; want %+v", got, err, h)
	}
	if v, err := Detect(area, true); v != V2 || err != nil {
		t.Fatalf("Detect = %v, %v", v, err)
	}
	// Unknown flag bits survive a round trip.
	binary.BigEndian.PutUint32(area[20:], 0x80000001)
	if got, err := DecodeHeader(area); err != nil || got.Flags != 0x80000001 || !bytes.Equal(EncodeHeader(got)[20:24], area[20:24]) {
		t.Fatalf("flags round trip: %+v, %v", got, err)
	}
}

func TestDecodeHeaderErrors(t *testing.T) {
	good := EncodeHeader(Header{Size: 1 << 30, BlockSize: 4 << 20})
	mod := func(off int, b ...byte) []byte {
		c := bytes.Clone(good)
		copy(c[off:], b)
		return c
	}
	for name, b := range map[string][]byte{
		"short":          good[:31],
		"signature":      mod(0, 'A', 'M', 'F', ','),
		"version":        mod(4, 0, 0, 0, 3),
		"block size 0":   mod(16, 0, 0, 0, 0),
		"block size 3M":  mod(16, 0, 0x30, 0, 0),
		"block size 128": mod(16, 0, 0, 0, 128),
		"too large":      mod(8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := DecodeHeader(b); !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: DecodeHeader error %v, want ErrBadFormat", name, err)
		}
	}
}

func TestDetect(t *testing.T) {
	v2 := EncodeHeader(Header{Size: 1, BlockSize: 4 << 20})
	v1 := []byte{1, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0}
	pithos := bytes.Repeat([]byte{0xab}, 64)
	for _, c := range []struct {
		name     string
		b        []byte
		assumeV0 bool
		want     Version
		err      bool
	}{
		{"v2", v2, false, V2, false},
		{"v2 with assume-v0", v2, true, V2, false},
		{"v2 signature, version 3", append([]byte("AMF.\x00\x00\x00\x03"), v2[8:]...), false, 0, true},
		{"v2 signature, truncated", []byte("AMF.\x00"), false, 0, true},
		{"v1", v1, false, V1, false},
		{"v1-looking with assume-v0", v1, true, V0, false},
		{"pithos", pithos, true, V0, false},
		{"pithos without assume-v0", pithos, false, 0, true},
		{"empty", nil, false, 0, true},
		{"empty assume-v0", nil, true, V0, false},
	} {
		v, err := Detect(c.b, c.assumeV0)
		if (err != nil) != c.err || (!c.err && v != c.want) {
			t.Errorf("%s: Detect = %v, %v; want %v, error %v", c.name, v, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, ErrBadFormat) {
			t.Errorf("%s: error %v is not ErrBadFormat", c.name, err)
		}
	}
}

func TestEntryBytes(t *testing.T) {
	e := Entry{Name: "vol_0000000000000001_0000000000000002", Flags: EntryWritable | EntryArchip}
	b := make([]byte, EntryLen)
	for i := range b {
		b[i] = 0xee // must be overwritten, padding included
	}
	if err := EncodeEntry(b, e); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, EntryLen)
	want[0] = 3
	want[1] = byte(len(e.Name)) // little endian
	copy(want[5:], e.Name)
	if !bytes.Equal(b, want) {
		t.Fatalf("EncodeEntry:\n%s", hex.Dump(b))
	}
	// Unknown flag bits are dropped on both sides, garbage padding is
	// ignored.
	b[0] |= 0xf0
	b[127] = 'x'
	got, err := DecodeEntry(b)
	if err != nil || got != e {
		t.Fatalf("DecodeEntry = %v, %v", got, err)
	}
	if err := EncodeEntry(b, Entry{Name: e.Name, Flags: 0xff}); err != nil || b[0] != 0x0f {
		t.Fatalf("EncodeEntry flags 0xff: byte %#x, %v", b[0], err)
	}
	for name, e := range map[string]Entry{
		"empty": {},
		"long":  {Name: strings.Repeat("x", MaxObjectLen+1)},
		"slash": {Name: "a/b"},
		"NUL":   {Name: "a\x00b"},
	} {
		if err := EncodeEntry(b, e); !errors.Is(err, ErrBadName) {
			t.Errorf("EncodeEntry(%s) = %v, want ErrBadName", name, err)
		}
	}
	long := Entry{Name: strings.Repeat("x", MaxObjectLen)}
	if err := EncodeEntry(b, long); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeEntry(b); err != nil || got != long {
		t.Fatalf("123-byte name: %v, %v", got, err)
	}
	for name, mod := range map[string]func([]byte){
		"length 0":   func(b []byte) { binary.LittleEndian.PutUint32(b[1:], 0) },
		"length 124": func(b []byte) { binary.LittleEndian.PutUint32(b[1:], 124) },
		"big endian": func(b []byte) { binary.BigEndian.PutUint32(b[1:], 123) },
		"NUL":        func(b []byte) { b[10] = 0 },
	} {
		c := bytes.Clone(b)
		mod(c)
		if _, err := DecodeEntry(c); !errors.Is(err, ErrBadFormat) {
			t.Errorf("DecodeEntry(%s) = %v, want ErrBadFormat", name, err)
		}
	}
	if _, err := DecodeEntry(b[:127]); !errors.Is(err, ErrBadFormat) {
		t.Errorf("short entry: %v", err)
	}
}

func TestEncodeEntryAt(t *testing.T) {
	for _, c := range []struct {
		bs     uint32
		index  uint64
		object string
		offset uint64
	}{
		{4 << 20, 0, "vol_0000000000000000", 0},
		{4 << 20, 32767, "vol_0000000000000000", 32767 * 128},
		{4 << 20, 32768, "vol_0000000000000001", 0},
		{4 << 20, 262143, "vol_0000000000000007", 32767 * 128},
		{512, 9, "vol_0000000000000002", 128},
		{256, 0x21, "vol_0000000000000010", 128},
	} {
		obj, off, data, err := EncodeEntryAt("vol", c.bs, c.index, ZeroEntry)
		if err != nil || obj != c.object || off != c.offset || len(data) != EntryLen {
			t.Errorf("EncodeEntryAt(bs %d, %d) = %s @%d +%d, %v; want %s @%d", c.bs, c.index, obj, off, len(data), err, c.object, c.offset)
		}
	}
	if _, _, _, err := EncodeEntryAt("vol", 1000, 0, ZeroEntry); !errors.Is(err, ErrInvalidSize) {
		t.Errorf("bad block size: %v", err)
	}
}

// TestChunks checks the map I/O split: chunks cover the range in order,
// hold at most 512 KiB and one block's size, never cross a map block, and
// agree with EntryPosition.
func TestChunks(t *testing.T) {
	for _, bs := range []uint32{256, 512, 64 << 10, 512 << 10, 1 << 20, 4 << 20, 1 << 31} {
		per := EntriesPerBlock(bs)
		for _, r := range [][2]uint64{{0, 1}, {0, per}, {0, per + 1}, {per - 1, 2}, {5, 10000}, {4095, 4098}, {100, 3 * per}, {3 * per, 0}} {
			cs := Chunks("v", bs, r[0], r[1])
			next, total := r[0], uint64(0)
			for _, c := range cs {
				obj, off := EntryPosition("v", bs, c.First)
				if c.First != next || c.Object != obj || c.Offset != off || c.Count == 0 {
					t.Fatalf("bs %d range %v: chunk %+v, want first %d at %s @%d", bs, r, c, next, obj, off)
				}
				if c.Len() > ChunkLen || c.Len() > uint64(bs) || c.Offset+c.Len() > uint64(bs) {
					t.Fatalf("bs %d range %v: chunk %+v too long or crosses its block", bs, r, c)
				}
				next += c.Count
				total += c.Count
			}
			if total != r[1] {
				t.Fatalf("bs %d range %v: chunks cover %d entries", bs, r, total)
			}
		}
	}
	// A 1 TiB volume: 262144 entries, 8 map blocks of 8 chunks each.
	cs := Chunks("v", 4<<20, 0, 262144)
	if len(cs) != 64 || cs[8].Object != "v_0000000000000001" || cs[8].Offset != 0 || cs[63].Offset != 7*ChunkLen {
		t.Errorf("1 TiB: %d chunks, [8] = %+v, [63] = %+v", len(cs), cs[8], cs[63])
	}
}

func TestNames(t *testing.T) {
	if got := CopyUpName("vol", 0x0102, 0xabcdef); got != "vol_0000000000000102_0000000000abcdef" {
		t.Errorf("CopyUpName = %s", got)
	}
	if got := MapBlockName("vol", 1<<63); got != "vol_8000000000000000" {
		t.Errorf("MapBlockName = %s", got)
	}
	if MaxVolumeLen != 89 || MaxVolumeNameLen != 82 {
		t.Errorf("limits %d, %d; the original's are 89 and 82", MaxVolumeLen, MaxVolumeNameLen)
	}
	longest := strings.Repeat("v", MaxVolumeNameLen)
	if err := ValidateVolumeName(longest); err != nil {
		t.Error(err)
	}
	if n := len(CopyUpName(longest, 1<<63, 1<<63)); n > MaxObjectLen {
		t.Errorf("copy-up name of the longest volume: %d bytes", n)
	}
	for _, ok := range []string{"vol", "snf-1234-abcd", "a_lockx", "x_0123456789abcde", "x_0123456789abcdefg", "archip_vol", "UPPER.case~"} {
		if err := ValidateVolumeName(ok); err != nil {
			t.Errorf("ValidateVolumeName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a b", "a\tb", "a/b", "\x00", "é", strings.Repeat("v", 83), "v_lock", "v_hash", "v_00000000DEADBEEF", "v_0000000000000001_0000000000000002", ZeroObject} {
		if err := ValidateVolumeName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidateVolumeName(%q) = %v, want ErrBadName", bad, err)
		}
	}
	// Existing maps keep loading with names ValidateVolumeName refuses.
	for _, old := range []string{"v_lock", "a b", ZeroObject, "v_0000000000000001"} {
		if err := CheckName(old); err != nil {
			t.Errorf("CheckName(%q) = %v", old, err)
		}
	}
}
