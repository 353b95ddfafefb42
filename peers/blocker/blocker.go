// Package blocker owns the blocker peer: the peers.Handler that serves
// object requests from one drivers.Store, the same way whatever the
// backend. filed is a blocker over drivers/file, radosd one over
// drivers/rados.
//
// Requests (target = object name; size and offset in bytes; data = the
// request's data buffer, which must hold what the op reads or writes):
//
//	PING     nothing; answers at once
//	READ     data[:size] from the object at offset; past the end, and for a
//	         missing object, zeros. serviced = size
//	WRITE    data[:size] to the object at offset, creating it. FlagFUA: the
//	         write is durable before the reply; FlagFlush: every earlier
//	         acknowledged write is durable first. A zero-size WRITE with
//	         FlagFUA or FlagFlush is a flush barrier. serviced = size
//	FLUSH    a flush barrier (as a zero-size WRITE with FlagFlush)
//	DELETE   removes the object
//	COPY     the first size bytes of the source (zeros past its end) to the
//	         target, replacing it; data holds the source's name as
//	         struct xseg_request_copy (protocol.EncodeName); offset must be 0.
//	         serviced = size
//	INFO     data gets the object size as struct xseg_reply_info
//	         (protocol.DecodeInfo)
//	ACQUIRE  takes the lock named target for this peer's owner. FlagNoSync:
//	         a try-lock; otherwise it waits for the lock up to LockWait. A
//	         failure with room for a name payload gets the holder's name
//	         (serviced NameLen) when the store can tell it
//	RELEASE  releases it; FlagForce breaks it whoever holds it
//	HASH     SHA-256 of the content (trailing zeros stripped), stored as a
//	         copy under its 64-hex-digit name; data gets the name as
//	         struct xseg_reply_hash (protocol.DecodeName)
//	LIST     target is a name prefix ("" for all): data, which starts with
//	         a name payload (the name to list after, "" for the first
//	         page), gets the next page of the sorted names of the objects
//	         the prefix selects, locks and cached hashes left out
//	         (protocol.DecodeObjectList; drivers.Store.List). Each page
//	         lists the store anew
//
// Failures reply with an errno (see Errno): ENOENT missing object or free
// lock, EINVAL bad name, prefix, range or payload, EAGAIN lock held by
// another owner (try-lock), EPERM release of another owner's lock,
// ETIMEDOUT a blocking ACQUIRE that waited LockWait, ECANCELED one (or a
// LIST) cut short because the peer is stopping, ENOBUFS a LIST buffer too
// small for the next name (serviced = the bytes needed), EOPNOTSUPP any
// other op, EIO a backend failure.
//
// Unlike the original filed, which fsynced every write, a write is durable
// only when FUA or FLUSH asks (or a flush barrier follows): what a disk's
// write cache promises, and what QEMU and the kernel ask for.
package blocker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// DefaultLockWait is how long a blocking ACQUIRE waits for a held lock
// unless Options.LockWait says otherwise. A waiting ACQUIRE occupies one
// of the peer's in-flight requests, so the wait is bounded.
const DefaultLockWait = 30 * time.Second

// Options tune a Blocker.
type Options struct {
	// Owner is who ACQUIRE takes locks as and RELEASE releases them for:
	// unique per host and peer, and stable across restarts so a restarted
	// peer still owns its locks ("<hostname>_<port>", as the original's
	// uniquestr). Required.
	Owner string
	// LockWait bounds a blocking ACQUIRE; DefaultLockWait when 0.
	LockWait time.Duration
	// SlowIO says every store call waits on a device or a network (RADOS,
	// O_DIRECT): the blocker lets the runtime accept the next request
	// before each (peers.HandOff), so requests overlap at once. Without
	// it only calls known to take long hand off first (FUA and FLUSH,
	// READ and WRITE of LargeIO bytes or more, COPY, HASH, a blocking
	// ACQUIRE); smaller READs and WRITEs, INFO and DELETE run where they
	// were accepted, fastest when they hit the page cache, and the runtime
	// hands off those that last (peers.Server.HandOff).
	SlowIO bool
}

// Blocker serves object requests from a store. It is a peers.Handler and
// an io.Closer (closing the store).
type Blocker struct {
	store    drivers.Store
	owner    string
	lockWait time.Duration
	slowIO   bool
}

