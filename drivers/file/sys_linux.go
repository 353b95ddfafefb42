package file

import "golang.org/x/sys/unix"

// oDirect is the open flag for direct I/O.
const oDirect = unix.O_DIRECT

// fdatasync flushes fd's data and the metadata needed to read it back.
func fdatasync(fd int) error { return ignoringEINTR(func() error { return unix.Fdatasync(fd) }) }

// copyFileRange copies in the kernel; the offsets advance by the count.
func copyFileRange(src int, srcOff *int64, dst int, dstOff *int64, n int) (int, error) {
	return unix.CopyFileRange(src, srcOff, dst, dstOff, n, 0)
}

// nowaitIO reports whether fd's file system serves reads, and writes,
// without blocking when it can (RWF_NOWAIT; tmpfs does neither, ext4
// buffered reads only). fd holds at least p, which it overwrites.
func nowaitIO(fd int, p []byte) (reads, writes bool) {
	_, err := unix.Preadv2(fd, [][]byte{p}, 0, unix.RWF_NOWAIT)
	reads = err != unix.EOPNOTSUPP
	_, err = unix.Pwritev2(fd, [][]byte{p}, 0, unix.RWF_NOWAIT)
	writes = err != unix.EOPNOTSUPP
	return reads, writes
}
