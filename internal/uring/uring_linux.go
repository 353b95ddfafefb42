package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's ABI (include/uapi/linux/io_uring.h).
const (
	opRead      = 22
	opWrite     = 23
	opFutexWait = 51

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1
	featExtArg     = 1 << 8

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	offSQRing = 0
	offSQEs   = 0x10000000

	futex2SizeU32       = 0x02 // shared (not private): the word may be in a shared mapping
	futexBitsetMatchAny = 0xffffffff

	eagain = int32(unix.EAGAIN)
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is a submission queue entry, 64 bytes.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	_           uint64
}

// cqe is a completion queue entry, 16 bytes.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// getEventsArg is struct io_uring_getevents_arg, for a wait's timeout.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	_         uint32
	ts        uint64
}

// Ring is an io_uring instance with its submission and completion rings
// mapped. Prepare operations (Read, Write, FutexWait), Submit them, Reap
// their completions.
type Ring struct {
	fd    int
	rings []byte // the SQ and CQ rings, one mapping
	sqes  []byte

	sqTail  *atomic.Uint32 // written by us
	sqHead  *atomic.Uint32 // written by the kernel
	sqMask  uint32
	sqCount uint32
	tail    uint32 // next SQE to prepare; published to sqTail by Submit
	pending uint32 // prepared, not yet taken by the kernel

	cqHead *atomic.Uint32 // written by us
	cqTail *atomic.Uint32 // written by the kernel
	cqMask uint32
	cqes   unsafe.Pointer
}

// New sets up a ring with room for entries operations prepared at once
// (rounded up to a power of two by the kernel) and twice as many
// completions, and checks that the kernel has what this package needs.
func New(entries uint32) (*Ring, error) {
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	switch errno {
	case 0:
	case unix.ENOSYS, unix.EPERM:
		return nil, fmt.Errorf("%w: io_uring_setup: %w", ErrNotSupported, errno)
	default:
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	if err := probeFutexWait(r); err != nil {
		r.Close()
		if errors.Is(err, ErrNotSupported) {
			return nil, fmt.Errorf("%w: no futex wait operation (Linux 6.7)", ErrNotSupported)
		}
		return nil, fmt.Errorf("probe io_uring: %w", err)
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	const need = featSingleMmap | featNoDrop | featExtArg
	if p.features&need != need {
		return fmt.Errorf("%w: features %#x lack %#x", ErrNotSupported, p.features, need&^p.features)
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	var err error
	r.rings, err = unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map io_uring rings: %w", err)
	}
	r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map io_uring submission entries: %w", err)
	}
	at := func(off uint32) unsafe.Pointer { return unsafe.Pointer(&r.rings[off]) }
	r.sqHead = (*atomic.Uint32)(at(p.sqOff.head))
	r.sqTail = (*atomic.Uint32)(at(p.sqOff.tail))
	r.sqMask = *(*uint32)(at(p.sqOff.ringMask))
	r.sqCount = p.sqEntries
	r.tail = r.sqTail.Load()
	// Entry i of the submission ring is always SQE i.
	array := unsafe.Slice((*uint32)(at(p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.cqHead = (*atomic.Uint32)(at(p.cqOff.head))
	r.cqTail = (*atomic.Uint32)(at(p.cqOff.tail))
	r.cqMask = *(*uint32)(at(p.cqOff.ringMask))
	r.cqes = at(p.cqOff.cqes)
	return nil
}

// Close tears the ring down; the kernel cancels what is still in flight.
func (r *Ring) Close() error {
	if r.sqes != nil {
		unix.Munmap(r.sqes)
	}
	if r.rings != nil {
		unix.Munmap(r.rings)
	}
	return unix.Close(r.fd)
}

// next returns the next free SQE, zeroed, or nil when every entry is
// prepared and not yet taken by the kernel.
func (r *Ring) next() *sqe {
	if r.tail-r.sqHead.Load() >= r.sqCount {
		return nil
	}
	e := (*sqe)(unsafe.Pointer(&r.sqes[uintptr(r.tail&r.sqMask)*unsafe.Sizeof(sqe{})]))
	*e = sqe{}
	r.tail++
	r.pending++
	return e
}

// Read prepares a read of len(p) bytes of fd at off into p; false when
// the submission ring is full (Submit, then try again).
func (r *Ring) Read(fd int, p []byte, off int64, tag uint64) bool {
	return r.rw(opRead, fd, p, off, tag)
}

// Write prepares a write of p to fd at off; false when the submission
// ring is full.
func (r *Ring) Write(fd int, p []byte, off int64, tag uint64) bool {
	return r.rw(opWrite, fd, p, off, tag)
}

func (r *Ring) rw(op uint8, fd int, p []byte, off int64, tag uint64) bool {
	e := r.next()
	if e == nil {
		return false
	}
	e.opcode, e.fd, e.off, e.len, e.userData = op, int32(fd), uint64(off), uint32(len(p)), tag
	if len(p) > 0 {
		e.addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	}
	return true
}

// FutexWait prepares a wait on word, a shared futex, that completes with
// 0 once the word is woken, or at once with -EAGAIN if it does not hold
// val when the kernel takes the operation; false when the submission ring
// is full.
func (r *Ring) FutexWait(word *atomic.Uint32, val uint32, tag uint64) bool {
	e := r.next()
	if e == nil {
		return false
	}
	e.opcode, e.fd, e.userData = opFutexWait, futex2SizeU32, tag
	e.addr = uint64(uintptr(unsafe.Pointer(word)))
	e.off, e.addr3 = uint64(val), futexBitsetMatchAny
	return true
}

// Prepared returns how many operations are prepared and not yet submitted.
func (r *Ring) Prepared() int { return int(r.pending) }

// Submit hands the prepared operations to the kernel without waiting;
// those it can finish at once (a read from the page cache) have their
// completions ready when it returns.
func (r *Ring) Submit() error { return r.enter(0, 0) }

// SubmitAndWait submits what is prepared and waits until a completion is
// ready, timeout passes (0: no limit) or a signal arrives.
func (r *Ring) SubmitAndWait(timeout time.Duration) error {
	return r.enter(1, timeout)
}

func (r *Ring) enter(wait uint32, timeout time.Duration) error {
	r.sqTail.Store(r.tail)
	var flags uintptr
	var arg getEventsArg
	var ts unix.Timespec
	if wait > 0 {
		flags = enterGetEvents | enterExtArg
		if timeout > 0 {
			ts = unix.NsecToTimespec(int64(timeout))
			arg.ts = uint64(uintptr(unsafe.Pointer(&ts)))
		}
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.pending), uintptr(wait),
			flags, uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
		if errno == 0 {
			r.pending -= uint32(n)
		}
		switch errno {
		case 0, unix.ETIME:
			return nil
		case unix.EINTR:
			if wait > 0 {
				return nil // the caller looks again
			}
		case unix.EAGAIN, unix.EBUSY:
			// Completions the kernel could not post yet: reap first.
			return nil
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// Ready reports whether a completion waits to be reaped.
func (r *Ring) Ready() bool { return r.cqHead.Load() != r.cqTail.Load() }

// Reap appends the completions ready to c and returns it.
func (r *Ring) Reap(c []Completion) []Completion {
	head, tail := r.cqHead.Load(), r.cqTail.Load()
	for ; head != tail; head++ {
		e := (*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*unsafe.Sizeof(cqe{})))
		c = append(c, Completion{Tag: e.userData, Result: e.res})
	}
	r.cqHead.Store(head)
	return c
}
