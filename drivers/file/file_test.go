package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/drivertest"
)

// openStore opens a Store on dir and closes it when the test ends.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("Open: %v", err)
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a Store on a fresh root/data; with useLockDir, locks go
// to root/locks.
func newStore(t testing.TB, opts Options, useLockDir bool) *Store {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if useLockDir {
		opts.LockDir = filepath.Join(root, "locks")
		if err := os.Mkdir(opts.LockDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return openStore(t, dir, opts)
}

func harness(opts Options, useLockDir bool) drivertest.Harness {
	return drivertest.Harness{
		Open: func(t *testing.T) drivers.Store { return newStore(t, opts, useLockDir) },
		OpenPeer: func(t *testing.T, first drivers.Store) drivers.Store {
			peer := opts
			peer.Owner = "peer-host"
			peer.LockDir = first.(*Store).lockDir
			return openStore(t, first.(*Store).Dir(), peer)
		},
		Files: func(t *testing.T, s drivers.Store) []string {
			return listFiles(t, filepath.Dir(s.(*Store).Dir()))
		},
	}
}

// listFiles returns every path under root, relative to it.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, path)
		paths = append(paths, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestConformance(t *testing.T) {
	t.Run("Default", func(t *testing.T) { drivertest.Run(t, harness(Options{}, false)) })
	t.Run("LockDir", func(t *testing.T) { drivertest.Run(t, harness(Options{}, true)) })
	t.Run("FDCache1", func(t *testing.T) { drivertest.Run(t, harness(Options{FDCache: 1}, false)) })
	t.Run("DirectIO", func(t *testing.T) { drivertest.Run(t, harness(Options{DirectIO: true, FDCache: 4}, false)) })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the file is not where filed keeps it: %v", err)
	}
	return string(b)
}

// TestLayout pins the on-disk places of objects and locks to the original
// filed's, with fan-outs computed by sha256sum.
func TestLayout(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	golden := map[string]string{
		"a":                                     "ca/97/81/a",
		"abcdef":                                "be/f5/7e/abcdef",
		"vol_0000000000000001_0000000000000002": "a2/27/a3/vol_0000000000000001_0000000000000002",
	}
	for name, rel := range golden {
		if err := s.Write(ctx, name, []byte(name), 0, 0); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(s.Dir(), rel)); got != name {
			t.Errorf("%s holds %q, want %q", rel, got, name)
		}
	}
	if err := s.Lock(ctx, "vol1", "host_1", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.Dir(), "50/92/17/vol1_lock")); got != "host_1" {
		t.Errorf("lock file holds %q, want the owner", got)
	}

	ls := newStore(t, Options{}, true)
	if err := ls.Lock(ctx, "vol1", "host_2", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(ls.lockDir, "vol1_lock")); got != "host_2" {
		t.Errorf("lock file holds %q, want the owner", got)
	}
	// Temporary files are gone once calls return.
	for _, dir := range []string{s.Dir(), ls.Dir(), ls.lockDir} {
		for _, p := range listFiles(t, dir) {
			if strings.Contains(p, "_lock") && !strings.HasSuffix(p, "_lock") {
				t.Errorf("temporary file %s left behind", p)
			}
		}
	}
}

