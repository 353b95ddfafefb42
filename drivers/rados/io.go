//go:build ceph

package rados

import (
	"context"
	"fmt"
	"syscall"

	"github.com/archipelago-go/archipelago/drivers"
)

// checkRange validates a name and an offset.
func checkRange(name string, off int64) error {
	if err := drivers.ValidateName(name); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("%w: offset %d", drivers.ErrInvalidRange, off)
	}
	return nil
}

// Read fills p from the object at off; bytes past the end of the object,
// and all of a missing object, read as zeros. One librados read per 32 MiB.
func (s *Store) Read(ctx context.Context, name string, p []byte, off int64) error {
	if err := checkRange(name, off); err != nil {
		return err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return s.read(name, p, off)
}

// read is Read without the checks; it zero-fills past the end and for a
// missing object, like radosd's X_READ.
func (s *Store) read(name string, p []byte, off int64) error {
	done := 0
	for done < len(p) {
		chunk := min(len(p)-done, maxIOBytes)
		n, err := s.ioctx.Read(name, p[done:done+chunk], uint64(off)+uint64(done))
		if isErrno(err, syscall.ENOENT) {
			break
		}
		if err != nil {
			return wrapErr("read", name, err)
		}
		done += n
		if n < chunk { // end of object
			break
		}
	}
	clear(p[done:])
	return nil
}

// Write stores p at off, creating the object if needed. RADOS acknowledges
// a write once it is on every replica, so the write is durable when Write
// returns whatever the flags; WriteFUA and WriteFlush cost nothing extra,
// and a write of nothing (a flush request) does nothing, as in radosd.
// A write of more than 32 MiB is split and is not atomic.
func (s *Store) Write(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags) error {
	if err := checkRange(name, off); err != nil {
		return err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return s.write(name, p, off)
}

func (s *Store) write(name string, p []byte, off int64) error {
	for done := 0; done < len(p); {
		chunk := min(len(p)-done, maxIOBytes)
		if err := s.ioctx.Write(name, p[done:done+chunk], uint64(off)+uint64(done)); err != nil {
			return wrapErr("write", name, err)
		}
		done += chunk
	}
	return nil
}

// Flush does nothing: every acknowledged RADOS write is already durable.
func (s *Store) Flush(ctx context.Context) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	end()
	return nil
}

// Delete removes the object; ErrNotFound if it does not exist. A lock of the
// same name and a cached hash ("<name>_hash") are separate objects and stay.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := drivers.ValidateName(name); err != nil {
		return err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return wrapErr("delete", name, s.ioctx.Delete(name))
}

// Size returns the object's size in bytes; ErrNotFound if it is missing.
func (s *Store) Size(ctx context.Context, name string) (int64, error) {
	if err := drivers.ValidateName(name); err != nil {
		return 0, err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	stat, err := s.ioctx.Stat(name)
	if err != nil {
		return 0, wrapErr("stat", name, err)
	}
	return int64(stat.Size), nil
}
