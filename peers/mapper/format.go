package mapper

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The v2 format (mapper-version2.{c,h} of the original).
//
// Header, object "<volume>", 32 bytes, big endian:
//
//	0  u32 signature  0x414d462e "AMF."
//	4  u32 version    2
//	8  u64 size       volume size in bytes
//	16 u32 blocksize  object size, a power of two > 128
//	20 u32 flags      MapReadOnly 1, MapDeleted 2
//	24 u64 epoch
//
// The original reads a 512-byte header area and ignores what follows the
// 32 bytes; so do we (and a v1 map rewritten as v2 keeps its old bytes
// there).
//
// Entries live in map-block objects "<volume>_<16 hex block id>", each
// blocksize bytes holding blocksize/128 entries of 128 bytes:
//
//	0  u8  flags      EntryWritable 1, EntryArchip 2, EntryZero 4, EntryDeleted 8
//	1  u32 objectlen  name length, ≤ 123, in the host's byte order
//	5  [123]byte name zero padded
//
// objectlen was written in host byte order, which on every machine that
// ran the original is little endian (x86); we always read and write little
// endian, so maps stay portable. The last map block is only as long as its
// entries: the original never writes past the last entry, and a short read
// of the trailing part of a block (never asked for) would return zeros.
//
// Map I/O is split into chunks of at most ChunkLen bytes that never cross a
// map block (split_to_chunks), the request size the original used.
const (
	// Magic is the v2 header signature, "AMF." read big endian.
	Magic uint32 = 0x414d462e
	// HeaderLen is the size of the v2 header.
	HeaderLen = 32
	// HeaderAreaLen is how much a loader reads from "<volume>" to find any
	// header: the v2 header and the v1 header fit in it.
	HeaderAreaLen = 512
	// EntryLen is the size of a v2 entry.
	EntryLen = 128
	// ChunkLen is the largest map I/O: 4096 entries.
	ChunkLen = 512 << 10

	v1HeaderLen = 12
	v1EntryLen  = 33
	v0EntryLen  = 32
)

// Detect tells which format a map's header area b is in, as the original's
// load_map_metadata did: the "AMF." signature means v2 (any other version
// after it is an error); else, if the caller says so (XF_ASSUMEV0, for
// Pithos images), v0; else a little-endian 1 in the first 4 bytes means v1;
// anything else is ErrBadFormat. b may be shorter than HeaderAreaLen (a
// short object); it must hold the header it announces.
func Detect(b []byte, assumeV0 bool) (Version, error) {
	if len(b) >= 4 && binary.BigEndian.Uint32(b) == Magic {
		if len(b) < 8 {
			return 0, fmt.Errorf("%w: v2 signature in a %d-byte header", ErrBadFormat, len(b))
		}
		if v := binary.BigEndian.Uint32(b[4:]); v != uint32(V2) {
			return 0, fmt.Errorf("%w: v2 signature with version %d", ErrBadFormat, v)
		}
		return V2, nil
	}
	if assumeV0 {
		return V0, nil
	}
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == uint32(V1) {
		return V1, nil
	}
	return 0, fmt.Errorf("%w: no map signature", ErrBadFormat)
}

// EncodeHeader returns the 32-byte v2 header of h (h.Version is ignored:
// we write v2 only).
func EncodeHeader(h Header) []byte {
	b := make([]byte, HeaderLen)
	binary.BigEndian.PutUint32(b[0:], Magic)
	binary.BigEndian.PutUint32(b[4:], uint32(V2))
	binary.BigEndian.PutUint64(b[8:], h.Size)
	binary.BigEndian.PutUint32(b[16:], h.BlockSize)
	binary.BigEndian.PutUint32(b[20:], uint32(h.Flags))
	binary.BigEndian.PutUint64(b[24:], h.Epoch)
	return b
}

