//go:build ceph

package rados

/*
#include "aio.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/archipelago-go/archipelago/drivers"
)

// The asynchronous path: StartRead and StartWrite hand the operation to
// librados (rados_aio_read, rados_aio_write) and return; librados' finisher
// thread calls archipelagoAioDone when the OSD answers, which runs the
// caller's callback right there. N requests in flight are N librados
// operations in flight, without a thread blocked on each, and a completion
// costs no switch to another thread before the callback runs.

var _ drivers.AsyncStore = (*Store)(nil)

// aioOp is one operation in flight. The C side knows it by its index in
// aioOps, since C may not keep Go pointers.
type aioOp struct {
	store *Store
	name  string
	p     []byte
	read  bool
	done  func(error)
	// pin keeps p where librados writes or reads it until the completion;
	// it does nothing for memory outside the Go heap (a shared segment).
	pin runtime.Pinner
}

// aioTable holds the operations in flight. Entries are reused, so an
// operation allocates nothing once the table has grown to the depth used.
type aioTable struct {
	mu   sync.Mutex
	ops  []*aioOp
	free []uint32
}

var aioOps aioTable

func (t *aioTable) get() (*aioOp, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return t.ops[i], i
	}
	op := &aioOp{}
	t.ops = append(t.ops, op)
	return op, uint32(len(t.ops) - 1)
}

func (t *aioTable) lookup(i uint32) *aioOp {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ops[i]
}

// put returns entry i, cleared, to the free list.
func (t *aioTable) put(op *aioOp, i uint32) {
	op.pin.Unpin()
	op.store, op.name, op.p, op.done = nil, "", nil, nil
	t.mu.Lock()
	t.free = append(t.free, i)
	t.mu.Unlock()
}

// StartRead starts a Read and returns at once; done gets its result from a
// librados thread (see drivers.AsyncStore). Reads of more than 32 MiB run
// Read's chunked path on a goroutine of their own.
func (s *Store) StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error {
	return s.start(ctx, name, p, off, true, done)
}

// StartWrite starts a Write and returns at once; done gets its result, the
// write durable (on every replica), from a librados thread. Writes of
// nothing run done at once; writes of more than 32 MiB run Write's chunked
// path on a goroutine of their own.
func (s *Store) StartWrite(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags, done func(error)) error {
	return s.start(ctx, name, p, off, false, done)
}

func (s *Store) start(ctx context.Context, name string, p []byte, off int64, read bool, done func(error)) error {
	if err := checkRange(name, off); err != nil {
		return err
	}
	if err := s.beginAsync(ctx); err != nil {
		return err
	}
	if len(p) == 0 || len(p) > maxIOBytes {
		go func() {
			defer s.async.Done()
			if read {
				done(s.read(name, p, off))
			} else {
				done(s.write(name, p, off))
			}
		}()
		return nil
	}
	op, i := aioOps.get()
	op.store, op.name, op.p, op.read, op.done = s, name, p, read, done
	op.pin.Pin(unsafe.SliceData(p))
	cName := (*C.char)(unsafe.Pointer(unsafe.StringData(name)))
	cBuf := (*C.char)(unsafe.Pointer(unsafe.SliceData(p)))
	var ret C.int
	if read {
		ret = C.archipelago_aio_read(s.cIOContext(), cName, C.size_t(len(name)), cBuf, C.size_t(len(p)), C.uint64_t(off), C.uintptr_t(i))
	} else {
		ret = C.archipelago_aio_write(s.cIOContext(), cName, C.size_t(len(name)), cBuf, C.size_t(len(p)), C.uint64_t(off), C.uintptr_t(i))
	}
	if ret < 0 {
		aioOps.put(op, i)
		s.async.Done()
		return retErr(opName(read), name, int(ret))
	}
	return nil
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

//export archipelagoAioDone
func archipelagoAioDone(tag C.uintptr_t, ret C.int) {
	i := uint32(tag)
	op := aioOps.lookup(i)
	s, done := op.store, op.done
	err := op.result(int(ret))
	aioOps.put(op, i)
	done(err)
	s.async.Done()
}

// result turns a completion's return value into Read's or Write's result:
// a read zero-fills past the bytes the OSD returned, and all of p for a
// missing object.
func (op *aioOp) result(ret int) error {
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
