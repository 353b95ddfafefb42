// Package file owns the file-system object store: Archipelago objects kept
// as files in a directory tree, laid out as the original filed lays them
// out, so a filed data directory (shared over NFS between hosts, too) is
// served as it is. It owns the layout, lock files, hash side files and a
// cache of open file descriptors.
//
// Layout under the data directory dir (abcdef is the hex of the first three
// bytes of SHA-256 of the file name shown):
//
//	dir/ab/cd/ef/<name>        the object
//	dir/ab/cd/ef/<name>_lock   its lock, holding the owner (or LockDir/<name>_lock)
//	dir/ab/cd/ef/<name>_hash   its cached content hash, 64 hex digits
//	dir/h[0:2]/h[2:4]/h[4:6]/h old Pithos location of a 64-hex name h, read
//	                           when the file is missing from its new place
//
// Hazards:
//   - Open files are cached per Store. A Store does not notice another
//     Store (another host) deleting or replacing an object it has open; it
//     keeps serving the old file until the descriptor leaves its cache.
//     Archipelago's one-writer-per-volume locks and never-reused object
//     names keep this from mattering; do not rely on cross-host coherence
//     otherwise.
//   - The lock and the hash side file of object x are the files of objects
//     named "x_lock" and "x_hash", as in the original. The store never
//     writes over an existing "x_hash" and never deletes one, but Lock
//     takes an object "x_lock" for a lock held by its content, a forced
//     Unlock of x deletes it, and List leaves both names out.
//   - A crash can leave temporary files ("<name>_lock<owner>_<hex>",
//     "<name>_hash<owner>_<hex>", "<name>_copy<owner>_<hex>") behind;
//     they are never read and may be removed when no call runs.
//   - Calls block in system calls; a context is checked before a call
//     starts (and while waiting for a lock), not during I/O.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
)

// DefaultFDCache is how many object files a Store keeps open by default.
const DefaultFDCache = 256

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// LockDir, if set, holds lock files flat as LockDir/<name>_lock, like
	// filed's --lockdir. Empty keeps them in the data tree. It must exist.
	LockDir string
	// Owner names this Store (host) in temporary file names, like filed's
	// --uniquestr. Empty means the host name. Lock owners are passed to
	// Lock explicitly and are independent of it.
	Owner string
	// FDCache is how many object files stay open; 0 means DefaultFDCache.
	// Files in use by a call stay open beyond it until the call ends.
	FDCache int
	// DirectIO opens object files with O_DIRECT, bypassing the page cache.
	// Requests not aligned to 4096 bytes go through an aligned bounce
	// buffer, read-modify-write for writes. Open fails with ErrNotSupported
	// if the file system refuses O_DIRECT.
	DirectIO bool
}

// Store is an object store over a directory tree. It implements
// drivers.Store; all methods are safe for concurrent use.
type Store struct {
	dir     string
	lockDir string
	owner   string
	direct  bool
	views   bool // map object files to read and write through (see view)
	// viewHoles: a read through a view would allocate a hole (tmpfs).
	viewHoles bool
	oflags    int // extra open flags for object files

	cache    *fdCache
	queueing queueSupport

	dirsMu      sync.Mutex
	pendingDirs map[string]uint64 // directories with entries not yet durable
	pendingGen  uint64

	errMu    sync.Mutex
	deferred error // sync failure met while closing an evicted file

	closed atomic.Bool
}

var _ drivers.Store = (*Store)(nil)