// DecodeHeader decodes a v2 header from the start of b (bytes after the
// first 32 are ignored). It checks the signature, the version, the block
// size and that the entries fit MaxEntries. Flags are kept as stored,
// unknown bits included, so that writing the header back preserves them.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%w: v2 header of %d bytes, want %d", ErrBadFormat, len(b), HeaderLen)
	}
	if s := binary.BigEndian.Uint32(b); s != Magic {
		return Header{}, fmt.Errorf("%w: signature %#08x, want %#08x", ErrBadFormat, s, Magic)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != uint32(V2) {
		return Header{}, fmt.Errorf("%w: version %d, want 2", ErrBadFormat, v)
	}
	h := Header{
		Version:   V2,
		Size:      binary.BigEndian.Uint64(b[8:]),
		BlockSize: binary.BigEndian.Uint32(b[16:]),
		Flags:     MapFlags(binary.BigEndian.Uint32(b[20:])),
		Epoch:     binary.BigEndian.Uint64(b[24:]),
	}
	if err := h.check(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadFormat, err)
	}
	return h, nil
}

// EncodeEntry writes e as a 128-byte v2 entry into b[:EntryLen]. Flags
// beyond the four known are dropped, as the original's object_to_map_v2
// did.
func EncodeEntry(b []byte, e Entry) error {
	if len(b) < EntryLen {
		return fmt.Errorf("%w: %d bytes for a %d-byte entry", ErrBadFormat, len(b), EntryLen)
	}
	if err := checkObjectName(e.Name); err != nil {
		return err
	}
	b[0] = byte(e.Flags & entryFlagsMask)
	binary.LittleEndian.PutUint32(b[1:], uint32(len(e.Name)))
	clear(b[5+copy(b[5:EntryLen], e.Name) : EntryLen])
	return nil
}

// DecodeEntry decodes the 128-byte v2 entry at the start of b. Unknown flag
// bits are dropped and the padding after the name is ignored, as in the
// original; an empty name, a name length over 123, or a name holding '/'
// or NUL is ErrBadFormat (the original would have failed on its I/O).
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < EntryLen {
		return Entry{}, fmt.Errorf("%w: %d bytes for a %d-byte entry", ErrBadFormat, len(b), EntryLen)
	}
	n := binary.LittleEndian.Uint32(b[1:])
	if n == 0 || n > MaxObjectLen {
		return Entry{}, fmt.Errorf("%w: object name length %d", ErrBadFormat, n)
	}
	name := b[5 : 5+n]
	if bytes.IndexByte(name, 0) >= 0 || bytes.IndexByte(name, '/') >= 0 {
		return Entry{}, fmt.Errorf("%w: object name %q holds '/' or NUL", ErrBadFormat, name)
	}
	e := Entry{Flags: EntryFlags(b[0]) & entryFlagsMask}
	if e.Flags == EntryZero && string(name) == ZeroObject {
		return ZeroEntry, nil // shares the constant: no allocation
	}
	e.Name = string(name)
	return e, nil
}

