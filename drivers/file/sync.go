package file

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Durability. Writes land in the page cache; an object remembers how many
// writes it took (written) and how many the last fdatasync covered
// (synced). A newly created file also needs its directory entry synced
// (dirPending), and a newly created directory its parent's: those parents
// wait in Store.pendingDirs until a FUA write below them or a Flush.

// syncObject makes every write to o so far durable, with its directory
// entry if the file is new.
//
// Hazard: after a failed fdatasync Linux may drop the dirty pages and mark
// them clean, so a retry could succeed without the data on disk. The first
// failure therefore sticks to the object and every later sync reports it.
func (s *Store) syncObject(o *object) error {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	if o.syncErr != nil {
		return o.syncErr
	}
	if w := o.written.Load(); w != o.synced.Load() {
		if err := fdatasync(o.fd); err != nil {
			o.syncErr = fmt.Errorf("sync %q: %w", o.name, err)
			return o.syncErr
		}
		o.synced.Store(w)
	}
	if o.dirPending.Load() {
		if err := s.syncDirs(o.leaf); err != nil {
			return fmt.Errorf("sync %q: %w", o.name, err)
		}
		o.dirPending.Store(false)
	}
	return nil
}

// syncDirs makes the entries of leaf durable, and those of its parents
// that wait in pendingDirs.
func (s *Store) syncDirs(leaf string) error {
	if err := fsyncDir(leaf); err != nil {
		return fmt.Errorf("sync directory %q: %w", leaf, err)
	}
	for d := filepath.Dir(leaf); s.inDataDir(d); d = filepath.Dir(d) {
		if err := s.syncPendingDir(d); err != nil {
			return err
		}
		if d == s.dir {
			break
		}
	}
	return nil
}

// syncPendingDir fsyncs d if it waits in pendingDirs. The entry is dropped
// only after the fsync succeeds, and only if no newer subdirectory was
// added meanwhile, so no caller returns before d is durable.
func (s *Store) syncPendingDir(d string) error {
	s.dirsMu.Lock()
	gen, ok := s.pendingDirs[d]
	s.dirsMu.Unlock()
	if !ok {
		return nil
	}
	if err := fsyncDir(d); err != nil {
		return fmt.Errorf("sync directory %q: %w", d, err)
	}
	s.dirsMu.Lock()
	if s.pendingDirs[d] == gen {
		delete(s.pendingDirs, d)
	}
	s.dirsMu.Unlock()
	return nil
}

// syncAllPendingDirs fsyncs every directory in pendingDirs.
func (s *Store) syncAllPendingDirs() error {
	s.dirsMu.Lock()
	dirs := make([]string, 0, len(s.pendingDirs))
	for d := range s.pendingDirs {
		dirs = append(dirs, d)
	}
	s.dirsMu.Unlock()
	for _, d := range dirs {
		if err := s.syncPendingDir(d); err != nil {
			return err
		}
	}
	return nil
}

// mkdirs creates directory d and its missing parents below the data
// directory, which itself must exist. A parent is marked pending before a
// child is made in it, so nobody can use the child while its entry is
// neither durable nor queued to be.
func (s *Store) mkdirs(d string) error {
	parent := filepath.Dir(d)
	if !s.inDataDir(parent) {
		return fmt.Errorf("create directory %q: %w", d, unix.ENOENT)
	}
	s.dirsMu.Lock()
	s.pendingGen++
	s.pendingDirs[parent] = s.pendingGen
	s.dirsMu.Unlock()
	err := unix.Mkdir(d, 0o777)
	if err == unix.ENOENT && parent != s.dir {
		if err = s.mkdirs(parent); err == nil {
			err = unix.Mkdir(d, 0o777)
		}
	}
	if err != nil && err != unix.EEXIST {
		return fmt.Errorf("create directory %q: %w", d, err)
	}
	return nil
}

// inDataDir reports whether path is the data directory or below it.
func (s *Store) inDataDir(path string) bool {
	return path == s.dir || strings.HasPrefix(path, s.dir+string(filepath.Separator)) ||
		s.dir == string(filepath.Separator)
}