// New returns a Blocker over store. The Blocker owns the store from here
// on and closes it in Close.
func New(store drivers.Store, opts Options) (*Blocker, error) {
	if err := drivers.ValidateName(opts.Owner); err != nil {
		return nil, fmt.Errorf("blocker lock owner: %w", err)
	}
	b := &Blocker{store: store, owner: opts.Owner, lockWait: opts.LockWait, slowIO: opts.SlowIO}
	if b.lockWait <= 0 {
		b.lockWait = DefaultLockWait
	}
	return b, nil
}

// tellHolder writes the holder of lock name into a failed ACQUIRE's
// reply, as a name payload (serviced NameLen), when it can learn it: the
// mapper names the host that holds a volume.
func (b *Blocker) tellHolder(ctx context.Context, r xseg.Request, name string) {
	holder, err := b.store.LockOwner(ctx, name)
	if err == nil && holder != "" && protocol.EncodeName(r.Data(), holder) == nil {
		r.SetServiced(protocol.NameLen)
	}
}

// Owner returns the lock owner.
func (b *Blocker) Owner() string { return b.owner }

// Close closes the store.
func (b *Blocker) Close() error { return b.store.Close() }

// Errno returns the errno a reply carries for a store error: the mapping
// in the package doc, then peers.Errno (an errno already in the chain, a
// context's end, else EIO).
func Errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, drivers.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, drivers.ErrInvalidName), errors.Is(err, drivers.ErrInvalidRange), errors.Is(err, protocol.ErrBadPayload):
		return syscall.EINVAL
	case errors.Is(err, drivers.ErrLocked):
		return syscall.EAGAIN
	case errors.Is(err, drivers.ErrNotOwner):
		return syscall.EPERM
	}
	return peers.Errno(err)
}

// Serve performs one request; see the package doc.
func (b *Blocker) Serve(ctx context.Context, r xseg.Request) error {
	op := r.Op()
	if op == xseg.OpPing {
		return nil
	}
	name := r.TargetString()
	if err := b.serve(ctx, r, op, name); err != nil {
		return describe(op, name, err)
	}
	return nil
}

func (b *Blocker) serve(ctx context.Context, r xseg.Request, op xseg.Op, name string) error {
	switch op {
	case xseg.OpRead, xseg.OpWrite, xseg.OpDelete, xseg.OpCopy, xseg.OpInfo,
		xseg.OpAcquire, xseg.OpRelease, xseg.OpHash:
		if err := drivers.ValidateName(name); err != nil {
			return err
		}
	case xseg.OpList:
		if err := drivers.ValidatePrefix(name); err != nil {
			return err
		}
	case xseg.OpFlush:
	default:
		return syscall.EOPNOTSUPP
	}
	// Draining must not cut accepted I/O short: only lock waits watch ctx.
	io := context.Background()
	if b.slowIO || waits(op, r.Flags(), r.Size()) {
		peers.HandOff(ctx)
	}
	switch op {
	case xseg.OpRead:
		p, off, err := ioRange(r)
		if err != nil || len(p) == 0 {
			return err
		}
		if err := b.store.Read(io, name, p, off); err != nil {
			return err
		}
		r.SetServiced(uint64(len(p)))
	case xseg.OpWrite:
		p, off, err := ioRange(r)
		if err != nil {
			return err
		}
		flags := writeFlags(r.Flags())
		if len(p) == 0 {
			if flags != 0 {
				return b.store.Flush(io)
			}
			return nil
		}
		if err := b.store.Write(io, name, p, off, flags); err != nil {
			return err
		}
		r.SetServiced(uint64(len(p)))
	case xseg.OpFlush:
		return b.store.Flush(io)
	case xseg.OpDelete:
		return b.store.Delete(io, name)
	case xseg.OpCopy:
		src, err := protocol.DecodeName(r.Data())
		if err != nil {
			return err
		}
		if r.Offset() != 0 {
			return fmt.Errorf("%w: copy at offset %d, only 0 is supported", drivers.ErrInvalidRange, r.Offset())
		}
		if r.Size() > math.MaxInt64 {
			return fmt.Errorf("%w: copy of %d bytes", drivers.ErrInvalidRange, r.Size())
		}
		if err := b.store.Copy(io, src, name, int64(r.Size())); err != nil {
			return err
		}
		r.SetServiced(r.Size())
	case xseg.OpInfo:
		if len(r.Data()) < protocol.InfoLen {
			return protocol.EncodeInfo(r.Data(), 0) // the error says why
		}
		size, err := b.store.Size(io, name)
		if err != nil {
			return err
		}
		if err := protocol.EncodeInfo(r.Data(), uint64(size)); err != nil {
			return err
		}
		r.SetServiced(protocol.InfoLen)
	case xseg.OpAcquire:
		var err error
		if r.Flags()&xseg.FlagNoSync != 0 {
			err = b.store.Lock(io, name, b.owner, drivers.LockTry)
		} else {
			wait, cancel := context.WithTimeout(ctx, b.lockWait)
			err = b.store.Lock(wait, name, b.owner, drivers.LockWait)
			cancel()
		}
		if err != nil && len(r.Data()) >= protocol.NameLen {
			b.tellHolder(io, r, name)
		}
		return err
	case xseg.OpRelease:
		return b.store.Unlock(io, name, b.owner, r.Flags()&xseg.FlagForce != 0)
	case xseg.OpHash:
		if len(r.Data()) < protocol.NameLen {
			return protocol.EncodeName(r.Data(), "") // the error says why
		}
		hash, err := b.store.Hash(io, name)
		if err != nil {
			return err
		}
		if err := protocol.EncodeName(r.Data(), hash); err != nil {
			return err
		}
		r.SetServiced(protocol.NameLen)
	case xseg.OpList:
		// A listing changes nothing: a stopping peer may cut it short.
		return b.list(ctx, r, name)
	}
	return nil
}