// DecodeEntries decodes consecutive v2 entries; len(b) must be a multiple
// of EntryLen.
func DecodeEntries(b []byte) ([]Entry, error) {
	if len(b)%EntryLen != 0 {
		return nil, fmt.Errorf("%w: %d bytes of entries is not a multiple of %d", ErrBadFormat, len(b), EntryLen)
	}
	out := make([]Entry, 0, len(b)/EntryLen)
	for off := 0; off < len(b); off += EntryLen {
		e, err := DecodeEntry(b[off:])
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", off/EntryLen, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// EncodeEntries appends the v2 encoding of entries [first, first+count) of
// m to dst.
func EncodeEntries(dst []byte, m *Map, first, count uint64) ([]byte, error) {
	if first > m.Len() || count > m.Len()-first {
		return dst, fmt.Errorf("%w: entries [%d, +%d) of a map of %d", ErrOutOfRange, first, count, m.Len())
	}
	dst = growBytes(dst, int(count)*EntryLen)
	out := dst[len(dst)-int(count)*EntryLen:]
	for i := range count {
		b := out[i*EntryLen : (i+1)*EntryLen]
		e := m.entries.get(first + i)
		if e == ZeroEntry {
			copy(b, zeroEntryBytes[:])
			continue
		}
		if err := EncodeEntry(b, e); err != nil {
			return dst, fmt.Errorf("map %q entry %d: %w", m.Name, first+i, err)
		}
	}
	return dst, nil
}

// zeroEntryBytes is ZeroEntry encoded: most of a thin volume's map.
var zeroEntryBytes = func() (b [EntryLen]byte) {
	if err := EncodeEntry(b[:], ZeroEntry); err != nil {
		panic(err)
	}
	return b
}()

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// EntriesPerBlock is how many entries one map block of a map with block
// size bs holds.
func EntriesPerBlock(bs uint32) uint64 { return uint64(bs) / EntryLen }

// EntryPosition returns where entry index of volume lives: the map-block
// object and the byte offset in it.
func EntryPosition(volume string, blockSize uint32, index uint64) (object string, offset uint64) {
	per := EntriesPerBlock(blockSize)
	return MapBlockName(volume, index/per), index % per * EntryLen
}

// EncodeEntryAt returns the single-entry write that stores e as entry index
// of volume: the map-block object, the offset in it and the 128 bytes. This
// is how a copy-up or a deletion updates one entry.
func EncodeEntryAt(volume string, blockSize uint32, index uint64, e Entry) (object string, offset uint64, data []byte, err error) {
	if !ValidBlockSize(blockSize) {
		return "", 0, nil, fmt.Errorf("%w: block size %d", ErrInvalidSize, blockSize)
	}
	data = make([]byte, EntryLen)
	if err := EncodeEntry(data, e); err != nil {
		return "", 0, nil, err
	}
	object, offset = EntryPosition(volume, blockSize, index)
	return object, offset, data, nil
}

// Chunk is one map I/O: Count entries from First, at Offset of the map-block
// object Object. Its length is Count·EntryLen ≤ ChunkLen.
type Chunk struct {
	Object string
	Offset uint64
	First  uint64
	Count  uint64
}

// Len returns the chunk's length in bytes.
func (c Chunk) Len() uint64 { return c.Count * EntryLen }

// Chunks splits the map I/O of entries [first, first+count) of volume into
// chunks of at most min(blockSize, ChunkLen) bytes that never cross a map
// block, in index order, as the original's split_to_chunks did (without its
// miscount when first > 0). Unlike it, chunks after the first start at a
// multiple of ChunkLen within their block, so that I/O of neighbouring
// ranges falls on the same boundaries.
func Chunks(volume string, blockSize uint32, first, count uint64) []Chunk {
	per := EntriesPerBlock(blockSize)
	perChunk := uint64(min(blockSize, ChunkLen)) / EntryLen
	var out []Chunk
	for count > 0 {
		inBlock := first % per
		n := min(count, perChunk-inBlock%perChunk, per-inBlock)
		out = append(out, Chunk{
			Object: MapBlockName(volume, first/per),
			Offset: inBlock * EntryLen,
			First:  first,
			Count:  n,
		})
		first += n
		count -= n
	}
	return out
}

// MapBlocks returns the number of map-block objects a map of n entries with
// block size bs uses.
func MapBlocks(n uint64, bs uint32) uint64 {
	per := EntriesPerBlock(bs)
	return (n + per - 1) / per
}

// DecodeV2 builds a v2 map from its header and the bytes of all its
// entries: h.Entries()·EntryLen bytes, the concatenation in index order of
// the reads that Chunks(name, h.BlockSize, 0, h.Entries()) lists. A map
// marked deleted may be decoded too (its entries tell which objects were
// deleted); the original skipped loading them.
func DecodeV2(name string, h Header, entries []byte) (*Map, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if h.Version != V2 {
		return nil, fmt.Errorf("%w: DecodeV2 of a v%d header", ErrBadFormat, h.Version)
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFormat, err)
	}
	n := h.Entries()
	if uint64(len(entries)) != n*EntryLen {
		return nil, fmt.Errorf("%w: map %q: %d bytes of entries, its %d entries take %d", ErrBadFormat, name, len(entries), n, n*EntryLen)
	}
	b := emptyBuilder(n)
	for i := range n {
		e, err := DecodeEntry(entries[i*EntryLen:])
		if err != nil {
			return nil, fmt.Errorf("map %q entry %d: %w", name, i, err)
		}
		b.set(i, e)
	}
	return &Map{Name: name, Header: h, entries: b.table()}, nil
}
