package xseg

import (
	"errors"
	"fmt"
	"syscall"
)

// Request is a handle on a request slot in the segment. It is a small
// value: copying it copies the handle, not the request. Its accessors are
// meant for the port that holds the request; the fields they touch are
// shared memory.
type Request struct {
	seg *Segment
	idx uint32
	sl  *slot
}

// Index returns the slot number, stable for the request's life.
func (r Request) Index() uint32 { return r.idx }

// Valid reports whether r refers to a slot.
func (r Request) Valid() bool { return r.sl != nil }

// Prepare sets the operation and target and makes the data buffer hold
// dataLen bytes, reusing the current buffer when it is large enough. The
// buffer's content is not cleared.
func (r Request) Prepare(op Op, target string, dataLen uint64) error {
	if len(target) > MaxTargetLen {
		return fmt.Errorf("prepare %s: %w: %d bytes, the limit is %d", op, ErrTargetTooLong, len(target), MaxTargetLen)
	}
	s, sl := r.seg, r.sl
	if dataLen > s.hdr.Geometry.BufferBytes {
		return fmt.Errorf("prepare %s of %d bytes: %w (%d bytes)", op, dataLen, ErrTooLarge, s.hdr.Geometry.BufferBytes)
	}
	if sl.parent != 0 {
		return fmt.Errorf("prepare %s: request %d borrows a parent's buffer; put it back first", op, r.idx)
	}
	if dataLen > sl.bufLen {
		if sl.bufLen > 0 {
			s.pool.release(sl.bufOff, sl.bufLen)
			sl.bufLen = 0
		}
		if dataLen > 0 {
			off, capacity, ok := s.pool.alloc(dataLen)
			if !ok {
				return fmt.Errorf("prepare %s of %d bytes: %w", op, dataLen, ErrNoBufferSpace)
			}
			sl.bufOff, sl.bufLen = off, capacity
		}
	}
	sl.op, sl.dlen = uint32(op), dataLen
	sl.tlen = uint32(copy(sl.target[:], target))
	return nil
}

// PrepareChild prepares r as a sub-request whose data is the window
// [off, off+n) of parent's buffer: no buffer of its own and no copy (a
// volume request split into object requests). r and parent must be held or
// served by ports of the same process. Until r is put back, parent does not fail back
// even if its server dies, so no child's server ever writes into a buffer
// that was handed to someone else.
func (r Request) PrepareChild(op Op, target string, parent Request, off, n uint64) error {
	if len(target) > MaxTargetLen {
		return fmt.Errorf("prepare %s: %w: %d bytes, the limit is %d", op, ErrTargetTooLong, len(target), MaxTargetLen)
	}
	ps := parent.sl
	if off > ps.dlen || n > ps.dlen-off {
		return fmt.Errorf("prepare %s: window [%d, %d) outside the parent's %d data bytes", op, off, off+n, ps.dlen)
	}
	if r.sl.parent != 0 || r.sl.children.Load() != 0 {
		return fmt.Errorf("prepare %s: request %d already takes part in a parent/child pair", op, r.idx)
	}
	sl := r.sl
	if sl.bufLen > 0 {
		r.seg.pool.release(sl.bufOff, sl.bufLen)
		sl.bufLen = 0
	}
	ps.children.Add(1)
	sl.parent = parent.idx + 1
	sl.bufOff, sl.dlen = ps.bufOff+off, n
	sl.op = uint32(op)
	sl.tlen = uint32(copy(sl.target[:], target))
	return nil
}

func (r Request) checkNoChildren() error {
	if n := r.sl.children.Load(); n != 0 {
		return fmt.Errorf("request %d: %w: %d sub-requests still use its buffer; put them back first", r.idx, ErrNotHeld, n)
	}
	return nil
}

// Op returns the operation.
func (r Request) Op() Op { return Op(r.sl.op) }

// Target returns the target name, a view into shared memory.
func (r Request) Target() []byte { return r.sl.target[:r.sl.tlen] }

// TargetString returns a copy of the target name.
func (r Request) TargetString() string { return string(r.Target()) }

// Data returns the data buffer (the length given to Prepare), a view into
// shared memory valid while the port holds the request.
func (r Request) Data() []byte {
	sl := r.sl
	if sl.dlen == 0 {
		return nil
	}
	start := r.seg.hdr.Layout.buffers + sl.bufOff
	return r.seg.mem[start : start+sl.dlen : start+sl.dlen]
}

// Offset and size of the I/O, set by the submitter.
func (r Request) Offset() uint64     { return r.sl.offset }
func (r Request) Size() uint64       { return r.sl.size }
func (r Request) SetOffset(v uint64) { r.sl.offset = v }
func (r Request) SetSize(v uint64)   { r.sl.size = v }

// Flags returns the request flags.
func (r Request) Flags() Flags { return Flags(r.sl.flags) }

// SetFlags sets the request flags.
func (r Request) SetFlags(f Flags) { r.sl.flags = uint32(f) }

// Serviced is how many bytes the server did, set before Respond.
func (r Request) Serviced() uint64     { return r.sl.served }
func (r Request) SetServiced(n uint64) { r.sl.served = n }

// Priv is a word for the submitter's own use; servers leave it alone.
func (r Request) Priv() uint64     { return r.sl.priv }
func (r Request) SetPriv(v uint64) { r.sl.priv = v }

// Source returns the port that got the request.
func (r Request) Source() int { return int(r.sl.src) }

// Err returns the outcome of a received reply: nil if served, ErrPeerDied
// if a peer on its path died, or the server's syscall.Errno.
func (r Request) Err() error {
	switch r.sl.status {
	case statusServed:
		return nil
	case statusFailed:
		if r.sl.code == codePeerDied {
			return ErrPeerDied
		}
		return syscall.Errno(r.sl.code)
	}
	return errors.New("request has no reply yet")
}

// errorCode turns a server's error into the code a reply carries.
func errorCode(err error) uint32 {
	if errors.Is(err, ErrPeerDied) {
		return codePeerDied
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 && errno < codePeerDied {
		return uint32(errno)
	}
	return uint32(syscall.EIO)
}
