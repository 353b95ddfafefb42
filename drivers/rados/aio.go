//go:build ceph

package rados

/*
#include <stdlib.h>
#include "aio.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/archipelago-go/archipelago/drivers"
)

// The asynchronous path: a Queue's StartRead and StartWrite hand the
// operation to librados (rados_aio_read, rados_aio_write) and return. When
// the OSD answers, librados' finisher thread pushes the completion onto the
// queue's C stack and wakes the poller's futex word (aio.c); the poller's
// Poll then runs the done callbacks. N requests in flight are N librados
// operations in flight, without a thread blocked on each, and no Go code
// runs on a librados thread: a call from a foreign thread into Go costs an
// M and a P from the scheduler, and leaves that P parked in a system call
// state that the runtime's monitor must come and take back.

var _ drivers.AsyncStore = (*Store)(nil)

// aioOp is one operation in flight. C knows it by its index in its queue's
// ops, since C may not keep Go pointers.
type aioOp struct {
	name string
	p    []byte
	read bool
	done func(error)
	// sync marks an operation run by Read's or Write's code on a
	// goroutine, its result in err.
	sync bool
	err  error
	// pin keeps p where librados writes or reads it until the completion;
	// it does nothing for memory outside the Go heap (a shared segment).
	pin runtime.Pinner
}

// Queue is a drivers.Queue over librados aio.
type Queue struct {
	s  *Store
	cq *C.struct_archipelago_cq
	// ops are the operations by tag; entries are reused, so an operation
	// allocates nothing in Go once the table has grown to the depth used.
	ops      []*aioOp
	free     []uint32
	inflight int
	taken    [64]C.struct_archipelago_done
	// pin keeps the wake word where C writes it, should it be in the Go
	// heap (a test's); a word in a shared segment needs nothing.
	pin runtime.Pinner
}

// NewQueue returns a queue whose completions wake wake (see
// drivers.AsyncStore).
func (s *Store) NewQueue(wake *atomic.Uint32) (drivers.Queue, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	cq := (*C.struct_archipelago_cq)(C.calloc(1, C.sizeof_struct_archipelago_cq))
	if cq == nil {
		return nil, syscall.ENOMEM
	}
	q := &Queue{s: s, cq: cq}
	if wake != nil {
		q.pin.Pin(wake)
		cq.wake = (*C.uint32_t)(unsafe.Pointer(wake))
	}
	return q, nil
}

// StartRead starts a Read and returns at once; done gets its result from a
// later Poll (see drivers.Queue). Reads of more than 32 MiB run Read's
// chunked path on a goroutine of their own.
func (q *Queue) StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error {
	return q.start(ctx, name, p, off, true, done)
}

// StartWrite starts a Write and returns at once; done gets its result, the
// write durable (on every replica), from a later Poll. Writes of nothing
// and writes of more than 32 MiB run Write's path on a goroutine of their
// own.
func (q *Queue) StartWrite(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags, done func(error)) error {
	return q.start(ctx, name, p, off, false, done)
}

func (q *Queue) start(ctx context.Context, name string, p []byte, off int64, read bool, done func(error)) error {
	if err := checkRange(name, off); err != nil {
		return err
	}
	s := q.s
	if err := s.beginAsync(ctx); err != nil {
		return err
	}
	op, i := q.get()
	op.name, op.p, op.read, op.done = name, p, read, done
	var ret C.int
	if op.sync = len(p) == 0 || len(p) > maxIOBytes; op.sync {
		ret = q.startSync(op, i, off)
	} else {
		op.pin.Pin(unsafe.SliceData(p))
		cName := (*C.char)(unsafe.Pointer(unsafe.StringData(name)))
		cBuf := (*C.char)(unsafe.Pointer(unsafe.SliceData(p)))
		if read {
			ret = C.archipelago_aio_read(s.cIOContext(), q.cq, cName, C.size_t(len(name)), cBuf, C.size_t(len(p)), C.uint64_t(off), C.uintptr_t(i))
		} else {
			ret = C.archipelago_aio_write(s.cIOContext(), q.cq, cName, C.size_t(len(name)), cBuf, C.size_t(len(p)), C.uint64_t(off), C.uintptr_t(i))
		}
	}
	if ret < 0 {
		q.put(i)
		s.async.Done()
		return retErr(opName(read), name, int(ret))
	}
	q.inflight++
	return nil
}

// startSync runs op, entry i, with Read's or Write's code on a goroutine
// of its own, which pushes its completion when done; -ENOMEM when the
// completion cannot be made.
func (q *Queue) startSync(op *aioOp, i uint32, off int64) C.int {
	node := C.archipelago_cq_node(q.cq, C.uintptr_t(i))
	if node == nil {
		return -C.int(syscall.ENOMEM)
	}
	s, name, p := q.s, op.name, op.p
	go func() {
		if op.read {
			op.err = s.read(name, p, off)
		} else {
			op.err = s.write(name, p, off)
		}
		C.archipelago_cq_push(node, 0)
	}()
	return 0
}

func (q *Queue) get() (*aioOp, uint32) {
	if n := len(q.free); n > 0 {
		i := q.free[n-1]
		q.free = q.free[:n-1]
		return q.ops[i], i
	}
	op := &aioOp{}
	q.ops = append(q.ops, op)
	return op, uint32(len(q.ops) - 1)
}

// put returns entry i, cleared, to the free list.
func (q *Queue) put(i uint32) {
	op := q.ops[i]
	op.pin.Unpin()
	op.name, op.p, op.done, op.err = "", nil, nil, nil
	q.free = append(q.free, i)
}

// Ready reports whether a completion waits for Poll: one atomic load of
// each end of the C queue, no call into C.
func (q *Queue) Ready() bool {
	return atomic.LoadUintptr((*uintptr)(unsafe.Pointer(&q.cq.head))) != 0 ||
		atomic.LoadUintptr((*uintptr)(unsafe.Pointer(&q.cq.taken))) != 0
}

// Poll runs done of every operation completed so far.
func (q *Queue) Poll() int {
	ran := 0
	for q.Ready() {
		n := int(C.archipelago_cq_take(q.cq, &q.taken[0], C.int(len(q.taken))))
		for _, c := range q.taken[:n] {
			i := uint32(c.tag)
			op := q.ops[i]
			done, err := op.done, op.result(int(c.ret))
			q.put(i)
			q.inflight--
			done(err)
			q.s.async.Done()
		}
		ran += n
	}
	return ran
}

// Close waits for the operations in flight, running their done, and frees
// the queue once no librados thread touches it or the wake word any more.
func (q *Queue) Close() {
	for q.Poll(); q.inflight > 0; q.Poll() {
		time.Sleep(100 * time.Microsecond)
	}
	for atomic.LoadUint32((*uint32)(unsafe.Pointer(&q.cq.pushing))) != 0 {
		time.Sleep(10 * time.Microsecond)
	}
	C.free(unsafe.Pointer(q.cq))
	q.cq = nil
	q.pin.Unpin()
}

// beginAsync registers an operation that outlives the call, so Close waits
// for its completion before it destroys the I/O context.
func (s *Store) beginAsync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.async.Add(1)
	return nil
}

func opName(read bool) string {
	if read {
		return "read"
	}
	return "write"
}

// result turns a completion's return value into Read's or Write's result:
// a read zero-fills past the bytes the OSD returned, and all of p for a
// missing object.
func (op *aioOp) result(ret int) error {
	if op.sync {
		return op.err
	}
	if op.read {
		switch {
		case ret >= 0:
			clear(op.p[min(ret, len(op.p)):])
			return nil
		case ret == -int(syscall.ENOENT):
			clear(op.p)
			return nil
		}
	}
	if ret < 0 {
		return retErr(opName(op.read), op.name, ret)
	}
	return nil
}
