package protocol

import "fmt"

// The LIST payloads (ours: the original protocol has no LIST). A LIST
// request's target is a name prefix ("" for every name); its data buffer
// starts with a name payload (EncodeName), the name to list after ("" for
// the first page), and is as large as the reply the client can take. The
// reply overwrites the buffer with one page of the listing, in name order:
//
//	struct list_reply    { uint32 count; uint32 flags; uint64 rest; entries[count] }  16 B + entries
//	object entry (blocker):  { uint32 namelen; char name[namelen]; }               4 B + name
//	volume entry (mapperd):  { uint64 size; uint64 blocksize; uint64 flags;
//	                           uint32 namelen; char name[namelen]; }              28 B + name
//
// Entries are packed, with no padding; names are 1 to 256 bytes and
// strictly ascending bytewise. flags ListMore: names after the last entry
// remain, and the client sends LIST again with the last name as the name
// to list after; a reply with ListMore holds at least one entry. rest,
// with ListMore, is the size of a reply that would hold every remaining
// entry (a server that cannot know gives an upper bound, or 0): a hint
// for the size of the next buffer. serviced is the reply's length. A
// buffer that cannot hold the header and the first entry fails with
// ENOBUFS and serviced = the bytes needed; one shorter than NameLen, or a
// bad name payload, with EINVAL.
//
// A volume entry's first 24 bytes are a VolumeInfo (EncodeVolumeInfo).

const (
	// ListHeaderLen is the size of a LIST reply's header.
	ListHeaderLen = 16
	// ListMore is the reply flag saying that names after the last entry
	// remain.
	ListMore uint32 = 1

	nameEntryLen = 4
)

// ObjectList is a blocker's LIST reply: object names.
type ObjectList struct {
	Names []string
	// More says names after the last remain: list again after it.
	More bool
	// RestBytes, with More, is the size of a reply holding the rest (a
	// hint, 0 unknown).
	RestBytes uint64
}

// ObjectEntryLen is the size of the entry of an object name.
func ObjectEntryLen(name string) int { return nameEntryLen + len(name) }

// Len is the size of the reply l.
func (l ObjectList) Len() int {
	return ListHeaderLen + sumLen(len(l.Names), func(i int) int { return ObjectEntryLen(l.Names[i]) })
}

// FitObjects returns how many of names, from the first, a reply of room
// bytes holds.
func FitObjects(names []string, room int) int {
	return fit(room, len(names), func(i int) int { return ObjectEntryLen(names[i]) })
}

// EncodeObjectList writes the reply l into b.
func EncodeObjectList(b []byte, l ObjectList) error {
	if err := checkList(b, l.Len(), len(l.Names), l.More, func(i int) string { return l.Names[i] }); err != nil {
		return err
	}
	putListHeader(b, len(l.Names), l.More, l.RestBytes)
	off := ListHeaderLen
	for _, name := range l.Names {
		off += putEntryName(b[off:], name)
	}
	return nil
}

// DecodeObjectList reads a blocker's LIST reply: b is the reply's data,
// serviced bytes long.
func DecodeObjectList(b []byte) (ObjectList, error) {
	count, more, rest, err := readListHeader(b, nameEntryLen)
	if err != nil {
		return ObjectList{}, err
	}
	l := ObjectList{Names: make([]string, count), More: more, RestBytes: rest}
	off := ListHeaderLen
	for i := range l.Names {
		n, err := readEntryName(b[off:], i, l.Names)
		if err != nil {
			return ObjectList{}, err
		}
		off += n
	}
	return l, nil
}

// VolumeEntry is one volume of mapperd's LIST reply.
type VolumeEntry struct {
	Name string
	VolumeInfo
}

// VolumeList is mapperd's LIST reply: volumes, snapshots included.
type VolumeList struct {
	Volumes []VolumeEntry
	// More says volumes after the last remain: list again after it.
	More bool
	// RestBytes, with More, is at least the size of a reply holding the
	// rest (a hint, 0 unknown).
	RestBytes uint64
}

// VolumeEntryLen is the size of the entry of a volume name.
func VolumeEntryLen(name string) int { return VolumeInfoLen + nameEntryLen + len(name) }

// Len is the size of the reply l.
func (l VolumeList) Len() int {
	return ListHeaderLen + sumLen(len(l.Volumes), func(i int) int { return VolumeEntryLen(l.Volumes[i].Name) })
}

// FitVolumes returns how many of vols, from the first, a reply of room
// bytes holds.
func FitVolumes(vols []VolumeEntry, room int) int {
	return fit(room, len(vols), func(i int) int { return VolumeEntryLen(vols[i].Name) })
}

// EncodeVolumeList writes the reply l into b.
func EncodeVolumeList(b []byte, l VolumeList) error {
	if err := checkList(b, l.Len(), len(l.Volumes), l.More, func(i int) string { return l.Volumes[i].Name }); err != nil {
		return err
	}
	putListHeader(b, len(l.Volumes), l.More, l.RestBytes)
	off := ListHeaderLen
	for _, v := range l.Volumes {
		if _, err := EncodeVolumeInfo(b[off:off+VolumeInfoLen], v.VolumeInfo); err != nil {
			return err
		}
		off += VolumeInfoLen + putEntryName(b[off+VolumeInfoLen:], v.Name)
	}
	return nil
}

