package mapper

import "errors"

// Sentinel errors. Functions wrap them with the volume, index or field at
// fault, so test with errors.Is.
var (
	// ErrBadName is returned for a volume or object name the original
	// Archipelago could not store, or one we refuse because it would collide
	// with another volume's objects (see ValidateVolumeName).
	ErrBadName = errors.New("invalid name")
	// ErrBadFormat is returned when bytes read from storage are not a map
	// header or map entries of a format we read (v0, v1, v2), or are
	// truncated or inconsistent.
	ErrBadFormat = errors.New("bad map format")
	// ErrNotUpgraded is returned when an operation that writes a map is
	// given a map loaded from the v0 or v1 format: upgrade it to v2 first
	// (Upgrade and its plan), as the original did on an exclusive open.
	ErrNotUpgraded = errors.New("map in an old format (v0/v1), upgrade it to v2 first")
	// ErrInvalidSize is returned for a volume size of zero, a block size that
	// is not a power of two above 128 bytes, or a size smaller than a clone's
	// parent.
	ErrInvalidSize = errors.New("invalid size")
	// ErrTooLarge is returned when a volume would need more than MaxEntries
	// map entries: the map would not fit in memory.
	ErrTooLarge = errors.New("volume too large")
	// ErrShrink is returned by Resize to a smaller size without force:
	// shrinking drops data.
	ErrShrink = errors.New("shrinking a volume needs force")
	// ErrOutOfRange is returned for I/O that ends past the end of the volume
	// (or whose offset plus size overflows).
	ErrOutOfRange = errors.New("range beyond the end of the volume")
	// ErrReadOnly is returned for writes to, and resizes or snapshots of, a
	// read-only map (a snapshot or an image).
	ErrReadOnly = errors.New("volume is read-only")
	// ErrDeleted is returned for operations on a map marked deleted, and for
	// I/O that touches an entry whose object was deleted.
	ErrDeleted = errors.New("volume deleted")
	// ErrExists is returned when creating, cloning, snapshotting or renaming
	// onto a name whose map exists and is not marked deleted.
	ErrExists = errors.New("volume exists")
	// ErrNotSnapshot is returned when cloning or hashing a map that is not
	// read-only: only snapshots (and images) are frozen.
	ErrNotSnapshot = errors.New("not a snapshot")
	// ErrEpochExhausted is returned when a map's epoch cannot grow any more,
	// so no fresh object names are left for it (after 2^64 snapshots).
	ErrEpochExhausted = errors.New("map epoch exhausted")
	// ErrConflict is returned by ApplyCopyUps when an entry is neither what
	// the copy-up started from nor what it produced: another operation
	// changed it meanwhile, and the copy-up's object must not be used.
	ErrConflict = errors.New("map entry changed during copy-up")
)
