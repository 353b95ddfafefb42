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
