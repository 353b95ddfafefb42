package mapper

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The decoders read bytes from storage that anyone with access to the
// blockers may have written: they must never panic, and what they accept
// must encode back to what they read.

func FuzzDecodeV2Header(f *testing.F) {
	f.Add(EncodeHeader(Header{Size: 10 << 20, BlockSize: 4 << 20, Epoch: 1}))
	f.Add(EncodeHeader(Header{Size: 1<<63 + 5, BlockSize: 1 << 31, Flags: 0xffffffff, Epoch: 1<<64 - 1}))
	f.Add(append(EncodeHeader(Header{Size: 1, BlockSize: 256}), make([]byte, 480)...))
	f.Add([]byte("AMF.\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			return
		}
		if h.Version != V2 || !ValidBlockSize(h.BlockSize) || h.Entries() > MaxEntries {
			t.Fatalf("accepted %+v", h)
		}
		if enc := EncodeHeader(h); !bytes.Equal(enc, b[:HeaderLen]) {
			t.Fatalf("round trip: % x -> %+v -> % x", b[:HeaderLen], h, enc)
		}
	})
}

func FuzzDecodeEntries(f *testing.F) {
	for _, mm := range goldenMaps(f) {
		enc, err := EncodeEntries(nil, mm, 0, mm.Len())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc, uint32(mm.BlockSize), mm.Size)
	}
	f.Add(make([]byte, EntryLen), uint32(4<<20), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, bs uint32, size uint64) {
		entries, err := DecodeEntries(b)
		if err == nil {
			enc := make([]byte, EntryLen)
			for i, e := range entries {
				if err := EncodeEntry(enc, e); err != nil {
					t.Fatalf("entry %d %v decoded but does not encode: %v", i, e, err)
				}
				// The name length, the flags and the name must come back
				// as they were; padding and unknown flags are dropped.
				raw := b[i*EntryLen:]
				n := binary.LittleEndian.Uint32(raw[1:])
				if enc[0] != raw[0]&0x0f || !bytes.Equal(enc[1:5+n], raw[1:5+n]) {
					t.Fatalf("entry %d: % x re-encoded as % x", i, raw[:5+n], enc[:5+n])
				}
			}
		}
		// The same bytes as a whole map: whatever header comes with them.
		h := Header{Version: V2, Size: size, BlockSize: bs}
		mm, err := DecodeV2("fuzz", h, b)
		if err != nil {
			return
		}
		if mm.Len() != uint64(len(entries)) {
			t.Fatalf("DecodeV2 gave %d entries, DecodeEntries %d", mm.Len(), len(entries))
		}
		for i, e := range entries {
			if got := mm.Entry(uint64(i)); got != e {
				t.Fatalf("entry %d: DecodeV2 %v, DecodeEntries %v", i, got, e)
			}
		}
		// What decodes can be served.
		if size > 0 {
			MapRead(mm, 0, min(size, 1<<20))
		}
	})
}

// FuzzDetect feeds garbage to format detection and to every decoder a
// loader would call after it.
func FuzzDetect(f *testing.F) {
	f.Add(EncodeHeader(Header{Size: 10 << 20, BlockSize: 4 << 20}), false)
	f.Add(v1Bytes(8<<20, append([]byte{1}, digest("a")...), append([]byte{0}, zeroDigest()...)), false)
	f.Add(append(digest("a"), zeroDigest()...), true)
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, b []byte, assumeV0 bool) {
		v, err := Detect(b, assumeV0)
		if err != nil {
			return
		}
		switch v {
		case V2:
			DecodeHeader(b)
		case V1:
			h, err := DecodeV1Header(b)
			if err != nil {
				return
			}
			m, err := DecodeV1("fuzz", b)
			if err != nil {
				if uint64(len(b)) >= V1Len(h) {
					t.Fatalf("v1 header %+v and %d bytes, yet: %v", h, len(b), err)
				}
				return
			}
			if m.Len() != h.Entries() {
				t.Fatalf("v1: %d entries for %+v", m.Len(), h)
			}
		case V0:
			m, err := DecodeV0("fuzz", b, NoSizeHint)
			if err != nil {
				return
			}
			enc, err := EncodeV0(m)
			if err != nil {
				t.Fatalf("v0 map does not encode: %v", err)
			}
			if !bytes.Equal(enc, b[:min(len(enc), len(b))]) && len(b)%v0EntryLen == 0 {
				t.Fatalf("v0 round trip differs")
			}
		default:
			t.Fatalf("Detect returned version %d", v)
		}
	})
}