// DecodeVolumeList reads mapperd's LIST reply: b is the reply's data,
// serviced bytes long.
func DecodeVolumeList(b []byte) (VolumeList, error) {
	count, more, rest, err := readListHeader(b, VolumeInfoLen+nameEntryLen)
	if err != nil {
		return VolumeList{}, err
	}
	l := VolumeList{Volumes: make([]VolumeEntry, count), More: more, RestBytes: rest}
	names := make([]string, count)
	off := ListHeaderLen
	for i := range l.Volumes {
		if len(b)-off < VolumeInfoLen {
			return VolumeList{}, fmt.Errorf("%w: list entry %d past the end of the reply", ErrBadPayload, i)
		}
		info, err := DecodeVolumeInfo(b[off : off+VolumeInfoLen])
		if err != nil {
			return VolumeList{}, err
		}
		n, err := readEntryName(b[off+VolumeInfoLen:], i, names)
		if err != nil {
			return VolumeList{}, err
		}
		l.Volumes[i] = VolumeEntry{Name: names[i], VolumeInfo: info}
		off += VolumeInfoLen + n
	}
	return l, nil
}

// sumLen adds up size(i) for i in [0, n).
func sumLen(n int, size func(i int) int) int {
	total := 0
	for i := range n {
		total += size(i)
	}
	return total
}

// fit returns how many of n entries, from the first, a reply of room
// bytes holds.
func fit(room, n int, size func(i int) int) int {
	used := ListHeaderLen
	for i := range n {
		if used += size(i); used > room {
			return i
		}
	}
	return n
}

// checkList checks a reply of count entries, need bytes long, before it is
// written into b: names of 1 to 256 bytes in strictly ascending order, at
// least one entry if more.
func checkList(b []byte, need, count int, more bool, name func(i int) string) error {
	if len(b) < need {
		return short("list reply", need, len(b))
	}
	if more && count == 0 {
		return fmt.Errorf("%w: a list reply with more to come holds no entry", ErrBadPayload)
	}
	for i := range count {
		if err := checkEntryName(name(i), i, name); err != nil {
			return err
		}
	}
	return nil
}

// checkEntryName checks entry i's name: 1 to NameFieldLen bytes, after
// the name of entry i-1.
func checkEntryName(n string, i int, name func(i int) string) error {
	switch {
	case n == "" || len(n) > NameFieldLen:
		return fmt.Errorf("%w: list entry %d: name of %d bytes, want 1 to %d", ErrBadPayload, i, len(n), NameFieldLen)
	case i > 0 && name(i-1) >= n:
		return fmt.Errorf("%w: list entry %d: %q does not sort after %q", ErrBadPayload, i, n, name(i-1))
	}
	return nil
}

func putListHeader(b []byte, count int, more bool, rest uint64) {
	var flags uint32
	if more {
		flags = ListMore
	}
	le.PutUint32(b, uint32(count))
	le.PutUint32(b[4:], flags)
	le.PutUint64(b[8:], rest)
}

// readListHeader reads a reply's header; count is checked against what b
// can hold at minEntry bytes an entry. Unknown flags are ignored.
func readListHeader(b []byte, minEntry int) (count int, more bool, rest uint64, err error) {
	if len(b) < ListHeaderLen {
		return 0, false, 0, short("list reply", ListHeaderLen, len(b))
	}
	n := le.Uint32(b)
	if uint64(n) > uint64(len(b)-ListHeaderLen)/uint64(minEntry) {
		return 0, false, 0, fmt.Errorf("%w: list reply of %d entries in %d bytes", ErrBadPayload, n, len(b))
	}
	more = le.Uint32(b[4:])&ListMore != 0
	if more && n == 0 {
		return 0, false, 0, fmt.Errorf("%w: a list reply with more to come holds no entry", ErrBadPayload)
	}
	return int(n), more, le.Uint64(b[8:]), nil
}

// putEntryName writes {uint32 namelen; name} and returns its length.
func putEntryName(b []byte, name string) int {
	le.PutUint32(b, uint32(len(name)))
	return nameEntryLen + copy(b[nameEntryLen:], name)
}

// readEntryName reads entry i's {uint32 namelen; name} into names[i],
// checked against the names before it, and returns its length.
func readEntryName(b []byte, i int, names []string) (int, error) {
	if len(b) < nameEntryLen {
		return 0, fmt.Errorf("%w: list entry %d past the end of the reply", ErrBadPayload, i)
	}
	n := le.Uint32(b)
	if uint64(n) > uint64(len(b)-nameEntryLen) {
		return 0, fmt.Errorf("%w: list entry %d: name of %d bytes past the end of the reply", ErrBadPayload, i, n)
	}
	names[i] = string(b[nameEntryLen : nameEntryLen+n])
	if err := checkEntryName(names[i], i, func(j int) string { return names[j] }); err != nil {
		return 0, err
	}
	return nameEntryLen + int(n), nil
}
