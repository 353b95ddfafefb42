//go:build ceph

package rados

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/archipelago-go/archipelago/drivers"
)

// Copy replaces dst with the first size bytes of src, zeros past its end.
// The OSD copies the data itself (copy_from), so no object data crosses the
// network to this host, and dst changes atomically. A missing src gives
// ErrNotFound and leaves dst alone. Should the OSD refuse copy_from, Copy
// falls back to reading and writing through this host, 32 MiB at a time,
// which is not atomic.
func (s *Store) Copy(ctx context.Context, src, dst string, size int64) error {
	if err := drivers.ValidateName(src); err != nil {
		return err
	}
	if err := drivers.ValidateName(dst); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: size %d", drivers.ErrInvalidRange, size)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	if src == dst {
		// The OSD refuses copy_from onto itself; only the length can change.
		if _, err := s.ioctx.Stat(src); err != nil {
			return wrapErr("copy", src, err)
		}
		return wrapErr("copy", dst, s.ioctx.Truncate(dst, uint64(size)))
	}
	err = s.copyFrom(src, dst, size)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("rados copy %q: %w (%w)", src, drivers.ErrNotFound, err)
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		return s.copyThrough(src, dst, size)
	default:
		return fmt.Errorf("rados copy %q to %q: %w", src, dst, err)
	}
}

// copyThrough copies by reading src and writing dst from this host.
func (s *Store) copyThrough(src, dst string, size int64) error {
	if _, err := s.ioctx.Stat(src); err != nil {
		return wrapErr("copy", src, err)
	}
	if err := s.zeroObjectOp(dst, 0); err != nil {
		return fmt.Errorf("rados copy to %q: %w", dst, err)
	}
	buf := make([]byte, min(size, maxIOBytes))
	for off := int64(0); off < size; {
		chunk := buf[:min(size-off, int64(len(buf)))]
		if err := s.read(src, chunk, off); err != nil {
			return err
		}
		if err := s.write(dst, chunk, off); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	return wrapErr("copy", dst, s.ioctx.Truncate(dst, uint64(size)))
}
