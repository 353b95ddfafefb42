package xseg

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/archipelago-go/archipelago/xseg/ring"
)

// The segment file, every offset from its start:
//
//	0            header (one page): magic, version, geometry, table offsets, checksum
//	4096         port table: Ports entries of portEntrySize bytes
//	...          request slots: Requests entries of slotSize bytes
//	...          free-slot ring
//	...          per port: request ring, reply ring
//	...          buffer bitmap: one bit per BufferUnit of buffer space
//	page-aligned data buffers: BufferBytes
//
// Nothing inside refers to anything by pointer; tables are found from the
// header and entries by index.
const (
	// LayoutVersion changes whenever the layout above changes.
	LayoutVersion = 1
	// MaxTargetLen is the longest target name a request carries.
	MaxTargetLen = 256
	// MaxPath is how many ports a request may pass through before it is
	// served (each Submit from a serving port adds one).
	MaxPath = 16
	// BufferUnit is the allocation granule and alignment of data buffers,
	// so buffers suit O_DIRECT.
	BufferUnit = 4096

	headerSize      = 4096
	pageSize        = 4096
	checksumOffset  = 120
	maxPorts        = 1 << 16
	maxRequests     = 1 << 20
	minBufferBytes  = 64 * BufferUnit
	maxBufferBytes  = 1 << 40
	bitmapWordUnits = 64
)

var magic = [8]byte{'X', 'S', 'E', 'G', '-', 'G', 'O', '\n'}

// Geometry is the shape of a segment, fixed when it is created.
type Geometry struct {
	// Ports is the number of ports; ports [0, StaticPorts) are bound by
	// number (peers), the rest are handed out by BindDynamic (clients).
	Ports       uint32 `json:"ports"`
	StaticPorts uint32 `json:"static_ports"`
	// Requests is the number of request slots shared by all ports.
	Requests uint32 `json:"requests"`
	// BufferBytes is the data buffer space, a multiple of 256 KiB.
	BufferBytes uint64 `json:"buffer_bytes"`
}

// DefaultGeometry is what Create uses for zero fields.
var DefaultGeometry = Geometry{Ports: 256, StaticPorts: 64, Requests: 4096, BufferBytes: 512 << 20}

func (g Geometry) withDefaults() Geometry {
	if g.Ports == 0 {
		g.Ports = DefaultGeometry.Ports
		if g.StaticPorts == 0 {
			g.StaticPorts = DefaultGeometry.StaticPorts
		}
	}
	if g.Requests == 0 {
		g.Requests = DefaultGeometry.Requests
	}
	if g.BufferBytes == 0 {
		g.BufferBytes = DefaultGeometry.BufferBytes
	}
	return g
}

func (g Geometry) validate() error {
	switch {
	case g.Ports < 1 || g.Ports > maxPorts:
		return fmt.Errorf("%w: %d ports, want 1 to %d", ErrBadGeometry, g.Ports, maxPorts)
	case g.StaticPorts > g.Ports:
		return fmt.Errorf("%w: %d static ports of %d", ErrBadGeometry, g.StaticPorts, g.Ports)
	case g.Requests < 1 || g.Requests > maxRequests:
		return fmt.Errorf("%w: %d requests, want 1 to %d", ErrBadGeometry, g.Requests, maxRequests)
	case g.BufferBytes < minBufferBytes || g.BufferBytes > maxBufferBytes:
		return fmt.Errorf("%w: buffer space %d bytes, want %d to %d", ErrBadGeometry, g.BufferBytes, minBufferBytes, uint64(maxBufferBytes))
	case g.BufferBytes%(BufferUnit*bitmapWordUnits) != 0:
		return fmt.Errorf("%w: buffer space %d bytes is not a multiple of %d", ErrBadGeometry, g.BufferBytes, BufferUnit*bitmapWordUnits)
	}
	return nil
}

// RingCapacity is the number of cells of every ring: enough for every
// request slot, so a push never finds a ring full.
func (g Geometry) RingCapacity() int {
	return 1 << bits.Len32(g.Requests-1)
}

// layout is where each table starts, derived from a Geometry alone.
type layout struct {
	ports, slots, freeRing, rings, bitmap, buffers, size uint64
	ringBytes                                            uint64
}

func align(v, to uint64) uint64 { return (v + to - 1) / to * to }

func computeLayout(g Geometry) layout {
	var l layout
	l.ringBytes = align(uint64(ring.Size(g.RingCapacity())), 64)
	l.ports = headerSize
	l.slots = align(l.ports+uint64(g.Ports)*portEntrySize, 64)
	l.freeRing = align(l.slots+uint64(g.Requests)*slotSize, 64)
	l.rings = l.freeRing + l.ringBytes
	l.bitmap = l.rings + 2*uint64(g.Ports)*l.ringBytes
	l.buffers = align(l.bitmap+g.BufferBytes/BufferUnit/8, pageSize)
	l.size = l.buffers + g.BufferBytes
	return l
}

