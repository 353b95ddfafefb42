// Package protocol owns the payloads that requests and replies carry in
// their data buffers, per op: names (COPY source, SNAPSHOT and RENAME new
// name, HASH reply), sizes (INFO reply), CLONE parameters, the
// scatter lists of MAPR/MAPW replies, and the pages of LIST replies (ours,
// laid out in list.go). Layouts are the original XSEG structs on x86-64
// (little endian), so a client written against the original protocol
// reads and writes them unchanged:
//
//	struct xseg_request_copy     { char target[256]; uint32 targetlen; }         260 B
//	struct xseg_request_snapshot { char target[256]; uint32 targetlen; }         260 B
//	struct xseg_request_rename   { char target[256]; uint32 targetlen; }         260 B
//	struct xseg_reply_hash       { char target[256]; uint32 targetlen; }         260 B
//	struct xseg_reply_info       { uint64 size; }                                  8 B
//	struct xseg_request_clone    { char target[256]; uint32 targetlen; uint64 size; }  272 B (4 bytes of padding)
//	struct xseg_reply_map        { uint32 cnt; [pad 4]; segs[cnt] }          8 + 280·cnt B
//	struct xseg_reply_map_scatterlist { char target[256]; uint32 flags; uint32 targetlen;
//	                                    uint64 offset; uint64 size; }            280 B
//
// A name is the first targetlen bytes of target; the rest is zero when we
// write it and ignored when we read it. Decoders check every length
// against the buffer and never panic on garbage (fuzzed).
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	// NameFieldLen is the size of a name field: XSEG_MAX_TARGETLEN.
	NameFieldLen = 256
	// NameLen is the size of a payload holding one name.
	NameLen = NameFieldLen + 4
	// InfoLen is the size of the INFO reply.
	InfoLen = 8
	// CloneLen is the size of the CLONE request payload.
	CloneLen = 272
	// SegmentLen is the size of one scatter-list entry of a map reply.
	SegmentLen   = 280
	mapHeaderLen = 8
)

// ErrBadPayload is returned when a data buffer is too small for its op's
// payload, or holds a length over its limit.
var ErrBadPayload = errors.New("bad request payload")

var le = binary.LittleEndian

func short(what string, need, have int) error {
	return fmt.Errorf("%w: %s needs %d bytes of data, the buffer has %d", ErrBadPayload, what, need, have)
}

// EncodeName writes {char target[256]; uint32 targetlen} into b: the
// payload of COPY, SNAPSHOT, RENAME and the HASH reply.
func EncodeName(b []byte, name string) error {
	if len(b) < NameLen {
		return short("name payload", NameLen, len(b))
	}
	if len(name) > NameFieldLen {
		return fmt.Errorf("%w: name of %d bytes, the limit is %d", ErrBadPayload, len(name), NameFieldLen)
	}
	clear(b[copy(b, name):NameFieldLen])
	le.PutUint32(b[NameFieldLen:], uint32(len(name)))
	return nil
}

// DecodeName reads the name EncodeName wrote.
func DecodeName(b []byte) (string, error) {
	if len(b) < NameLen {
		return "", short("name payload", NameLen, len(b))
	}
	n := le.Uint32(b[NameFieldLen:])
	if n > NameFieldLen {
		return "", fmt.Errorf("%w: name length %d, the limit is %d", ErrBadPayload, n, NameFieldLen)
	}
	return string(b[:n]), nil
}

// EncodeInfo writes the INFO reply, a size in bytes.
func EncodeInfo(b []byte, size uint64) error {
	if len(b) < InfoLen {
		return short("info reply", InfoLen, len(b))
	}
	le.PutUint64(b, size)
	return nil
}

// DecodeInfo reads the INFO reply.
func DecodeInfo(b []byte) (uint64, error) {
	if len(b) < InfoLen {
		return 0, short("info reply", InfoLen, len(b))
	}
	return le.Uint64(b), nil
}

// Clone is the CLONE payload: the snapshot to clone (empty for a new empty
// volume) and the new volume's size (0: the snapshot's size).
type Clone struct {
	Parent string
	Size   uint64
}

// EncodeClone writes c into b.
func EncodeClone(b []byte, c Clone) error {
	if len(b) < CloneLen {
		return short("clone payload", CloneLen, len(b))
	}
	if err := EncodeName(b, c.Parent); err != nil {
		return err
	}
	clear(b[NameLen:264])
	le.PutUint64(b[264:], c.Size)
	return nil
}

// DecodeClone reads a CLONE payload.
func DecodeClone(b []byte) (Clone, error) {
	if len(b) < CloneLen {
		return Clone{}, short("clone payload", CloneLen, len(b))
	}
	parent, err := DecodeName(b)
	if err != nil {
		return Clone{}, err
	}
	return Clone{Parent: parent, Size: le.Uint64(b[264:])}, nil
}

// Segment flags of a map reply.
const (
	// SegmentReadOnly marks an object shared with a snapshot.
	SegmentReadOnly uint32 = 1
	// SegmentZero marks a never-written range: it reads as zeros, no I/O.
	SegmentZero uint32 = 2
)

// Segment is one entry of a MAPR/MAPW reply: the part [Offset,
// Offset+Size) of Object that holds the next bytes of the volume range.
type Segment struct {
	Object string
	Flags  uint32
	Offset uint64
	Size   uint64
}

// MapLen is the size of a map reply with n segments.
func MapLen(n int) int { return mapHeaderLen + n*SegmentLen }

// EncodeMap writes a MAPR/MAPW reply into b.
func EncodeMap(b []byte, segs []Segment) error {
	if len(b) < MapLen(len(segs)) {
		return short("map reply", MapLen(len(segs)), len(b))
	}
	le.PutUint32(b, uint32(len(segs)))
	clear(b[4:mapHeaderLen])
	for i, s := range segs {
		e := b[mapHeaderLen+i*SegmentLen:]
		if len(s.Object) > NameFieldLen {
			return fmt.Errorf("%w: object name of %d bytes, the limit is %d", ErrBadPayload, len(s.Object), NameFieldLen)
		}
		clear(e[copy(e, s.Object):NameFieldLen])
		le.PutUint32(e[256:], s.Flags)
		le.PutUint32(e[260:], uint32(len(s.Object)))
		le.PutUint64(e[264:], s.Offset)
		le.PutUint64(e[272:], s.Size)
	}
	return nil
}

// DecodeMap reads a MAPR/MAPW reply.
func DecodeMap(b []byte) ([]Segment, error) {
	if len(b) < mapHeaderLen {
		return nil, short("map reply", mapHeaderLen, len(b))
	}
	n := le.Uint32(b)
	if uint64(n) > uint64(len(b)-mapHeaderLen)/SegmentLen {
		return nil, fmt.Errorf("%w: map reply of %d segments in %d bytes", ErrBadPayload, n, len(b))
	}
	segs := make([]Segment, n)
	for i := range segs {
		e := b[mapHeaderLen+i*SegmentLen:]
		tl := le.Uint32(e[260:])
		if tl > NameFieldLen {
			return nil, fmt.Errorf("%w: segment %d name length %d", ErrBadPayload, i, tl)
		}
		segs[i] = Segment{Object: string(e[:tl]), Flags: le.Uint32(e[256:]), Offset: le.Uint64(e[264:]), Size: le.Uint64(e[272:])}
	}
	return segs, nil
}