// list answers LIST: the page of the sorted names of the objects whose
// names start with prefix that follows the name the request's payload
// gives, as much of it as the data buffer holds.
func (b *Blocker) list(ctx context.Context, r xseg.Request, prefix string) error {
	data := r.Data()
	after, err := protocol.DecodeName(data)
	if err != nil {
		return err
	}
	names, err := b.store.List(ctx, prefix)
	if err != nil {
		return err
	}
	first, found := slices.BinarySearch(names, after)
	if found {
		first++
	}
	names = names[first:]
	n := protocol.FitObjects(names, len(data))
	if n == 0 && len(names) > 0 {
		need := protocol.ListHeaderLen + protocol.ObjectEntryLen(names[0])
		r.SetServiced(uint64(need))
		return fmt.Errorf("%w: the next name takes %d bytes, the buffer has %d", syscall.ENOBUFS, need, len(data))
	}
	page := protocol.ObjectList{Names: names[:n], More: n < len(names)}
	if page.More {
		page.RestBytes = uint64(protocol.ObjectList{Names: names[n:]}.Len())
	}
	if err := protocol.EncodeObjectList(data, page); err != nil {
		return err
	}
	r.SetServiced(uint64(page.Len()))
	return nil
}

// LargeIO is the request size from which READ and WRITE hand off before
// they run: copying that much costs more than the hand-off, and large
// requests then use every core.
const LargeIO = 128 << 10

// waits reports whether a request takes long whatever the store: a flush,
// a durable write, a large read or write, a whole-object copy or hash, a
// listing, a blocking lock.
func waits(op xseg.Op, flags xseg.Flags, size uint64) bool {
	switch op {
	case xseg.OpFlush, xseg.OpCopy, xseg.OpHash, xseg.OpList:
		return true
	case xseg.OpRead:
		return size >= LargeIO
	case xseg.OpWrite:
		return size >= LargeIO || flags&(xseg.FlagFUA|xseg.FlagFlush) != 0
	case xseg.OpAcquire:
		return flags&xseg.FlagNoSync == 0
	}
	return false
}

// describe gives err the request's context and, in front, the errno the
// reply carries (unless err is that errno already).
func describe(op xseg.Op, name string, err error) error {
	errno := Errno(err)
	var bare syscall.Errno
	if errors.As(err, &bare) && bare == errno {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	return fmt.Errorf("%s %q: %w (%w)", op, name, errno, err)
}

// ioRange returns the data and offset of a READ or WRITE: size bytes of
// the data buffer, at an offset the store can address.
func ioRange(r xseg.Request) ([]byte, int64, error) {
	data, size, off := r.Data(), r.Size(), r.Offset()
	if size > uint64(len(data)) {
		return nil, 0, fmt.Errorf("%w: size %d over the request's %d data bytes", drivers.ErrInvalidRange, size, len(data))
	}
	if off > math.MaxInt64-size {
		return nil, 0, fmt.Errorf("%w: offset %d + size %d", drivers.ErrInvalidRange, off, size)
	}
	return data[:size], int64(off), nil
}

func writeFlags(f xseg.Flags) drivers.WriteFlags {
	var w drivers.WriteFlags
	if f&xseg.FlagFUA != 0 {
		w |= drivers.WriteFUA
	}
	if f&xseg.FlagFlush != 0 {
		w |= drivers.WriteFlush
	}
	return w
}
