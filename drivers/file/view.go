package file

import (
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A view is a shared mapping of the first viewBytes of an open object
// file. A read or write of pages that are hot (viewAfter accesses each)
// and in the part of the file known to exist copies from or to the page
// cache through it, with no system call. That saves a small request's
// kernel entry and exit, which on a host with few cores cost more than its
// 4 KiB copy, and a large one's copy a page at a time with a page cache
// lookup each: one memmove through the mapping copied 1 MiB about three
// times as fast as pread on tmpfs (docs/ARCHITECTURE.md). The first touch
// of a page through a mapping faults, which costs more than a system call
// (11 µs for a read and 17 µs for a write on this project's virtual
// machines, against 2 µs for a pread), so pages touched a few times only
// are better read and written with system calls; so are reads and writes
// past the known part (a write that grows the file). Writes through the
// view are as durable as pwrite's: the page cache is the same, and
// fdatasync writes back the pages a mapping dirtied.
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
)

// view is an object's mapping; its zero value is no mapping.
type view struct {
	data []byte
	// known is how many bytes from the start of the file are known to
	// exist (up to len(data)): the file's size when it was opened, raised
	// by every write and read that reaches further.
	known atomic.Int64
	// touches counts each page's accesses, up to viewAfter.
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
// part of the file, on pages already hot. It counts the access for pages
// not yet hot.
func (v *view) serves(off int64, n int) bool {
	if off < 0 || off+int64(n) > v.known.Load() || n == 0 {
		return false
	}
	hot := true
	for pg := off / pageBytes; pg <= (off+int64(n)-1)/pageBytes; pg++ {
		if t := &v.touches[pg]; t.Load() < viewAfter {
			if t.Add(1) == viewAfter && v.checkHoles && !isData(v.fd, pg*pageBytes) {
				t.Store(0)
			}
			hot = false
		}
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
