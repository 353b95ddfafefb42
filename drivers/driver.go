// Package drivers owns the object-store interface that blockers serve:
// named objects with byte-range reads and writes, copies, deletes, sizes,
// listings by name prefix, named locks and content hashes. Each backend
// lives in a subpackage (drivers/file, drivers/rados) and behaves the same
// way; the conformance suite in drivers/drivertest checks that it does.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// MaxNameLen is the longest object name, in bytes, that any driver accepts.
// It matches the target length of an XSEG request.
const MaxNameLen = 256

var (
	// ErrNotFound is returned when an object (or a lock) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidName is returned for an empty name, a name over MaxNameLen
	// bytes, or one holding '/', NUL or equal to "." or "..".
	ErrInvalidName = errors.New("invalid object name")
	// ErrLocked is returned by a try-lock when another owner holds the lock.
	ErrLocked = errors.New("lock held by another owner")
	// ErrNotOwner is returned when releasing, without force, a lock that
	// another owner holds.
	ErrNotOwner = errors.New("lock held by another owner, not released")
	// ErrInvalidRange is returned for a negative offset or size.
	ErrInvalidRange = errors.New("invalid offset or size")
)

// WriteFlags say how durable a write must be before it returns.
type WriteFlags uint32

const (
	// WriteFUA makes this write durable before Write returns.
	WriteFUA WriteFlags = 1 << iota
	// WriteFlush makes every earlier acknowledged write of this store
	// durable before Write returns (a barrier), then performs this one.
	WriteFlush
)

// LockMode selects how Lock waits.
type LockMode int

const (
	// LockTry fails at once with ErrLocked if another owner holds the lock.
	LockTry LockMode = iota
	// LockWait blocks until the lock is free or ctx ends.
	LockWait
)

// Store is one object store. All methods are safe for concurrent use.
// Buffers passed in are not retained after a call returns.
type Store interface {
	// Read fills p from the object at off. Bytes past the end of the
	// object, and every byte of a missing object, read as zeros: Read
	// returns ErrNotFound only through Size. It always fills all of p.
	Read(ctx context.Context, name string, p []byte, off int64) error
	// Write stores p at off, creating the object if needed (a hole before
	// off reads as zeros). With WriteFUA or WriteFlush the data is durable
	// when Write returns.
	Write(ctx context.Context, name string, p []byte, off int64, flags WriteFlags) error
	// Flush makes every acknowledged write durable.
	Flush(ctx context.Context) error
	// Delete removes the object; ErrNotFound if it does not exist.
	Delete(ctx context.Context, name string) error
	// Copy writes the first size bytes of src (zeros past its end) to dst,
	// replacing dst. The backend copies server-side where it can.
	Copy(ctx context.Context, src, dst string, size int64) error
	// Size returns the object's size in bytes; ErrNotFound if missing.
	Size(ctx context.Context, name string) (int64, error)
	// Lock takes the named lock for owner. Taking a lock the same owner
	// already holds succeeds. The lock is independent of any object
	// of the same name.
	Lock(ctx context.Context, name, owner string, mode LockMode) error
	// Unlock releases the named lock. Without force it fails with
	// ErrNotOwner if another owner holds it; with force it breaks the lock
	// whoever holds it. Unlocking a free lock returns ErrNotFound.
	Unlock(ctx context.Context, name, owner string, force bool) error
	// LockOwner returns the owner of the named lock, ErrNotFound if free.
	LockOwner(ctx context.Context, name string) (string, error)
	// List returns the names of the objects whose names start with prefix
	// (every object for ""), sorted bytewise. Side objects are not objects
	// and are left out: locks and cached hashes (hazard: an object named
	// "x_lock" or "x_hash" is indistinguishable from the lock or the cached
	// hash of object x, and is never listed), and a driver's temporaries.
	// A prefix over MaxNameLen bytes, or holding '/' or NUL, is
	// ErrInvalidName. The listing is no snapshot: objects written or
	// deleted while it runs may be in it or not. It reads the whole store
	// (or what the prefix selects), which takes a while for millions of
	// objects.
	List(ctx context.Context, prefix string) ([]string, error)
	// Hash computes the SHA-256 of the object's content with trailing zero
	// bytes stripped (so a short object and its zero-padded copy hash the
	// same), stores a content-addressed copy under the 64-hex-digit hash
	// name unless one exists, and returns that name.
	Hash(ctx context.Context, name string) (string, error)
	// Close releases the store's resources.
	Close() error
}

// Suffixes of the side objects the drivers keep beside object x, as the
// original blockers do: its lock "x_lock" and its cached content hash
// "x_hash". List leaves names with them out (IsSideObject).
const (
	LockSuffix = "_lock"
	HashSuffix = "_hash"
)

// IsSideObject reports whether name has the shape of a side object: a
// lock or a cached hash.
func IsSideObject(name string) bool {
	return strings.HasSuffix(name, LockSuffix) || strings.HasSuffix(name, HashSuffix)
}

// ValidatePrefix returns ErrInvalidName, wrapped with the reason, for a
// List prefix no object name can start with: over MaxNameLen bytes, or
// holding '/' or NUL. The empty prefix selects every object.
func ValidatePrefix(prefix string) error {
	switch {
	case len(prefix) > MaxNameLen:
		return fmt.Errorf("%w: prefix of %d bytes, the limit is %d", ErrInvalidName, len(prefix), MaxNameLen)
	case strings.ContainsAny(prefix, "/\x00"):
		return fmt.Errorf("%w: prefix %q holds '/' or NUL", ErrInvalidName, prefix)
	}
	return nil
}

// ValidateName returns ErrInvalidName, wrapped with the reason, for a name
// no driver may store. Drivers call it before touching their backend.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidName, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q holds '/' or NUL", ErrInvalidName, name)
	}
	return nil
}
