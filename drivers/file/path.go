package file

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"github.com/archipelago-go/archipelago/drivers"
)

// maxFileName is the longest file name Linux file systems accept
// (NAME_MAX). Object names may be up to drivers.MaxNameLen bytes, but one
// whose file name (with a "_lock" or "_hash" suffix) does not fit is refused.
const maxFileName = 255

// Side-file suffixes of the original filed, kept for on-disk compatibility.
// Hazard: an object literally named "<x>_lock" or "<x>_hash" shares its file
// with the lock or hash cache of object x, as in the original.
const (
	lockSuffix = drivers.LockSuffix
	hashSuffix = drivers.HashSuffix
	copySuffix = "_copy"
)

// checkName validates name as an object name whose file name, with suffix
// appended, fits the file system.
func checkName(name, suffix string) error {
	if err := drivers.ValidateName(name); err != nil {
		return err
	}
	if n := len(name) + len(suffix); n > maxFileName {
		return fmt.Errorf("%w: file name %q+%q is %d bytes, the file system limit is %d",
			drivers.ErrInvalidName, name, suffix, n, maxFileName)
	}
	return nil
}

// fanOut returns the three directory levels "ab/cd/ef" under which the
// original filed stores name: the hex of the first three bytes of
// SHA-256(name).
func fanOut(name string) string {
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:3])
	return h[0:2] + "/" + h[2:4] + "/" + h[4:6]
}

// objectPath returns where the object (or side file) name lives under dir.
// The caller has validated name, so it holds no '/' and is not "." or "..":
// the result is always a file three levels below dir.
func objectPath(dir, name string) string {
	return filepath.Join(dir, fanOut(name), name)
}

// isPithosName reports whether name is a 64-digit lowercase hex name, the
// shape of a Pithos block (and of our content-addressed objects).
func isPithosName(name string) bool {
	return len(name) == 2*sha256.Size && isLowerHex(name)
}

// isLowerHex reports whether s is all lowercase hex digits.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// legacyPithosPath returns the old Pithos location of a 64-hex name,
// <dir>/<name[0:2]>/<name[2:4]>/<name[4:6]>/<name>, read as a fallback.
func legacyPithosPath(dir, name string) string {
	return filepath.Join(dir, name[0:2], name[2:4], name[4:6], name)
}

// tempName returns a fresh temporary file name "<base><owner>_<16 hex>",
// the shape filed uses, cut to fit a file name. Uniqueness comes from the
// random suffix and O_EXCL, not from base.
func tempName(base, owner string) string {
	prefix := base + owner
	const suffixLen = 1 + 16
	if len(prefix) > maxFileName-suffixLen {
		prefix = prefix[:maxFileName-suffixLen]
	}
	return fmt.Sprintf("%s_%016x", prefix, rand.Uint64())
}