// TestOldLock reads a lock an old filed left.
func TestOldLock(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	path := filepath.Join(s.Dir(), "50/92/17/vol1_lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("oldhost_17"), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := s.LockOwner(ctx, "vol1"); err != nil || o != "oldhost_17" {
		t.Errorf("LockOwner = %q, %v; want oldhost_17", o, err)
	}
	if err := s.Lock(ctx, "vol1", "new", drivers.LockTry); !errors.Is(err, drivers.ErrLocked) {
		t.Errorf("Lock = %v, want ErrLocked", err)
	}
	if err := s.Lock(ctx, "vol1", "oldhost_17", drivers.LockTry); err != nil {
		t.Errorf("Lock by the old owner: %v", err)
	}
	if err := s.Unlock(ctx, "vol1", "oldhost_17", false); err != nil {
		t.Errorf("Unlock by the old owner: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file still there after Unlock: %v", err)
	}
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestHashSideFile checks the "<name>_hash" cache: where it lives, that it
// is used while newer than the object, and ignored once it is not.
func TestHashSideFile(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	content := []byte("some block content")
	if err := s.Write(ctx, "plain", content, 0, 0); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(s.Dir(), fanOut("plain"), "plain")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(obj, old, old); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Hash(ctx, "plain")
	if err != nil || sum != hexSHA(content) {
		t.Fatalf("Hash = %q, %v; want %q", sum, err, hexSHA(content))
	}
	side := filepath.Join(s.Dir(), "59/88/0b/plain_hash")
	if got := readFile(t, side); got != sum {
		t.Errorf("side file holds %q, want %q", got, sum)
	}
	if got := readFile(t, filepath.Join(s.Dir(), fanOut(sum), sum)); got != string(content) {
		t.Errorf("content-addressed file holds %q, want %q", got, content)
	}

	// A cached answer is served as is: point it at another stored hash.
	if err := s.Write(ctx, "other", []byte("other"), 0, 0); err != nil {
		t.Fatal(err)
	}
	other, err := s.Hash(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(side, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Hash(ctx, "plain"); err != nil || got != other {
		t.Errorf("Hash with a planted cache = %q, %v; want the planted %q", got, err, other)
	}
	// Once the object is written after it, the cache is ignored.
	if err := s.Write(ctx, "plain", []byte("S"), 0, 0); err != nil {
		t.Fatal(err)
	}
	want := hexSHA(append([]byte("S"), content[1:]...))
	if got, err := s.Hash(ctx, "plain"); err != nil || got != want {
		t.Errorf("Hash after a write = %q, %v; want %q", got, err, want)
	}
	// An existing side file is never written over: it may be an object.
	if err := s.Write(ctx, "x_hash", []byte("an object"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, "x", content, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(s.Dir(), fanOut("x"), "x"), old, old); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Hash(ctx, "x"); err != nil || got != hexSHA(content) {
		t.Errorf("Hash = %q, %v; want %q", got, err, hexSHA(content))
	}
	got := make([]byte, 9)
	if err := s.Read(ctx, "x_hash", got, 0); err != nil || string(got) != "an object" {
		t.Errorf("object x_hash reads %q, %v after Hash(x)", got, err)
	}
	// Neither does Delete remove it.
	if err := s.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(ctx, "x_hash"); err != nil || n != 9 {
		t.Errorf("Size of object x_hash after Delete(x) = %d, %v", n, err)
	}
}

// TestPithosFallback serves a 64-hex block from the old Pithos layout.
func TestPithosFallback(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	content := []byte("pithos block")
	name := hexSHA(content)
	old := filepath.Join(s.Dir(), name[0:2], name[2:4], name[4:6], name)
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(ctx, name); err != nil || n != int64(len(content)) {
		t.Errorf("Size = %d, %v; want %d", n, err, len(content))
	}
	got := make([]byte, 20)
	if err := s.Read(ctx, name, got, 0); err != nil || !bytes.Equal(got, append(content, make([]byte, 8)...)) {
		t.Errorf("Read = %q, %v", got, err)
	}
	if sum, err := s.Hash(ctx, name); err != nil || sum != name {
		t.Errorf("Hash = %q, %v; want the name", sum, err)
	}
	// Writing goes to the old file rather than hide it behind a new one.
	if err := s.Write(ctx, name, []byte("P"), 0, drivers.WriteFUA); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, old); got != "P"+string(content[1:]) {
		t.Errorf("old file holds %q after a write", got)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), fanOut(name), name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a new-layout file appeared beside the old one: %v", err)
	}
	if err := s.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old file survives Delete: %v", err)
	}
	if _, err := s.Size(ctx, name); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Size after Delete: %v, want ErrNotFound", err)
	}
}

// TestReopen serves objects and locks a closed store left behind.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("reopen"), 1000)
	if err := s.Write(ctx, "vol_0", data, 4095, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "vol", "host_1", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, "vol_0", data, 0, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Write after Close: %v, want fs.ErrClosed", err)
	}
	if err := s.Lock(ctx, "vol", "host_1", drivers.LockTry); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Lock after Close: %v, want fs.ErrClosed", err)
	}

	s = openStore(t, dir, Options{})
	got := make([]byte, len(data))
	if err := s.Read(ctx, "vol_0", got, 4095); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Read after reopening: %v, equal %v", err, bytes.Equal(got, data))
	}
	if o, err := s.LockOwner(ctx, "vol"); err != nil || o != "host_1" {
		t.Errorf("LockOwner after reopening = %q, %v", o, err)
	}
}

