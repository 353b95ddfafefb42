package file

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/archipelago-go/archipelago/drivers"
)

// putFile writes a file at rel under the store's directory, making its
// directories.
func putFile(t *testing.T, s *Store, rel string) {
	t.Helper()
	path := filepath.Join(s.Dir(), rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestListLayout lists a data directory the way filed and Pithos left it:
// objects at their fan-out place and at the old Pithos place are listed
// (once when at both), temporaries, files at a wrong place and other
// entries are not.
func TestListLayout(t *testing.T) {
	s := newStore(t, Options{}, false)
	oldOnly := hexSHA([]byte("old place only"))
	both := hexSHA([]byte("both places"))
	for _, rel := range []string{
		filepath.Join(fanOut("vol"), "vol"),
		filepath.Join(oldOnly[0:2], oldOnly[2:4], oldOnly[4:6], oldOnly),
		filepath.Join(both[0:2], both[2:4], both[4:6], both),
		filepath.Join(fanOut(both), both),
		// Temporaries a crash left: named off their directory.
		filepath.Join(fanOut("vol_lock"), "vol_lock"+"host_00000000000000ab"),
		filepath.Join(fanOut("vol"), "vol"+copySuffix+"host_0123456789abcdef"),
		// Files at a place the store never looks.
		filepath.Join(fanOut("vol"), "stray"),
		filepath.Join("zz", "00", "00", "notfanout"),
		filepath.Join("ab", "cd", "toplevel-ish"),
		"at-the-top",
		".directio-probe_0000000000000001",
	} {
		putFile(t, s, rel)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), fanOut("dir"), "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{"vol", oldOnly, both}))
	got, err := s.List(t.Context(), "")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("List = %q, %v; want %q", got, err, want)
	}
	if got, err := s.List(t.Context(), oldOnly[:3]); err != nil || !slices.Contains(got, oldOnly) {
		t.Errorf("List(%q) = %q, %v; want it to hold %s", oldOnly[:3], got, err, oldOnly)
	}
}

// TestListLockDir: locks in a lock directory are not in the listing.
func TestListLockDir(t *testing.T) {
	s := newStore(t, Options{}, true)
	putFile(t, s, filepath.Join(fanOut("a"), "a"))
	if err := s.Lock(t.Context(), "a", "me", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	if got, err := s.List(t.Context(), ""); err != nil || !slices.Equal(got, []string{"a"}) {
		t.Errorf("List = %q, %v", got, err)
	}
}
