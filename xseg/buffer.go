package xseg

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// bufferPool hands out data buffers from the segment's buffer space. A
// bitmap in the segment holds one bit per BufferUnit; a buffer of up to 64
// units lies within one bitmap word, a larger one takes whole words. Bits
// are claimed with compare-and-swap, so no process ever holds a lock; a
// process killed between claiming bits and recording them in its slot leaks
// that one buffer (a window of a few instructions).
type bufferPool struct {
	bitmap unsafe.Pointer
	words  uint64
	// hint is where this process's next search starts: the lowest word
	// it freed since, or the one it last took from. Reusing the buffers
	// freed last, from the bottom of buffer space up, keeps the memory a
	// process touches small and in the CPU's caches; handing out buffers
	// round the whole space made every request's data cold and every
	// process map all of it.
	hint atomic.Uint64
}

func (b *bufferPool) word(i uint64) *uint64 {
	return (*uint64)(unsafe.Add(b.bitmap, i*8))
}

// units returns how many units a buffer of n bytes takes.
func units(n uint64) uint64 {
	u := (n + BufferUnit - 1) / BufferUnit
	if u > bitmapWordUnits {
		u = (u + bitmapWordUnits - 1) / bitmapWordUnits * bitmapWordUnits
	}
	return max(u, 1)
}

// alloc claims a buffer of n bytes and returns its offset in buffer space
// and its capacity; ok is false when no free run is large enough now.
func (b *bufferPool) alloc(n uint64) (off, capacity uint64, ok bool) {
	u := units(n)
	start := b.hint.Load() % b.words
	if u <= bitmapWordUnits {
		for k := uint64(0); k < b.words; k++ {
			i := (start + k) % b.words
			w := b.word(i)
			for {
				v := atomic.LoadUint64(w)
				pos, found := freeRun(v, u)
				if !found {
					break
				}
				mask := runMask(u) << pos
				if atomic.CompareAndSwapUint64(w, v, v|mask) {
					b.hint.Store(i)
					return (i*bitmapWordUnits + pos) * BufferUnit, u * BufferUnit, true
				}
			}
		}
		return 0, 0, false
	}
	need := u / bitmapWordUnits
	if need > b.words {
		return 0, 0, false
	}
	for k := uint64(0); k < b.words; k++ {
		i := (start + k) % b.words
		if i+need > b.words {
			continue
		}
		claimed := uint64(0)
		for claimed < need && atomic.CompareAndSwapUint64(b.word(i+claimed), 0, ^uint64(0)) {
			claimed++
		}
		if claimed == need {
			b.hint.Store(i)
			return i * bitmapWordUnits * BufferUnit, u * BufferUnit, true
		}
		for j := uint64(0); j < claimed; j++ {
			atomic.StoreUint64(b.word(i+j), 0)
		}
	}
	return 0, 0, false
}

// release frees a buffer alloc returned.
func (b *bufferPool) release(off, capacity uint64) {
	first := off / BufferUnit
	u := capacity / BufferUnit
	defer b.lowerHint(first / bitmapWordUnits)
	if u > bitmapWordUnits {
		for j := uint64(0); j < u/bitmapWordUnits; j++ {
			atomic.StoreUint64(b.word(first/bitmapWordUnits+j), 0)
		}
		return
	}
	atomic.AndUint64(b.word(first/bitmapWordUnits), ^(runMask(u) << (first % bitmapWordUnits)))
}

// lowerHint makes the next search start at word i if that is lower.
func (b *bufferPool) lowerHint(i uint64) {
	for {
		h := b.hint.Load()
		if i >= h || b.hint.CompareAndSwap(h, i) {
			return
		}
	}
}

// free returns the number of free bytes (a snapshot).
func (b *bufferPool) free() uint64 {
	used := 0
	for i := uint64(0); i < b.words; i++ {
		used += bits.OnesCount64(atomic.LoadUint64(b.word(i)))
	}
	return (b.words*bitmapWordUnits - uint64(used)) * BufferUnit
}

func runMask(u uint64) uint64 {
	if u >= 64 {
		return ^uint64(0)
	}
	return 1<<u - 1
}

// freeRun finds u consecutive zero bits in v, lowest first.
func freeRun(v, u uint64) (pos uint64, ok bool) {
	y := ^v
	for s := uint64(1); s < u && y != 0; s++ {
		y &= ^v >> s
	}
	// The shifts bring in zeros from above bit 63, which read as used, so
	// no run passes the top of the word.
	if y == 0 {
		return 0, false
	}
	return uint64(bits.TrailingZeros64(y)), true
}
