package file

import (
	"context"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
)

// copyChunk is the buffer size when data moves through user space.
const copyChunk = 1 << 20

// Copy replaces object dst with the first size bytes of src, zeros past
// its end; drivers.ErrNotFound if src is missing. The copy is built in a
// temporary file and renamed over dst, so dst is never seen half copied
// (copying an object onto itself works), and it is durable when Copy
// returns: a mapper may point a map at it at once.
func (s *Store) Copy(ctx context.Context, src, dst string, size int64) error {
	if err := s.check(ctx, src, 0, 0); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	if err := checkName(dst, ""); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	if size < 0 {
		return fmt.Errorf("copy %q to %q: %w: size %d", src, dst, drivers.ErrInvalidRange, size)
	}
	if err := s.copy(src, dst, size); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	return nil
}

func (s *Store) copy(src, dst string, size int64) error {
	o, err := s.get(src, false)
	if err == unix.ENOENT {
		return drivers.ErrNotFound
	}
	if err != nil {
		return err
	}
	defer s.release(o)
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return err
	}
	path := objectPath(s.dir, dst)
	fd, tmp, err := s.createTemp(filepath.Dir(path), dst+copySuffix)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		unix.Close(fd)
		if !renamed {
			unix.Unlink(tmp)
		}
	}()
	if err := s.copyData(o, fd, min(size, st.Size)); err != nil {
		return err
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return err
	}
	if err := fdatasync(fd); err != nil {
		return err
	}
	if err := unix.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	if old := s.cache.invalidate(dst); old != nil {
		s.release(old)
	}
	return s.syncDirs(filepath.Dir(path))
}

// copyData copies the first n bytes of src to offset 0 of file dst:
// in the kernel with copy_file_range where it can, through user space
// where the file system or kernel cannot.
func (s *Store) copyData(src *object, dst int, n int64) error {
	var off, dstOff int64
	for off < n {
		c, err := copyFileRange(src.fd, &off, dst, &dstOff, int(min(n-off, 1<<30)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			switch err {
			case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EPERM:
				return s.copyBuffered(src, dst, off, n)
			}
			return err
		}
		if c == 0 {
			break // src shrank meanwhile; the rest reads as zeros
		}
	}
	return nil
}

// copyBuffered copies bytes [off, n) of src to the same place in dst.
func (s *Store) copyBuffered(src *object, dst int, off, n int64) error {
	buf := alignedBuffer(copyChunk)
	for off < n {
		b := buf[:min(n-off, copyChunk)]
		if err := s.readAt(src, b, off); err != nil {
			return err
		}
		if err := pwriteFull(dst, b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

// createTemp creates a new file in dir (made if missing), named from base
// and the store's owner, and returns its descriptor and path.
func (s *Store) createTemp(dir, base string) (int, string, error) {
	var err error
	for try := 0; try < 5; try++ {
		path := filepath.Join(dir, tempName(base, s.owner))
		var fd int
		fd, err = openFile(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o666)
		switch err {
		case nil:
			return fd, path, nil
		case unix.ENOENT:
			if err := s.mkdirs(dir); err != nil {
				return -1, "", err
			}
		case unix.EEXIST:
		default:
			return -1, "", fmt.Errorf("create temporary file in %q: %w", dir, err)
		}
	}
	return -1, "", fmt.Errorf("create temporary file in %q: %w", dir, err)
}
