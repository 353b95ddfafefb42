//go:build ceph

package rados

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/ceph/go-ceph/rados"

	"github.com/archipelago-go/archipelago/drivers"
)

const (
	// HashSuffix names the object that caches an object's hash, as the
	// original radosd: "<name>_hash" holds the 64 hex digits.
	HashSuffix = drivers.HashSuffix
	// hashVersionXattr on the cache object records the RADOS version of the
	// object when it was hashed; a cache whose version differs is stale
	// (the object was written since) and is recomputed. A cache without
	// it, written by the original radosd, is trusted as before: it hashed
	// snapshot objects, which never change.
	hashVersionXattr = "archipelago.hash_version"
	hashRetries      = 5
)

// Hash returns the SHA-256, in hex, of the object's content without its
// trailing zero bytes, and stores that content under the hex name unless an
// object of that name exists. The result is cached in "<name>_hash" and
// reused while the object stays unchanged and the content-addressed object
// exists. ErrNotFound if the object is missing. The object is read whole
// into memory.
func (s *Store) Hash(ctx context.Context, name string) (string, error) {
	if err := drivers.ValidateName(name); err != nil {
		return "", err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()

	// A private I/O context: GetLastVersion reports the last operation of
	// the context, so it must not be shared with other goroutines.
	io, err := s.conn.OpenIOContext(s.cfg.Pool)
	if err != nil {
		return "", wrapErr("hash", name, err)
	}
	defer io.Destroy()
	io.SetNamespace(s.cfg.Namespace)

	for range hashRetries {
		stat, err := io.Stat(name)
		if err != nil {
			return "", wrapErr("hash", name, err)
		}
		version, err := io.GetLastVersion()
		if err != nil {
			return "", wrapErr("hash", name, err)
		}
		if sum, ok := cachedHash(io, name, version); ok {
			// Only while the content-addressed object is there: it may
			// have been deleted since.
			if _, err := io.Stat(sum); err == nil {
				return sum, nil
			}
		}
		data, err := readVersion(io, name, int64(stat.Size), version)
		if err == errChanged {
			continue // written meanwhile: start over
		}
		if err != nil {
			return "", err
		}
		data = bytes.TrimRight(data, "\x00")
		digest := sha256.Sum256(data)
		sum := hex.EncodeToString(digest[:])
		if err := storeContent(io, sum, data); err != nil {
			return "", err
		}
		cache := rados.CreateWriteOp()
		cache.WriteFull([]byte(sum))
		cache.SetXattr(hashVersionXattr, []byte(strconv.FormatUint(version, 10)))
		err = cache.Operate(io, name+HashSuffix, rados.OperationNoFlag)
		cache.Release()
		if err != nil {
			return "", wrapErr("hash cache", name+HashSuffix, err)
		}
		return sum, nil
	}
	return "", fmt.Errorf("rados hash %q: object kept changing while being read: %w", name, syscall.EAGAIN)
}

// errChanged says an object changed while readVersion read it.
var errChanged = errors.New("object changed")

// readVersion reads the whole object, which stat found at version with size
// bytes, and returns errChanged when the reads saw another version.
func readVersion(io *rados.IOContext, name string, size int64, version uint64) ([]byte, error) {
	data := make([]byte, size)
	for off := int64(0); off < size; {
		chunk := data[off:min(size, off+maxIOBytes)]
		n, err := io.Read(name, chunk, uint64(off))
		if isErrno(err, syscall.ENOENT) {
			return nil, errChanged
		}
		if err != nil {
			return nil, wrapErr("hash read", name, err)
		}
		if got, err := io.GetLastVersion(); err != nil || got != version || n < len(chunk) {
			return nil, errChanged
		}
		off += int64(n)
	}
	return data, nil
}

// cachedHash returns the hash cached for name if it is valid for version.
func cachedHash(io *rados.IOContext, name string, version uint64) (string, bool) {
	buf := make([]byte, 2*sha256.Size+1)
	n, err := io.Read(name+HashSuffix, buf, 0)
	if err != nil || n != 2*sha256.Size {
		return "", false
	}
	sum := string(buf[:n])
	if _, err := hex.DecodeString(sum); err != nil {
		return "", false
	}
	verBuf := make([]byte, 32)
	n, err = io.GetXattr(name+HashSuffix, hashVersionXattr, verBuf)
	switch {
	case isErrno(err, syscall.ENODATA):
		return sum, true // written by the original radosd
	case err != nil:
		return "", false
	}
	cached, err := strconv.ParseUint(string(verBuf[:n]), 10, 64)
	return sum, err == nil && cached == version
}

// storeContent creates the content-addressed object sum holding data,
// unless it exists: equal names mean equal content.
func storeContent(io *rados.IOContext, sum string, data []byte) error {
	op := rados.CreateWriteOp()
	defer op.Release()
	op.Create(rados.CreateExclusive)
	if len(data) > 0 {
		op.WriteFull(data)
	}
	err := op.Operate(io, sum, rados.OperationNoFlag)
	if err != nil && !isErrno(err, syscall.EEXIST) {
		return wrapErr("hash store", sum, err)
	}
	return nil
}
