//go:build unix && !linux

package file

import "golang.org/x/sys/unix"

// oDirect is zero: direct I/O is only supported on Linux.
const oDirect = 0

func fdatasync(fd int) error { return ignoringEINTR(func() error { return unix.Fsync(fd) }) }

func copyFileRange(int, *int64, int, *int64, int) (int, error) { return 0, unix.ENOSYS }

func mapsFiles(string) (maps, holesFill bool) { return false, false }

func isData(int, int64) bool { return false }

func nowaitIO(int, []byte) (reads, writes bool) { return false, false }
