package mapper

import (
	"fmt"
	"strconv"
	"strings"
)

// ZeroObject is the name of the zero block: the SHA-256 of nothing, which
// Pithos (and so the original mapper) takes for a block of zeros. An entry
// naming it carries EntryZero; such a block reads as zeros without I/O and
// no object of that name needs to exist.
const ZeroObject = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Name limits of the original (mapper.h), kept so that every map we write
// can be read by it and the other way round.
const (
	// MaxObjectLen is the longest object name a v2 entry holds.
	MaxObjectLen = 123
	// MaxVolumeLen is the longest volume name whose copy-up names,
	// "<volume>_<16 hex>_<16 hex>", still fit MaxObjectLen.
	MaxVolumeLen = MaxObjectLen - 2*(1+16)
	// MaxVolumeNameLen is the longest volume name the original accepts for
	// any map it creates or loads: it requires len+len("archip_") to fit
	// MaxVolumeLen (the legacy prefix must fit too). Ours is the same.
	MaxVolumeNameLen = MaxVolumeLen - len(legacyPrefix)
)

// legacyPrefix is the prefix of v1 writable objects, and of the names under
// which Archipelago ≤ 0.3 stored maps (the original falls back to
// "archip_<name>" when <name> has no map; a peer may do the same).
const legacyPrefix = "archip_"

// Side-object suffixes of the blockers (the lock of object x is "x_lock",
// its cached content hash "x_hash").
var reservedSuffixes = []string{"_lock", "_hash"}

// MapBlockName returns the name of map-data object blockID of volume:
// "<volume>_<16 hex digits of blockID>". Map block i holds entries
// [i·k, (i+1)·k) where k = blockSize/EntryLen.
func MapBlockName(volume string, blockID uint64) string {
	return volume + "_" + hex16(blockID)
}

// CopyUpName returns the name of the object that block index of volume is
// copied up to at epoch: "<volume>_<16 hex epoch>_<16 hex index>". Epochs
// only grow (create, clone, snapshot, rename and shrinking bump them, and a
// deleted map keeps its epoch), so a name is never produced twice.
func CopyUpName(volume string, epoch, index uint64) string {
	return volume + "_" + hex16(epoch) + "_" + hex16(index)
}

// hex16 formats v as the 16 lowercase hex digits of its big-endian bytes,
// which is what the original's hexlify of a __cpu_to_be64 value gives.
func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// CheckName validates the name of an existing map for lookup, with the
// original's limits: 1 to MaxVolumeNameLen bytes, no '/' and no NUL (which
// no object store accepts). Maps made by the original may have names that
// ValidateVolumeName refuses; they can still be opened.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty volume name", ErrBadName)
	}
	return checkNameBytes("volume name", name)
}

// CheckPrefix validates a prefix of volume names (what LIST selects by):
// at most MaxVolumeNameLen bytes, no '/' and no NUL. The empty prefix
// selects every volume.
func CheckPrefix(prefix string) error {
	return checkNameBytes("volume name prefix", prefix)
}

// checkNameBytes checks that s, a volume name or what the error calls it,
// fits MaxVolumeNameLen bytes and holds no '/' or NUL.
func checkNameBytes(what, s string) error {
	switch {
	case len(s) > MaxVolumeNameLen:
		return fmt.Errorf("%w: %s of %d bytes, the limit is %d", ErrBadName, what, len(s), MaxVolumeNameLen)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("%w: %s %q holds '/' or NUL", ErrBadName, what, s)
	}
	return nil
}

// ValidateVolumeName validates the name of a map about to be created (by
// create, clone, snapshot or rename). Beyond CheckName it refuses:
//
//   - bytes other than printable ASCII without space, and "." or "..":
//     names become file names and command-line arguments;
//   - a suffix "_lock" or "_hash": the map's header object would be the lock
//     or hash side object of another object;
//   - a suffix "_" followed by 16 hex digits: the header would be a map block
//     ("<v>_<16 hex>") or a copy-up object ("<v>_<16 hex>_<16 hex>") of
//     another volume v. With this rule no two volumes' objects can collide;
//   - 64 hex digits: those names are content-addressed (images named by their
//     Merkle hash, and data blocks), not chosen.
//
// The original enforced none of these beyond the length (its CLI checked a
// few); collisions there silently corrupted volumes.
func ValidateVolumeName(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: volume name %q", ErrBadName, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: volume name %q holds byte %#x; use printable ASCII without spaces", ErrBadName, name, c)
		}
	}
	return checkShape(name)
}

// checkShape refuses the names of other objects than map headers: side
// objects ("_lock", "_hash"), map blocks and copy-ups ("_<16 hex>" at the
// end), content-addressed objects (64 hex digits).
func checkShape(name string) error {
	if s := sideSuffix(name); s != "" {
		return fmt.Errorf("%w: volume name %q ends in %q, the suffix of the blockers' side objects", ErrBadName, name, s)
	}
	if hasHexTail(name) {
		return fmt.Errorf("%w: volume name %q ends in '_' and 16 hex digits, the shape of another volume's map and data objects", ErrBadName, name)
	}
	if isContentName(name) {
		return fmt.Errorf("%w: volume name %q is 64 hex digits, reserved for content-addressed images", ErrBadName, name)
	}
	return nil
}

// sideSuffix returns the suffix of the blockers' side objects that name
// ends in, or "".
func sideSuffix(name string) string {
	for _, s := range reservedSuffixes {
		if strings.HasSuffix(name, s) {
			return s
		}
	}
	return ""
}

// hasHexTail reports whether name ends in '_' and 16 hex digits, the shape
// of map blocks and copy-ups.
func hasHexTail(name string) bool {
	n := len(name)
	return n >= 17 && name[n-17] == '_' && isHex(name[n-16:])
}

// isHex reports whether s is non-empty and all hex digits (either case).
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// isContentName reports whether s is a content-addressed name: exactly 64
// lowercase hex digits, as hexlify writes a SHA-256.
func isContentName(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkObjectName validates an object name held in (or about to be written
// to) a map entry.
func checkObjectName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty object name", ErrBadName)
	case len(name) > MaxObjectLen:
		return fmt.Errorf("%w: object name of %d bytes, the limit is %d", ErrBadName, len(name), MaxObjectLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: object name %s holds '/' or NUL", ErrBadName, strconv.Quote(name))
	}
	return nil
}