// Open returns a Store over dir, which must exist: an empty directory for a
// new store, or the data directory of a store or of the original filed.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{owner: opts.Owner, pendingDirs: make(map[string]uint64)}
	var err error
	if s.dir, err = existingDir(dir); err != nil {
		return nil, fmt.Errorf("open file store: %w", err)
	}
	if opts.LockDir != "" {
		if s.lockDir, err = existingDir(opts.LockDir); err != nil {
			return nil, fmt.Errorf("open file store: lock directory: %w", err)
		}
	}
	if s.owner == "" {
		if s.owner, err = os.Hostname(); err != nil || s.owner == "" {
			s.owner = "localhost"
		}
	}
	if err := drivers.ValidateName(s.owner); err != nil {
		return nil, fmt.Errorf("open file store %q: owner: %w", dir, err)
	}
	size := opts.FDCache
	if size == 0 {
		size = DefaultFDCache
	}
	if size < 0 {
		return nil, fmt.Errorf("open file store %q: fd cache size %d is negative", dir, size)
	}
	s.cache = newFDCache(size)
	if opts.DirectIO {
		if err := probeDirectIO(s.dir); err != nil {
			return nil, fmt.Errorf("open file store %q: direct I/O: %w", dir, err)
		}
		s.direct, s.oflags = true, oDirect
	}
	if !s.direct {
		s.views, s.viewHoles = mapsFiles(s.dir)
	}
	return s, nil
}

// Dir returns the absolute path of the store's data directory.
func (s *Store) Dir() string { return s.dir }

// existingDir returns dir made absolute, or an error unless it is a
// directory.
func existingDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%q is not a directory", dir)
	}
	return abs, nil
}

// probeDirectIO checks once that dir's file system takes O_DIRECT I/O.
func probeDirectIO(dir string) error {
	if oDirect == 0 {
		return fmt.Errorf("%w: O_DIRECT on this operating system", ErrNotSupported)
	}
	fd, remove, err := createProbe(dir, ".directio-probe", oDirect)
	if err == unix.EINVAL {
		return fmt.Errorf("%w: the file system under %q refuses O_DIRECT", ErrNotSupported, dir)
	}
	if err != nil {
		return err
	}
	defer remove()
	buf := alignedBuffer(directAlign)
	if err = pwriteFull(fd, buf, 0); err == nil {
		_, err = preadFull(fd, buf, 0, true)
	}
	if err == unix.EINVAL {
		return fmt.Errorf("%w: the file system under %q fails O_DIRECT I/O", ErrNotSupported, dir)
	}
	return err
}

// createProbe creates an empty file in dir, named after base, opened with
// the extra flags oflags, for probing what the file system does; remove
// closes and unlinks it.
func createProbe(dir, base string, oflags int) (fd int, remove func(), err error) {
	path := filepath.Join(dir, tempName(base, ""))
	fd, err = openFile(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|oflags, 0o600)
	if err != nil {
		return -1, nil, err
	}
	return fd, func() { unix.Close(fd); unix.Unlink(path) }, nil
}

