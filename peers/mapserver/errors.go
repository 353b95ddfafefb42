package mapserver

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Sentinel errors of the peer; the mapper's own (mapper.ErrExists, ...)
// come wrapped as they are. Errno says which errno each becomes.
var (
	// ErrNotFound is returned for a volume with no map, or whose map was
	// removed.
	ErrNotFound = errors.New("no such volume")
	// ErrLocked is returned when another host holds the volume's lock; the
	// error is a *LockedError naming the holder when it is known.
	ErrLocked = errors.New("volume locked by another host")
	// ErrNotOwner is returned by CLOSE of a volume whose lock another host
	// holds.
	ErrNotOwner = errors.New("volume locked by another host, not by this one")
	// ErrBufferTooSmall is returned when a request's data buffer cannot
	// hold the reply; the reply's serviced field says how many bytes it
	// needs.
	ErrBufferTooSmall = errors.New("data buffer too small for the reply")
	// ErrNoResources is returned when the segment has no request slot or
	// data buffer free for mapperd's own requests to the blockers for
	// longer than resourceWait.
	ErrNoResources = errors.New("segment out of request slots or buffer space")
	// ErrSameStore is returned by HASH of a one-block snapshot when maps
	// and data share a blocker: the image's map would be named like its
	// only object and overwrite it.
	ErrSameStore = errors.New("maps and data share a blocker")
	// ErrBlocker is returned when a blocker failed a request mapperd sent
	// it; the error carries the blocker's errno.
	ErrBlocker = errors.New("blocker request failed")
)

// LockedError is the error of an operation that needs a volume's lock
// while another host holds it. It satisfies errors.Is(err, ErrLocked) and
// carries EAGAIN.
type LockedError struct {
	Volume string
	// Owner is the holder's lock owner string, empty when the blockers
	// do not tell.
	Owner string
}

func (e *LockedError) Error() string {
	by := "another host"
	if e.Owner != "" {
		by = fmt.Sprintf("%q", e.Owner)
	}
	return fmt.Sprintf("volume %q is locked by %s: close it there, or open it with force if that host is dead", e.Volume, by)
}

// Is makes errors.Is(err, ErrLocked) and errors.Is(err, syscall.EAGAIN)
// true.
func (e *LockedError) Is(target error) bool {
	return target == ErrLocked || target == syscall.EAGAIN
}

// blockerError is a failed reply of a blocker.
type blockerError struct {
	op     xseg.Op
	target string
	port   int
	err    error // the reply's errno, or xseg.ErrPeerDied
}

func (e *blockerError) Error() string {
	return fmt.Sprintf("%s %q on blocker port %d: %v", e.op, e.target, e.port, e.err)
}

func (e *blockerError) Unwrap() []error { return []error{ErrBlocker, e.err} }

// Errno returns the errno a reply carries for a handler error:
//
//	ENOENT     no such volume (or it was removed); a missing parent or snapshot
//	EEXIST     a volume of the new name exists
//	EAGAIN     another host holds the volume's lock
//	EPERM      CLOSE of another host's lock; TRUNCATE to a smaller size without FlagForce
//	EINVAL     a bad name, prefix, size, payload or flag; CLONE or HASH of a volume that is not a snapshot
//	ERANGE     MAPR/MAPW past the end of the volume
//	EROFS      MAPW, TRUNCATE or SNAPSHOT of a snapshot
//	ENOBUFS    the data buffer cannot hold the reply (serviced = bytes needed)
//	EFBIG      a volume too large for a map (mapper.MaxEntries blocks)
//	EOVERFLOW  a map's epoch is exhausted
//	EBADMSG    the stored map is not in a format we read (a Pithos image
//	           without FlagAssumeV0), or is corrupt
//	EOPNOTSUPP an op mapperd does not serve, or a write op on a v0 (Pithos) map
//	ENOMEM     no request slot or buffer space in the segment for mapperd's own I/O
//	EIO        a blocker failed or died (its errno is in the log)
//
// A blocker's ETIMEDOUT, ENOSPC, EDQUOT, EROFS or EOPNOTSUPP (a blocker
// that does not serve LIST) travels as is.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var locked *LockedError
	switch {
	case errors.As(err, &locked), errors.Is(err, ErrLocked):
		return syscall.EAGAIN
	case errors.Is(err, ErrNotFound), errors.Is(err, mapper.ErrDeleted):
		return syscall.ENOENT
	case errors.Is(err, ErrNotOwner), errors.Is(err, mapper.ErrShrink):
		return syscall.EPERM
	case errors.Is(err, ErrBufferTooSmall):
		return syscall.ENOBUFS
	case errors.Is(err, ErrNoResources):
		return syscall.ENOMEM
	case errors.Is(err, mapper.ErrExists):
		return syscall.EEXIST
	case errors.Is(err, mapper.ErrOutOfRange):
		return syscall.ERANGE
	case errors.Is(err, mapper.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, mapper.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, mapper.ErrEpochExhausted):
		return syscall.EOVERFLOW
	case errors.Is(err, mapper.ErrBadFormat):
		return syscall.EBADMSG
	case errors.Is(err, mapper.ErrNotUpgraded), errors.Is(err, ErrSameStore):
		return syscall.EOPNOTSUPP
	case errors.Is(err, mapper.ErrBadName), errors.Is(err, mapper.ErrInvalidSize),
		errors.Is(err, mapper.ErrNotSnapshot), errors.Is(err, protocol.ErrBadPayload):
		return syscall.EINVAL
	case errors.Is(err, ErrBlocker):
		for _, pass := range []syscall.Errno{syscall.ETIMEDOUT, syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EOPNOTSUPP} {
			if errors.Is(err, pass) {
				return pass
			}
		}
		return syscall.EIO
	}
	return peers.Errno(err)
}

// withErrno makes err carry its errno for the peer runtime, which takes
// the first syscall.Errno in the chain.
func withErrno(err error) error {
	if err == nil {
		return nil
	}
	errno := Errno(err)
	var bare syscall.Errno
	if errors.As(err, &bare) && bare == errno {
		return err
	}
	return &errnoError{err: err, errno: errno}
}

// errnoError puts an errno in front of an error's chain.
type errnoError struct {
	err   error
	errno syscall.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.errno, e.err} }