// TestNameLimits checks names against the 255-byte file-name limit.
func TestNameLimits(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	long := strings.Repeat("n", maxFileName)
	if err := s.Write(ctx, long, []byte{1}, 0, 0); err != nil {
		t.Errorf("Write of a %d-byte name: %v", len(long), err)
	}
	if _, err := s.Hash(ctx, long); err != nil {
		t.Errorf("Hash of a %d-byte name (no room for a side file): %v", len(long), err)
	}
	if err := s.Write(ctx, long+"n", []byte{1}, 0, 0); !errors.Is(err, drivers.ErrInvalidName) {
		t.Errorf("Write of a %d-byte name: %v, want ErrInvalidName", len(long)+1, err)
	}
	lockable := long[:maxFileName-len(lockSuffix)]
	if err := s.Lock(ctx, lockable, "o", drivers.LockTry); err != nil {
		t.Errorf("Lock of a %d-byte name: %v", len(lockable), err)
	}
	if err := s.Lock(ctx, lockable+"n", "o", drivers.LockTry); !errors.Is(err, drivers.ErrInvalidName) {
		t.Errorf("Lock of a %d-byte name: %v, want ErrInvalidName", len(lockable)+1, err)
	}
	if err := s.Lock(ctx, "vol", "", drivers.LockTry); err == nil {
		t.Error("Lock with an empty owner succeeded")
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(fds)
}

// TestFDCacheBound checks that evicted files are closed, and that writes
// to them are still made durable by Flush.
func TestFDCacheBound(t *testing.T) {
	s := newStore(t, Options{FDCache: 2}, false)
	ctx := t.Context()
	base := openFDs(t)
	for i := range 20 {
		if err := s.Write(ctx, strings.Repeat("x", i+1), []byte{byte(i + 1)}, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := openFDs(t) - base; n > 2 {
		t.Errorf("%d files open with a cache of 2", n)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := dirtyCount(s); n != 0 {
		t.Errorf("%d dirty objects left after Flush", n)
	}
	for i := range 20 {
		got := []byte{0}
		if err := s.Read(ctx, strings.Repeat("x", i+1), got, 0); err != nil || got[0] != byte(i+1) {
			t.Errorf("object %d reads %d, %v", i, got[0], err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := openFDs(t) - base; n > 0 {
		t.Errorf("%d files still open after Close", n)
	}
}

// dirtyCount returns how many open objects hold unsynced writes.
func dirtyCount(s *Store) int {
	dirty := s.cache.dirtyObjects()
	for _, o := range dirty {
		s.release(o)
	}
	return len(dirty)
}

// TestDurabilityBookkeeping checks what a write leaves to sync: a new
// file's directory entry and its new directories wait for FUA or Flush.
func TestDurabilityBookkeeping(t *testing.T) {
	s := newStore(t, Options{}, false)
	ctx := t.Context()
	pending := func() int {
		s.dirsMu.Lock()
		defer s.dirsMu.Unlock()
		return len(s.pendingDirs)
	}
	if err := s.Write(ctx, "lazy", []byte{1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if pending() != 3 || dirtyCount(s) != 1 {
		t.Errorf("after a plain write to a new object: %d pending directories (want 3), %d dirty objects (want 1)",
			pending(), dirtyCount(s))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 || dirtyCount(s) != 0 {
		t.Errorf("after Flush: %d pending directories, dirty objects left", pending())
	}
	if err := s.Write(ctx, "lazy", []byte{2}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 || dirtyCount(s) != 1 {
		t.Errorf("after rewriting a synced object: %d pending directories (want 0), %d dirty objects (want 1)",
			pending(), dirtyCount(s))
	}
	if err := s.Write(ctx, "lazy", nil, 0, drivers.WriteFUA); err != nil {
		t.Fatal(err)
	}
	if dirtyCount(s) != 0 {
		t.Error("dirty objects left after an empty FUA write")
	}
	if err := s.Write(ctx, "eager", []byte{1}, 0, drivers.WriteFUA); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 || dirtyCount(s) != 0 {
		t.Errorf("after a FUA write: %d pending directories, dirty objects left", pending())
	}
}

// TestFDCacheEpoch checks that a file opened across an invalidation (an
// unlink or a replacement by another call) is used once but not cached.
func TestFDCacheEpoch(t *testing.T) {
	c := newFDCache(4)
	o, epoch, err := c.lookup("x")
	if o != nil || err != nil {
		t.Fatalf("lookup in an empty cache = %v, %v", o, err)
	}
	c.invalidate("x")
	stale := &object{name: "x", fd: -1}
	if got, _ := c.insert(stale, epoch); got != stale || stale.cached {
		t.Error("a file opened across an invalidation was cached")
	}
	if !c.unref(stale) {
		t.Error("the uncached file was not handed back to be closed")
	}
	_, epoch, _ = c.lookup("x")
	fresh := &object{name: "x", fd: -1}
	if got, _ := c.insert(fresh, epoch); got != fresh || !fresh.cached {
		t.Error("a freshly opened file was not cached")
	}
	if got, _, _ := c.lookup("x"); got != fresh || fresh.refs != 2 {
		t.Errorf("lookup = %p with %d references, want the cached %p with 2", got, fresh.refs, fresh)
	}
}

// TestCopyBuffered covers the user-space path taken where
// copy_file_range is refused.
func TestCopyBuffered(t *testing.T) {
	for _, direct := range []bool{false, true} {
		s := newStore(t, Options{DirectIO: direct}, false)
		data := bytes.Repeat([]byte("0123456789"), 300000) // 3 MB, not block-aligned
		if err := s.Write(t.Context(), "src", data, 0, 0); err != nil {
			t.Fatal(err)
		}
		o, err := s.get("src", false)
		if err != nil {
			t.Fatal(err)
		}
		fd, tmp, err := s.createTemp(s.Dir(), "copy")
		if err != nil {
			t.Fatal(err)
		}
		err = s.copyBuffered(o, fd, 7, int64(len(data)))
		s.release(o)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		got := readFile(t, tmp)
		if got[:7] != "\x00\x00\x00\x00\x00\x00\x00" || got[7:] != string(data[7:]) {
			t.Errorf("direct=%v: buffered copy differs", direct)
		}
	}
}

// FuzzObjectPath checks that no name maps outside the data directory.
func FuzzObjectPath(f *testing.F) {
	for _, seed := range []string{"a", "", ".", "..", "a/b", "../../etc/passwd", "\x00", "x_lock",
		strings.Repeat("f", 64), strings.Repeat("z", 256)} {
		f.Add(seed)
	}
	const dir, lockDir = "/srv/archip/data", "/srv/archip/locks"
	f.Fuzz(func(t *testing.T, name string) {
		if err := checkName(name, ""); err != nil {
			if !errors.Is(err, drivers.ErrInvalidName) {
				t.Fatalf("checkName(%q) = %v, want ErrInvalidName", name, err)
			}
			return
		}
		p := objectPath(dir, name)
		if filepath.Base(p) != name || filepath.Dir(p) != filepath.Join(dir, fanOut(name)) {
			t.Fatalf("objectPath(%q) = %q, not <dir>/ab/cd/ef/<name>", name, p)
		}
		if rel, err := filepath.Rel(dir, p); err != nil || strings.Count(rel, "/") != 3 || strings.HasPrefix(rel, "..") {
			t.Fatalf("objectPath(%q) = %q escapes %s", name, p, dir)
		}
		if isPithosName(name) {
			if q := legacyPithosPath(dir, name); filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(q)))) != dir {
				t.Fatalf("legacyPithosPath(%q) = %q escapes %s", name, q, dir)
			}
		}
		s := &Store{dir: dir, lockDir: lockDir}
		if lp, err := s.lockPath(name); err == nil && filepath.Dir(lp) != lockDir {
			t.Fatalf("lockPath(%q) = %q, not in %s", name, lp, lockDir)
		}
		if tmp := tempName(name+lockSuffix, "owner"); len(tmp) > maxFileName || strings.ContainsAny(tmp, "/\x00") {
			t.Fatalf("tempName(%q) = %q", name, tmp)
		}
	})
}