// check validates the common arguments of a call.
func (s *Store) check(ctx context.Context, name string, off int64, n int) error {
	if s.closed.Load() {
		return fs.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(name, ""); err != nil {
		return err
	}
	if off < 0 || off > math.MaxInt64-int64(n) {
		return fmt.Errorf("%w: offset %d, size %d", drivers.ErrInvalidRange, off, n)
	}
	return nil
}

// get returns the open object name with a reference taken; release it.
// Without create a missing object fails with ENOENT.
func (s *Store) get(name string, create bool) (*object, error) {
	o, epoch, err := s.cache.lookup(name)
	if err != nil || o != nil {
		return o, err
	}
	if o, err = s.open(name, create); err != nil {
		return nil, err
	}
	o, retire := s.cache.insert(o, epoch)
	for _, r := range retire {
		s.release(r)
	}
	return o, nil
}

// release drops a reference taken by get, closing a file that left the
// cache once nobody uses it. Writes still unsynced are synced first, so a
// later Flush, which only sees open files, has nothing to miss.
func (s *Store) release(o *object) {
	if s.cache.needsFinalSync(o) {
		if err := s.syncObject(o); err != nil {
			s.errMu.Lock()
			s.deferred = errors.Join(s.deferred, err)
			s.errMu.Unlock()
		}
	}
	if s.cache.unref(o) {
		o.view.unmap()
		unix.Close(o.fd)
	}
}

// open opens the file of object name: at its place, else at the old Pithos
// place, else (with create) a new file at its place.
func (s *Store) open(name string, create bool) (*object, error) {
	path := objectPath(s.dir, name)
	flags := unix.O_RDWR | unix.O_CLOEXEC | s.oflags
	fd, err := openFile(path, flags, 0)
	if err == unix.ENOENT && isPithosName(name) {
		old := legacyPithosPath(s.dir, name)
		if fd, err := openFile(old, flags, 0); err == nil {
			o := &object{name: name, fd: fd, leaf: filepath.Dir(old)}
			s.mapObject(o)
			return o, nil
		}
	}
	created := false
	for try := 0; err == unix.ENOENT && create && try < 3; try++ {
		fd, err = openFile(path, flags|unix.O_CREAT|unix.O_EXCL, 0o666)
		switch err {
		case nil:
			created = true
		case unix.EEXIST:
			fd, err = openFile(path, flags, 0)
		case unix.ENOENT:
			if mkErr := s.mkdirs(filepath.Dir(path)); mkErr != nil {
				return nil, mkErr
			}
		}
	}
	if err != nil {
		return nil, err
	}
	o := &object{name: name, fd: fd, leaf: filepath.Dir(path)}
	o.dirPending.Store(created)
	s.mapObject(o)
	return o, nil
}

// mapObject gives o a view when the store reads through views.
func (s *Store) mapObject(o *object) {
	var st unix.Stat_t
	if s.views && unix.Fstat(o.fd, &st) == nil {
		o.view.mapView(o.fd, st.Size, s.viewHoles)
	}
}

// Read fills p from object name at off; bytes past its end, and all of a
// missing object, read as zeros.
func (s *Store) Read(ctx context.Context, name string, p []byte, off int64) error {
	if err := s.check(ctx, name, off, len(p)); err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	o, err := s.get(name, false)
	if err == unix.ENOENT {
		clear(p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	defer s.release(o)
	if err := s.readAt(o, p, off); err != nil {
		return fmt.Errorf("read %q at %d: %w", name, off, err)
	}
	return nil
}

// Write stores p at off in object name, creating it if needed. With
// WriteFUA or WriteFlush the data, and a new file's directory entry, are
// durable when it returns.
func (s *Store) Write(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags) error {
	if err := s.check(ctx, name, off, len(p)); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	if flags&drivers.WriteFlush != 0 {
		if err := s.Flush(ctx); err != nil {
			return fmt.Errorf("write %q: %w", name, err)
		}
	}
	o, err := s.get(name, true)
	if err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	defer s.release(o)
	if len(p) > 0 {
		err = s.writeAt(o, p, off)
		o.written.Add(1)
		if err != nil {
			return fmt.Errorf("write %q at %d: %w", name, off, err)
		}
	}
	if flags&(drivers.WriteFUA|drivers.WriteFlush) != 0 {
		if err := s.syncObject(o); err != nil {
			return fmt.Errorf("write %q: %w", name, err)
		}
	}
	return nil
}

// Size returns the size of object name, drivers.ErrNotFound if missing.
func (s *Store) Size(ctx context.Context, name string) (int64, error) {
	if err := s.check(ctx, name, 0, 0); err != nil {
		return 0, fmt.Errorf("size %q: %w", name, err)
	}
	o, err := s.get(name, false)
	if err == unix.ENOENT {
		return 0, fmt.Errorf("size %q: %w", name, drivers.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", name, err)
	}
	defer s.release(o)
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return 0, fmt.Errorf("size %q: %w", name, err)
	}
	return st.Size, nil
}

// Delete removes object name, at its new and its old Pithos place;
// drivers.ErrNotFound if it does not exist. Its "<name>_hash" side file
// stays, as filed leaves it: it may be another object's file (see the
// package hazards), and an object created later is newer than it, which
// makes Hash ignore it.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(ctx, name, 0, 0); err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	found := false
	paths := []string{objectPath(s.dir, name)}
	if isPithosName(name) {
		paths = append(paths, legacyPithosPath(s.dir, name))
	}
	for _, path := range paths {
		switch err := unix.Unlink(path); err {
		case nil:
			found = true
		case unix.ENOENT:
		default:
			return fmt.Errorf("delete %q: %w", name, err)
		}
	}
	if o := s.cache.invalidate(name); o != nil {
		s.release(o)
	}
	if !found {
		return fmt.Errorf("delete %q: %w", name, drivers.ErrNotFound)
	}
	return nil
}

// Forget closes the files the store keeps open (syncing those that hold
// writes not yet durable first, as a file leaving the cache always is),
// for a store that shares its directory with another process: a file that
// process deleted then gives its space back. The store stays usable.
func (s *Store) Forget() {
	for _, o := range s.cache.drop() {
		s.release(o)
	}
}

// Flush makes every acknowledged write, and the directory entries of new
// files and directories, durable.
func (s *Store) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("flush: %w", fs.ErrClosed)
	}
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

func (s *Store) flush(ctx context.Context) error {
	var errs []error
	for _, o := range s.cache.dirtyObjects() {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
		} else if err := s.syncObject(o); err != nil {
			errs = append(errs, err)
		}
		s.release(o)
	}
	if err := s.syncAllPendingDirs(); err != nil {
		errs = append(errs, err)
	}
	s.errMu.Lock()
	errs = append(errs, s.deferred)
	s.deferred = nil
	s.errMu.Unlock()
	return errors.Join(errs...)
}

