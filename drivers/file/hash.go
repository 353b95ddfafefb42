package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
)

// hashQuiet is how long an object must have been left alone before its
// hash is cached. See cacheHash.
const hashQuiet = 2 * time.Second

// Hash returns the SHA-256, in hex, of object name's content with trailing
// zero bytes stripped, and stores that stripped content under the hash as
// name unless an object of that name exists; drivers.ErrNotFound if name is
// missing. The stored copy is durable when Hash returns. The hash is
// cached in the side file "<name>_hash", as filed does.
func (s *Store) Hash(ctx context.Context, name string) (string, error) {
	if err := s.check(ctx, name, 0, 0); err != nil {
		return "", fmt.Errorf("hash %q: %w", name, err)
	}
	sum, err := s.hash(name)
	if err != nil {
		return "", fmt.Errorf("hash %q: %w", name, err)
	}
	return sum, nil
}

func (s *Store) hash(name string) (string, error) {
	o, err := s.get(name, false)
	if err == unix.ENOENT {
		return "", drivers.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	defer s.release(o)
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return "", err
	}
	if sum, ok := s.cachedHash(name, &st); ok && s.exists(sum) {
		return sum, nil
	}
	digest, err := s.digest(o, st.Size, -1)
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(digest)
	if !s.exists(sum) {
		if err := s.storeContent(o, st.Size, sum); err != nil {
			return "", err
		}
	}
	s.cacheHash(o, sum, &st)
	return sum, nil
}

// digest hashes the first size bytes of o with trailing zeros stripped.
// If dst is a file descriptor it also receives those bytes at their
// offsets; runs of zeros that were not yet known to be inner are skipped,
// leaving holes, and the trailing zeros are never written.
func (s *Store) digest(o *object, size int64, dst int) ([]byte, error) {
	h := sha256.New()
	buf := alignedBuffer(copyChunk)
	var zeros int64 // zero bytes read but not yet hashed
	for off := int64(0); off < size; {
		b := buf[:min(size-off, copyChunk)]
		if err := s.readAt(o, b, off); err != nil {
			return nil, err
		}
		last := len(b) - 1
		for last >= 0 && b[last] == 0 {
			last--
		}
		if last < 0 {
			zeros += int64(len(b))
		} else {
			hashZeros(h, zeros)
			h.Write(b[:last+1])
			if dst >= 0 {
				if err := pwriteFull(dst, b[:last+1], off); err != nil {
					return nil, err
				}
			}
			zeros = int64(len(b) - last - 1)
		}
		off += int64(len(b))
	}
	return h.Sum(nil), nil
}

var zeroBlock [64 << 10]byte

func hashZeros(h hash.Hash, n int64) {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		h.Write(zeroBlock[:k])
		n -= k
	}
}

// exists reports whether an object named name has a file, at its place or
// its old Pithos place.
func (s *Store) exists(name string) bool {
	var st unix.Stat_t
	if unix.Stat(objectPath(s.dir, name), &st) == nil {
		return true
	}
	return isPithosName(name) && unix.Stat(legacyPithosPath(s.dir, name), &st) == nil
}

// storeContent writes o's stripped content to a temporary file, checks it
// still hashes to sum (o may have changed since it was hashed), and links it
// to the object sum. Another host storing the same content first is fine.
func (s *Store) storeContent(o *object, size int64, sum string) error {
	path := objectPath(s.dir, sum)
	fd, tmp, err := s.createTemp(filepath.Dir(path), o.name+hashSuffix)
	if err != nil {
		return err
	}
	defer unix.Unlink(tmp)
	defer unix.Close(fd)
	digest, err := s.digest(o, size, fd)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(digest); got != sum {
		return fmt.Errorf("object changed while being hashed (%s, then %s)", sum, got)
	}
	if err := fdatasync(fd); err != nil {
		return err
	}
	if err := unix.Link(tmp, path); err != nil && err != unix.EEXIST {
		return fmt.Errorf("link %q: %w", path, err)
	}
	return s.syncDirs(filepath.Dir(path))
}

// cachedHash returns the hash in name's side file if it is well formed and
// newer than the object (st), so no write can have followed it.
func (s *Store) cachedHash(name string, st *unix.Stat_t) (string, bool) {
	if checkName(name, hashSuffix) != nil {
		return "", false
	}
	fd, err := openFile(objectPath(s.dir, name+hashSuffix), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	var hst unix.Stat_t
	if unix.Fstat(fd, &hst) != nil || mtime(&hst) <= mtime(st) {
		return "", false
	}
	buf := make([]byte, 2*sha256.Size)
	if n, err := preadFull(fd, buf, 0, false); err != nil || n != len(buf) || !isPithosName(string(buf)) {
		return "", false
	}
	return string(buf), true
}

// cacheHash records sum, the hash of o as it was when st was taken, in o's
// side file unless that file exists, as filed does: it may be a stale cache
// (then ignored, for it is older than the object) or another object. It is
// best effort: a missing cache only costs a rehash.
//
// The cache is trusted while it is newer than the object. Timestamps are
// coarse, so a write racing with Hash might leave the object's mtime
// unchanged; caching only objects left alone for hashQuiet, measured on the
// file system's clock, makes any such write move the mtime, which is
// checked again after the cache is in place. Hazard: a file-system clock
// stepped backwards can make a stale cache look newer.
func (s *Store) cacheHash(o *object, sum string, st *unix.Stat_t) {
	if checkName(o.name, hashSuffix) != nil {
		return
	}
	path := objectPath(s.dir, o.name+hashSuffix)
	fd, tmp, err := s.createTemp(filepath.Dir(path), o.name+hashSuffix)
	if err != nil {
		return
	}
	defer unix.Unlink(tmp)
	defer unix.Close(fd)
	var tst unix.Stat_t
	if pwriteFull(fd, []byte(sum), 0) != nil || unix.Fstat(fd, &tst) != nil ||
		mtime(&tst)-mtime(st) < hashQuiet.Nanoseconds() || unix.Link(tmp, path) != nil {
		return
	}
	var now unix.Stat_t
	if unix.Fstat(o.fd, &now) != nil || mtime(&now) != mtime(st) || now.Size != st.Size {
		unix.Unlink(path)
	}
}
