package file

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A view is a shared mapping of the first viewBytes of an open object
// file. A read or write of pages that are hot (viewAfter accesses each,
// the last within viewCool seconds) and in the part of the file known to
// exist copies from or to the page cache through it, with no system call.
// That saves a small request's kernel entry and exit, which on a host with
// few cores cost more than its 4 KiB copy, and a large one's copy a page
// at a time with a page cache lookup each: one memmove through the mapping
// copied 1 MiB about three times as fast as pread on tmpfs
// (docs/ARCHITECTURE.md). The first touch of a page through a mapping
// faults, which costs more than a system call (11 µs for a read and 17 µs
// for a write on this project's virtual machines, against 2 µs for a
// pread), so pages touched a few times only are better read and written
// with system calls; so are reads and writes past the known part (a write
// that grows the file). Writes through the view are as durable as
// pwrite's: the page cache is the same, and fdatasync writes back the
// pages a mapping dirtied.
//
// Hazard: a file that shrinks under its mapping makes an access past its
// new end fault (SIGBUS), and so does a write into a page the file system
// cannot allocate (ENOSPC on ext4). No code of this project shrinks an
// object file in place (copies and hashes are written to a new file and
// renamed over it), so the first takes another program truncating the
// file while it is open here. Either way the access recovers from the
// fault, the view is no longer used, and pread or pwrite does the work
// (and reports ENOSPC). Views are made only on local file systems
// (mapsFiles): not on NFS, where another host can shrink a file.
//
// On tmpfs a read through a mapping of a hole allocates its page for good,
// where a pread returns zeros and allocates nothing; a thin object there
// would fill in wherever it is read often. So on tmpfs a page turns hot
// only if it holds data (SEEK_DATA); a hole starts counting again.
const (
	viewBytes = 4 << 20
	pageBytes = 4096
	// viewAfter is how many accesses by system call a page takes before
	// the view serves it: enough that its fault is paid back.
	viewAfter = 16
	// viewCool is how many seconds a page stays hot without an access.
	// The view serves only pages used lately, which the page cache still
	// holds: a copy through it then does not fault on a page the kernel
	// evicted and wait there for the disk, which a queue's poller must
	// never do (it reads hot pages through the view too).
	viewCool = 8
)

// viewClock returns the second that page states record; a variable for
// tests.
var viewClock = func() uint32 { return uint32(time.Now().Unix()) }

// A page's state packs its accesses, up to viewAfter, in the low 8 bits
// and the second of its last access, wrapping, in the rest.
const (
	pageCountBits = 8
	pageCountMask = 1<<pageCountBits - 1
	pageTimeMask  = 1<<(32-pageCountBits) - 1
)

// view is an object's mapping; its zero value is no mapping.
type view struct {
	data []byte
	// known is how many bytes from the start of the file are known to
	// exist (up to len(data)): the file's size when it was opened, raised
	// by every write and read that reaches further.
	known atomic.Int64
	// touches is each page's state: its accesses and when it was last
	// used (pageCountBits).
	touches []atomic.Uint32
	// fd is the mapped file's, when pages must be data to turn hot.
	fd         int
	checkHoles bool
}

// mapView maps the file fd of size bytes; on failure the view stays empty
// and reads use pread. With checkHoles, only pages that hold data turn
// hot.
func (v *view) mapView(fd int, size int64, checkHoles bool) {
	data, err := unix.Mmap(fd, 0, viewBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return
	}
	v.data, v.fd, v.checkHoles = data, fd, checkHoles
	v.touches = make([]atomic.Uint32, viewBytes/pageBytes)
	v.known.Store(min(size, viewBytes))
}

// serves reports whether the view may serve n bytes at off: in the known
// part of the file, on pages hot and used in the last viewCool seconds.
// It counts the access of every page, a page unused that long starting
// again from none. Two accesses at once may count as one.
func (v *view) serves(off int64, n int) bool {
	if off < 0 || off+int64(n) > v.known.Load() || n == 0 {
		return false
	}
	now := viewClock() & pageTimeMask
	hot := true
	for pg := off / pageBytes; pg <= (off+int64(n)-1)/pageBytes; pg++ {
		t := &v.touches[pg]
		st := t.Load()
		count, last := st&pageCountMask, st>>pageCountBits
		if (now-last)&pageTimeMask > viewCool {
			count = 0
		}
		if count >= viewAfter {
			if last != now {
				t.Store(now<<pageCountBits | count)
			}
			continue
		}
		hot = false
		if count++; count == viewAfter && v.checkHoles && !isData(v.fd, pg*pageBytes) {
			count = 0
		}
		t.Store(now<<pageCountBits | count)
	}
	return hot
}

// unmap releases the mapping; no read may use it any more.
func (v *view) unmap() {
	if v.data != nil {
		unix.Munmap(v.data)
		v.data = nil
	}
}

// read fills p from off when the view serves it, and reports whether it
// did.
func (v *view) read(p []byte, off int64) bool {
	return v.serves(off, len(p)) && v.copied(p, v.data[off:])
}

// write copies p to off when the view serves it, and reports whether it
// did; a fault may have left part of p written.
func (v *view) write(p []byte, off int64) bool {
	return v.serves(off, len(p)) && v.copied(v.data[off:], p)
}

// copied copies src to dst, one of them in the mapping; after a fault it
// reports false and the view serves nothing more until reads and writes
// by system call find the file's extent again.
func (v *view) copied(dst, src []byte) bool {
	if copyFaulting(dst, src) {
		return true
	}
	v.known.Store(0)
	return false
}

// grow notes that the file holds at least end bytes.
func (v *view) grow(end int64) {
	if v.data == nil {
		return
	}
	end = min(end, viewBytes)
	for {
		k := v.known.Load()
		if k >= end || v.known.CompareAndSwap(k, end) {
			return
		}
	}
}

// copyFaulting copies src to dst and reports false instead of crashing
// when that faults (a mapping past its file's end, or a page the file
// system could not allocate).
func copyFaulting(dst, src []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	copy(dst, src)
	return true
}