// Close flushes and closes the store's files. Calls still running finish;
// later calls fail with fs.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.flush(context.Background())
	for _, o := range s.cache.close() {
		s.release(o)
	}
	if err != nil {
		return fmt.Errorf("close file store %q: %w", s.dir, err)
	}
	return nil
}

// readAt fills p from o at off, zeros past the end of the file.
func (s *Store) readAt(o *object, p []byte, off int64) error {
	if o.view.read(p, off) {
		return nil
	}
	if !s.direct || isAligned(p, off) {
		n, err := preadFull(o.fd, p, off, s.direct)
		if n > 0 {
			o.view.grow(off + int64(n))
		}
		clear(p[n:])
		return err
	}
	start, end := alignDown(off), alignUp(off+int64(len(p)))
	buf := alignedBuffer(int(end - start))
	n, err := preadFull(o.fd, buf, start, true)
	clear(buf[n:])
	copy(p, buf[off-start:])
	return err
}

// writeAt writes p to o at off. With direct I/O an unaligned request is
// widened to whole blocks, the partial first and last ones read first; the
// file is then cut back so it does not grow past off+len(p).
func (s *Store) writeAt(o *object, p []byte, off int64) error {
	if !s.direct || isAligned(p, off) {
		o.rmw.RLock()
		defer o.rmw.RUnlock()
		if o.view.write(p, off) {
			return nil
		}
		if err := pwriteFull(o.fd, p, off); err != nil {
			return err
		}
		o.view.grow(off + int64(len(p)))
		return nil
	}
	o.rmw.Lock()
	defer o.rmw.Unlock()
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return err
	}
	pEnd := off + int64(len(p))
	start, end := alignDown(off), alignUp(pEnd)
	buf := alignedBuffer(int(end - start))
	if off != start {
		if err := s.readBlock(o, buf[:directAlign], start); err != nil {
			return err
		}
	}
	if tail := end - directAlign; pEnd != end && (tail != start || off == start) {
		if err := s.readBlock(o, buf[tail-start:], tail); err != nil {
			return err
		}
	}
	copy(buf[off-start:], p)
	if err := pwriteFull(o.fd, buf, start); err != nil {
		return err
	}
	if end > st.Size && pEnd < end {
		return unix.Ftruncate(o.fd, max(st.Size, pEnd))
	}
	return nil
}

// readBlock reads one aligned block, zeros past the end of the file.
func (s *Store) readBlock(o *object, b []byte, off int64) error {
	n, err := preadFull(o.fd, b, off, true)
	clear(b[n:])
	return err
}

func alignDown(off int64) int64 { return off &^ (directAlign - 1) }
func alignUp(off int64) int64   { return alignDown(off + directAlign - 1) }
