// Package ring owns the lock-free queue that XSEG keeps in shared memory: a
// bounded multi-producer multi-consumer ring of 32-bit values (request slot
// indices) with a sequence number per cell, after Dmitry Vyukov's design.
//
// No operation takes a lock, so a process that dies inside one never blocks
// the others forever: a cell a dead process claimed and left unfinished is
// finished by the next party that needs it, after RepairAfter. Publishing
// and releasing a cell are compare-and-swaps, so such a repair never races
// a live but slow party into losing a value. The ring lives in memory given by the caller (an mmap'd
// segment) and every process that maps it may push and pop concurrently.
//
// A cell packs its sequence number (high 32 bits) and value (low 32 bits)
// into one 64-bit word, so publishing a value is a single atomic store.
package ring

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	cacheLine  = 64
	headerSize = 2 * cacheLine // enqueue position, dequeue position: one line each
	magic      = 0x52494e47    // "RING", stored beside the capacity
)

// ErrLayout is returned when memory handed to Attach does not hold a ring of
// the expected capacity.
var ErrLayout = errors.New("ring layout mismatch")

// Size returns the bytes a ring of the given capacity occupies.
func Size(capacity int) int { return headerSize + 8*capacity }

// Ring is a view of a ring in shared memory. The memory belongs to the
// caller and must stay mapped while the Ring is used. Methods are safe for
// concurrent use by any number of goroutines and processes.
type Ring struct {
	head  *uint64 // next position to push (enqueue)
	tail  *uint64 // next position to pop (dequeue)
	cells unsafe.Pointer
	mask  uint64
}

// Init lays a new empty ring of capacity cells (a power of two, at least 2)
// into mem, which must be 8-byte aligned and at least Size(capacity) long.
// No other process may use mem while Init runs.
func Init(mem []byte, capacity int) (*Ring, error) {
	if capacity < 2 || bits.OnesCount(uint(capacity)) != 1 || capacity > 1<<30 {
		return nil, fmt.Errorf("ring capacity %d: must be a power of two between 2 and 2^30", capacity)
	}
	if len(mem) < Size(capacity) {
		return nil, fmt.Errorf("ring of %d cells needs %d bytes, have %d", capacity, Size(capacity), len(mem))
	}
	r := view(mem, capacity)
	atomic.StoreUint64(r.head, 0)
	atomic.StoreUint64(r.tail, 0)
	for i := uint64(0); i < uint64(capacity); i++ {
		atomic.StoreUint64(r.cell(i), i<<32)
	}
	atomic.StoreUint64(r.meta(), uint64(magic)<<32|uint64(capacity))
	return r, nil
}

// Attach returns a view of the ring Init laid into mem.
func Attach(mem []byte, capacity int) (*Ring, error) {
	if len(mem) < Size(capacity) {
		return nil, fmt.Errorf("%w: %d bytes for %d cells", ErrLayout, len(mem), capacity)
	}
	r := view(mem, capacity)
	if got := atomic.LoadUint64(r.meta()); got != uint64(magic)<<32|uint64(capacity) {
		return nil, fmt.Errorf("%w: header %#x, want capacity %d", ErrLayout, got, capacity)
	}
	return r, nil
}

func view(mem []byte, capacity int) *Ring {
	base := unsafe.Pointer(&mem[0])
	return &Ring{
		head:  (*uint64)(base),
		tail:  (*uint64)(unsafe.Add(base, cacheLine)),
		cells: unsafe.Add(base, headerSize),
		mask:  uint64(capacity - 1),
	}
}

// meta is the last word of the head line: written once, read at Attach.
func (r *Ring) meta() *uint64 { return (*uint64)(unsafe.Add(unsafe.Pointer(r.head), cacheLine-8)) }

func (r *Ring) cell(pos uint64) *uint64 {
	return (*uint64)(unsafe.Add(r.cells, (pos&r.mask)*8))
}

// Capacity returns the number of cells.
func (r *Ring) Capacity() int { return int(r.mask + 1) }

// RepairAfter is how long a push or pop waits on a cell that another
// party claimed but left unfinished before it finishes the work for it.
// Claiming and finishing are two instructions apart, so only a process
// killed between them (or stopped for this long) leaves a cell so.
var RepairAfter = 100 * time.Millisecond

// hole marks a cell whose producer never published: consumers skip it.
const hole = ^uint32(0)

// Push appends v and reports whether there was room. v must not be 2^32-1.
func (r *Ring) Push(v uint32) bool {
	var stuck time.Time
	pos := atomic.LoadUint64(r.head)
	for {
		c := r.cell(pos)
		word := atomic.LoadUint64(c)
		switch dif := int32(uint32(word>>32) - uint32(pos)); {
		case dif == 0:
			if atomic.CompareAndSwapUint64(r.head, pos, pos+1) {
				// A CAS, not a store: a consumer that waited too long for
				// this cell may have marked it a hole; then push again.
				if atomic.CompareAndSwapUint64(c, word, uint64(uint32(pos+1))<<32|uint64(v)) {
					return true
				}
			}
		case dif < 0:
			if tail := atomic.LoadUint64(r.tail); pos >= tail && pos-tail > r.mask {
				return false // full: the cell holds the value of one lap ago
			}
			// A consumer took the cell's value but has not released it.
			if stuck.IsZero() {
				stuck = time.Now()
			} else if time.Since(stuck) > RepairAfter {
				atomic.CompareAndSwapUint64(c, word, uint64(uint32(pos))<<32)
				stuck = time.Time{}
			}
			runtime.Gosched()
		}
		pos = atomic.LoadUint64(r.head)
	}
}

// Pop removes the oldest value and reports whether there was one.
func (r *Ring) Pop() (uint32, bool) {
	var stuck time.Time
	pos := atomic.LoadUint64(r.tail)
	for {
		c := r.cell(pos)
		word := atomic.LoadUint64(c)
		switch dif := int32(uint32(word>>32) - uint32(pos+1)); {
		case dif == 0:
			if atomic.CompareAndSwapUint64(r.tail, pos, pos+1) {
				// Release the cell for the producer one lap ahead. The
				// CAS fails only if that producer, after waiting too
				// long, released it for us.
				atomic.CompareAndSwapUint64(c, word, uint64(uint32(pos+r.mask+1))<<32)
				if v := uint32(word); v != hole {
					return v, true
				}
			}
		case dif < 0:
			if atomic.LoadUint64(r.head) <= pos {
				return 0, false // empty
			}
			// A producer claimed the cell but has not published it.
			if stuck.IsZero() {
				stuck = time.Now()
			} else if time.Since(stuck) > RepairAfter {
				atomic.CompareAndSwapUint64(c, word, uint64(uint32(pos+1))<<32|uint64(hole))
				stuck = time.Time{}
			}
			runtime.Gosched()
		}
		pos = atomic.LoadUint64(r.tail)
	}
}

// Len returns how many values the ring holds; it is exact only while no
// push or pop runs.
func (r *Ring) Len() int {
	head, tail := atomic.LoadUint64(r.head), atomic.LoadUint64(r.tail)
	if head <= tail {
		return 0
	}
	return int(head - tail)
}

// Empty reports whether no value is published or being published: the
// cheap check a waiter makes before it sleeps.
func (r *Ring) Empty() bool {
	pos := atomic.LoadUint64(r.tail)
	if uint32(atomic.LoadUint64(r.cell(pos))>>32) == uint32(pos+1) {
		return false // published: the common case reads no producer line
	}
	return atomic.LoadUint64(r.head) <= pos
}
