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

// mapsFiles reports whether dir is on a local file system whose files the
// store maps to read through (see view): tmpfs, ext2/3/4, XFS, btrfs; and
// whether a read through a mapping allocates a hole's page for good
// (tmpfs, where a pread of a hole allocates nothing).
func mapsFiles(dir string) (maps, holesFill bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false, false
	}
	switch uint32(st.Type) {
	case unix.TMPFS_MAGIC:
		return true, true
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
		return true, false
	}
	return false, false
}

// isData reports whether the page at off holds data, not a hole.
func isData(fd int, off int64) bool {
	at, err := unix.Seek(fd, off, unix.SEEK_DATA)
	return err == nil && at == off
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
