package mapper

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// The formats the original read but no longer wrote.
//
// v1 (Archipelago ≤ 0.3), object "<volume>", little endian:
//
//	0  u32 version  1
//	4  u64 size
//	12 entries of 33 bytes: u8 writable, 32 raw bytes of a SHA-256
//
// A writable entry names "archip_" + 64 hex digits (EntryWritable and
// EntryArchip); a read-only one names the 64 hex digits (plus EntryZero for
// the zero block). Block size 4 MiB, epoch 0, flags 0.
//
// v0 (Pithos hashmaps, how image files are stored), object named by the
// image's hash: raw 32-byte SHA-256 digests, no header. Each names the
// 64-hex-digit object of a 4 MiB block; an all-zero digest, or the end of
// the object, ends the map. The map is read-only with epoch 0; its size is
// n·4 MiB unless the caller knows the image's size (Pithos does).

// DecodeV1Header decodes the 12-byte v1 header at the start of b. The whole
// map object is v1HeaderLen + 33·Entries() bytes: V1Len tells.
func DecodeV1Header(b []byte) (Header, error) {
	if len(b) < v1HeaderLen {
		return Header{}, fmt.Errorf("%w: v1 header of %d bytes, want %d", ErrBadFormat, len(b), v1HeaderLen)
	}
	if v := binary.LittleEndian.Uint32(b); v != uint32(V1) {
		return Header{}, fmt.Errorf("%w: v1 version %d", ErrBadFormat, v)
	}
	h := Header{Version: V1, Size: binary.LittleEndian.Uint64(b[4:]), BlockSize: DefaultBlockSize}
	if err := h.check(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadFormat, err)
	}
	return h, nil
}

// V1Len returns the length of the v1 map object that h describes.
func V1Len(h Header) uint64 { return v1HeaderLen + h.Entries()*v1EntryLen }

// DecodeV1 decodes a whole v1 map object (header and entries; bytes past
// V1Len are ignored).
func DecodeV1(name string, data []byte) (*Map, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	h, err := DecodeV1Header(data)
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) < V1Len(h) {
		return nil, fmt.Errorf("%w: v1 map %q of %d bytes, its %d entries need %d", ErrBadFormat, name, len(data), h.Entries(), V1Len(h))
	}
	b := emptyBuilder(h.Entries())
	for i := range h.Entries() {
		raw := data[v1HeaderLen+i*v1EntryLen:][:v1EntryLen]
		sum := hex.EncodeToString(raw[1:])
		var e Entry
		switch {
		case raw[0] != 0:
			e = Entry{Name: legacyPrefix + sum, Flags: EntryWritable | EntryArchip}
		case sum == ZeroObject:
			e = ZeroEntry
		default:
			e = Entry{Name: sum}
		}
		b.set(i, e)
	}
	return &Map{Name: name, Header: h, entries: b.table()}, nil
}

// DecodeV0 decodes a Pithos hashmap: the whole object's bytes. A trailing
// partial digest is read as if zero padded (the original read 512 KiB
// chunks of which the blocker zero-filled the end). An empty map (the first
// digest all zero, or no data) is ErrBadFormat, as in the original.
// sizeHint, unless NoSizeHint, is the image size in bytes: the map must
// have exactly ceil(sizeHint / 4 MiB) entries, and the map takes that size.
func DecodeV0(name string, data []byte, sizeHint uint64) (*Map, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	var zero [v0EntryLen]byte
	var digests [][]byte
	for off := 0; off < len(data); off += v0EntryLen {
		d := data[off:min(off+v0EntryLen, len(data))]
		if len(d) < v0EntryLen {
			d = append(append([]byte(nil), d...), zero[len(d):]...)
		}
		if bytes.Equal(d, zero[:]) {
			break
		}
		digests = append(digests, d)
	}
	if len(digests) == 0 {
		return nil, fmt.Errorf("%w: v0 map %q holds no digest", ErrBadFormat, name)
	}
	h := Header{Version: V0, Size: uint64(len(digests)) * DefaultBlockSize, BlockSize: DefaultBlockSize, Flags: MapReadOnly}
	if sizeHint != NoSizeHint {
		hinted := Header{Size: sizeHint, BlockSize: DefaultBlockSize}
		if hinted.Entries() != uint64(len(digests)) {
			return nil, fmt.Errorf("%w: v0 map %q has %d entries, an image of %d bytes needs %d", ErrBadFormat, name, len(digests), sizeHint, hinted.Entries())
		}
		h.Size = sizeHint
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFormat, err)
	}
	b := emptyBuilder(uint64(len(digests)))
	for i, d := range digests {
		e := Entry{Name: hex.EncodeToString(d)}
		if e.Name == ZeroObject {
			e = ZeroEntry
		}
		b.set(uint64(i), e)
	}
	return &Map{Name: name, Header: h, entries: b.table()}, nil
}

// EncodeV0 returns m as a Pithos hashmap (concatenated raw digests), for
// handing an image to Pithos. Every entry must name a content-addressed
// object (64 lowercase hex digits), as the maps Hash makes do. The size is
// not stored: Pithos keeps it beside the map.
func EncodeV0(m *Map) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, m.Len()*v0EntryLen)
	for i := range m.Len() {
		e := m.entries.get(i)
		if !isContentName(e.Name) {
			return nil, fmt.Errorf("%w: map %q entry %d names %q, not a content hash", ErrBadName, m.Name, i, e.Name)
		}
		out, _ = hex.AppendDecode(out, []byte(e.Name))
	}
	return out, nil
}
