package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
)

// Locks are files holding their owner's string, taken the NFS-safe way
// filed takes them: write the owner to a fresh temporary file, fsync it,
// and link(2) it to the lock name, which fails with EEXIST if the lock is
// held. The lock file is then read: our own owner means we hold it already.

// maxOwnerLen bounds a lock owner string, and so a lock file.
const maxOwnerLen = 1024

// Backoff between polls of a held lock under LockWait.
const (
	lockPollMin = time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// lockPath returns the lock file of name: in the data tree, fanned out by
// the name "<name>_lock", or flat in the lock directory.
func (s *Store) lockPath(name string) (string, error) {
	if err := checkName(name, lockSuffix); err != nil {
		return "", err
	}
	if s.lockDir != "" {
		return filepath.Join(s.lockDir, name+lockSuffix), nil
	}
	return objectPath(s.dir, name+lockSuffix), nil
}

// lockArgs validates the arguments of a lock call.
func (s *Store) lockArgs(ctx context.Context, name, owner string, needOwner bool) (string, error) {
	if s.closed.Load() {
		return "", fs.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if needOwner && (owner == "" || len(owner) > maxOwnerLen) {
		return "", fmt.Errorf("lock owner must be 1 to %d bytes, not %d", maxOwnerLen, len(owner))
	}
	return s.lockPath(name)
}

// Lock takes lock name for owner; taking it again as the same owner
// succeeds. LockTry fails with drivers.ErrLocked if another owner holds
// it; LockWait polls (backing off to 100 ms) until it is free or ctx ends.
// The lock is durable when Lock returns.
func (s *Store) Lock(ctx context.Context, name, owner string, mode drivers.LockMode) error {
	path, err := s.lockArgs(ctx, name, owner, true)
	if err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	if err := s.lock(ctx, path, owner, mode); err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	return nil
}

func (s *Store) lock(ctx context.Context, path, owner string, mode drivers.LockMode) error {
	dir := filepath.Dir(path)
	fd, tmp, err := s.createTemp(dir, filepath.Base(path))
	if err != nil {
		return err
	}
	defer unix.Unlink(tmp)
	defer unix.Close(fd)
	if err := pwriteFull(fd, []byte(owner), 0); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Fsync(fd) }); err != nil {
		return err
	}
	poll, vanished := lockPollMin, 0
	for {
		err := unix.Link(tmp, path)
		if err != nil && linked(fd) {
			err = nil // NFS: the link happened, its reply was lost
		}
		if err == nil {
			return s.syncDirs(dir)
		}
		if err != unix.EEXIST {
			return err
		}
		holder, err := readLock(path)
		if errors.Is(err, os.ErrNotExist) && vanished < 100 {
			vanished++
			continue // released meanwhile
		}
		if err != nil {
			return err
		}
		if holder == owner {
			return nil
		}
		if mode != drivers.LockWait {
			return fmt.Errorf("%w: held by %q", drivers.ErrLocked, holder)
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for %q: %w", holder, ctx.Err())
		case <-timer.C:
		}
		poll = min(2*poll, lockPollMax)
	}
}

// linked reports whether the temporary lock file fd has a second name,
// the lock's: how NFS clients confirm a link whose reply went missing.
func linked(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Nlink == 2
}

// readLock returns the owner written in lock file path.
func readLock(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxOwnerLen))
	return string(b), err
}

// Unlock releases lock name. Without force it fails with
// drivers.ErrNotOwner unless owner holds the lock; with force it breaks
// the lock whoever holds it. A free lock gives drivers.ErrNotFound.
//
// Hazard: reading the owner and unlinking are two steps. If another host
// force-breaks our lock and takes it between them, we remove its lock; the
// original filed has the same window.
func (s *Store) Unlock(ctx context.Context, name, owner string, force bool) error {
	path, err := s.lockArgs(ctx, name, owner, false)
	if err == nil {
		err = s.unlock(path, owner, force)
	}
	if err != nil {
		return fmt.Errorf("unlock %q: %w", name, err)
	}
	return nil
}

func (s *Store) unlock(path, owner string, force bool) error {
	holder, err := readLock(path)
	if errors.Is(err, os.ErrNotExist) {
		return drivers.ErrNotFound
	}
	if err != nil {
		return err
	}
	if !force && holder != owner {
		return fmt.Errorf("%w: held by %q", drivers.ErrNotOwner, holder)
	}
	switch err := unix.Unlink(path); err {
	case nil:
	case unix.ENOENT:
		return drivers.ErrNotFound
	default:
		return err
	}
	return s.syncDirs(filepath.Dir(path))
}

// LockOwner returns the owner of lock name, drivers.ErrNotFound if free.
func (s *Store) LockOwner(ctx context.Context, name string) (string, error) {
	path, err := s.lockArgs(ctx, name, "", false)
	if err != nil {
		return "", fmt.Errorf("lock owner %q: %w", name, err)
	}
	holder, err := readLock(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("lock owner %q: %w", name, drivers.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("lock owner %q: %w", name, err)
	}
	return holder, nil
}
