package file

import (
	"io"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment of offsets, sizes and buffers for O_DIRECT.
// 4096 satisfies every common logical block size.
const directAlign = 4096

// ignoringEINTR retries fn while it fails with EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// openFile is open(2) retried on EINTR.
func openFile(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// preadFull reads p at off until p is full or the file ends and returns how
// many bytes it read. With direct set a short read that is not
// block-aligned is taken as the end of file, since a further O_DIRECT read
// at an unaligned offset would fail.
func preadFull(fd int, p []byte, off int64, direct bool) (int, error) {
	n := 0
	for n < len(p) {
		c, err := unix.Pread(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if c == 0 {
			break
		}
		n += c
		if direct && c%directAlign != 0 {
			break
		}
	}
	return n, nil
}

// pwriteFull writes all of p at off.
func pwriteFull(fd int, p []byte, off int64) error {
	for n := 0; n < len(p); {
		c, err := unix.Pwrite(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if c == 0 {
			return io.ErrShortWrite
		}
		n += c
	}
	return nil
}

// alignedBuffer returns n bytes starting at a directAlign boundary. The Go
// heap does not move objects, so the alignment holds for the buffer's life.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

// isAligned reports whether p at off can go straight to an O_DIRECT file.
func isAligned(p []byte, off int64) bool {
	return off%directAlign == 0 && len(p)%directAlign == 0 &&
		(len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%directAlign == 0)
}

// fsyncDir makes the entries of directory dir durable.
func fsyncDir(dir string) error {
	fd, err := openFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	unix.Close(fd)
	if err == unix.EINVAL {
		// Some file systems cannot fsync a directory; their entries are
		// as durable as they will get.
		err = nil
	}
	return err
}

// mtime returns the modification time of st in nanoseconds.
func mtime(st *unix.Stat_t) int64 { return st.Mtim.Nano() }