// header is the decoded first page of a segment.
type header struct {
	Version  uint32
	Geometry Geometry
	Layout   layout
	Created  int64 // unix nanoseconds
}

// Header field offsets (little endian).
const (
	hVersion   = 8
	hHeaderSz  = 12
	hSize      = 16
	hPorts     = 24
	hStatic    = 28
	hRequests  = 32
	hRingCap   = 36
	hBuffer    = 40
	hUnit      = 48
	hTargetMax = 52
	hPortsOff  = 56
	hSlotsOff  = 64
	hFreeOff   = 72
	hRingsOff  = 80
	hBitmapOff = 88
	hBufferOff = 96
	hCreated   = 104
)

var le = binary.LittleEndian

func encodeHeader(p []byte, h header) {
	clear(p[:headerSize])
	copy(p, magic[:])
	le.PutUint32(p[hVersion:], h.Version)
	le.PutUint32(p[hHeaderSz:], headerSize)
	le.PutUint64(p[hSize:], h.Layout.size)
	le.PutUint32(p[hPorts:], h.Geometry.Ports)
	le.PutUint32(p[hStatic:], h.Geometry.StaticPorts)
	le.PutUint32(p[hRequests:], h.Geometry.Requests)
	le.PutUint32(p[hRingCap:], uint32(h.Geometry.RingCapacity()))
	le.PutUint64(p[hBuffer:], h.Geometry.BufferBytes)
	le.PutUint32(p[hUnit:], BufferUnit)
	le.PutUint32(p[hTargetMax:], MaxTargetLen)
	le.PutUint64(p[hPortsOff:], h.Layout.ports)
	le.PutUint64(p[hSlotsOff:], h.Layout.slots)
	le.PutUint64(p[hFreeOff:], h.Layout.freeRing)
	le.PutUint64(p[hRingsOff:], h.Layout.rings)
	le.PutUint64(p[hBitmapOff:], h.Layout.bitmap)
	le.PutUint64(p[hBufferOff:], h.Layout.buffers)
	le.PutUint64(p[hCreated:], uint64(h.Created))
	le.PutUint32(p[checksumOffset:], crc32.Checksum(p[:checksumOffset], crcTable))
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// decodeHeader parses and checks the first page of a segment file of
// fileSize bytes. It never trusts a field before checking it.
func decodeHeader(p []byte, fileSize int64) (header, error) {
	var h header
	if len(p) < headerSize || fileSize < headerSize {
		return h, fmt.Errorf("%w: file of %d bytes is shorter than the %d-byte header", ErrCorrupt, fileSize, headerSize)
	}
	if [8]byte(p[:8]) != magic {
		return h, fmt.Errorf("%w: bad magic %q", ErrCorrupt, p[:8])
	}
	h.Version = le.Uint32(p[hVersion:])
	if h.Version != LayoutVersion {
		return h, fmt.Errorf("%w: segment has layout %d, this program speaks %d", ErrVersion, h.Version, LayoutVersion)
	}
	if sum := crc32.Checksum(p[:checksumOffset], crcTable); sum != le.Uint32(p[checksumOffset:]) {
		return h, fmt.Errorf("%w: header checksum %#x, stored %#x", ErrCorrupt, sum, le.Uint32(p[checksumOffset:]))
	}
	if le.Uint32(p[hHeaderSz:]) != headerSize || le.Uint32(p[hUnit:]) != BufferUnit || le.Uint32(p[hTargetMax:]) != MaxTargetLen {
		return h, fmt.Errorf("%w: header size, buffer unit or target limit differ from this build", ErrCorrupt)
	}
	h.Geometry = Geometry{
		Ports:       le.Uint32(p[hPorts:]),
		StaticPorts: le.Uint32(p[hStatic:]),
		Requests:    le.Uint32(p[hRequests:]),
		BufferBytes: le.Uint64(p[hBuffer:]),
	}
	if err := h.Geometry.validate(); err != nil {
		return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if le.Uint32(p[hRingCap:]) != uint32(h.Geometry.RingCapacity()) {
		return h, fmt.Errorf("%w: ring capacity %d", ErrCorrupt, le.Uint32(p[hRingCap:]))
	}
	h.Layout = computeLayout(h.Geometry)
	stored := layout{
		ports: le.Uint64(p[hPortsOff:]), slots: le.Uint64(p[hSlotsOff:]),
		freeRing: le.Uint64(p[hFreeOff:]), rings: le.Uint64(p[hRingsOff:]),
		bitmap: le.Uint64(p[hBitmapOff:]), buffers: le.Uint64(p[hBufferOff:]),
		size: le.Uint64(p[hSize:]), ringBytes: h.Layout.ringBytes,
	}
	if stored != h.Layout {
		return h, fmt.Errorf("%w: table offsets disagree with the geometry", ErrCorrupt)
	}
	if uint64(fileSize) != h.Layout.size {
		return h, fmt.Errorf("%w: file is %d bytes, header says %d (truncated?)", ErrCorrupt, fileSize, h.Layout.size)
	}
	h.Created = int64(le.Uint64(p[hCreated:]))
	return h, nil
}
