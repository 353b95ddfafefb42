package drivertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/archipelago-go/archipelago/drivers"
)

// list calls List and fails the test on an error.
func list(t *testing.T, s drivers.Store, prefix string) []string {
	t.Helper()
	names, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

// wantList fails unless List(prefix) returns exactly want.
func wantList(t *testing.T, s drivers.Store, prefix string, want ...string) {
	t.Helper()
	if got := list(t, s, prefix); !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q, want %q", prefix, got, want)
	}
}

// testList checks that List returns the objects a prefix selects, sorted
// bytewise, and nothing else: no locks, no cached hashes, no deleted
// objects; and what Copy, Hash and another store create.
func testList(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	wantList(t, s, "")
	names := []string{"vol2", "vol10", "vol1", "a", "vol1_0000000000000001", "名前", "A b", ".hidden", "\xff"}
	for i, name := range names {
		write(t, s, name, pattern(uint64(i), 10), 0)
	}
	sorted := slices.Sorted(slices.Values(names))
	wantList(t, s, "", sorted...)
	wantList(t, s, "vol1", "vol1", "vol10", "vol1_0000000000000001")
	wantList(t, s, "vol1_", "vol1_0000000000000001")
	wantList(t, s, "vol10", "vol10")
	wantList(t, s, "a", "a")
	wantList(t, s, "名", "名前")
	wantList(t, s, ".", ".hidden")
	wantList(t, s, "nomatch")
	wantList(t, s, "vol100")

	// Locks and cached hashes are side objects, not listed; the
	// content-addressed copy that Hash stores is an object.
	if err := s.Lock(ctx, "vol1", "owner", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := s.Lock(ctx, "nothing-here", "owner", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	sum := hashOf(t, s, "vol2")
	wantList(t, s, "vol1", "vol1", "vol10", "vol1_0000000000000001")
	wantList(t, s, "nothing")
	wantList(t, s, sum[:10], sum)

	// Delete, Copy.
	if err := s.Delete(ctx, "vol2"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Copy(ctx, "vol10", "vol3", 10); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	wantList(t, s, "vol", "vol1", "vol10", "vol1_0000000000000001", "vol3")

	// The hazard: an object named like a side object is never listed.
	write(t, s, "obj_lock", []byte{1}, 0)
	write(t, s, "obj_hash", []byte{1}, 0)
	wantList(t, s, "obj")

	if h.OpenPeer != nil {
		write(t, h.OpenPeer(t, s), "vol4", []byte{1}, 0)
		wantList(t, s, "vol4", "vol4")
	}
}

// testListLong checks a long name and a few hundred objects, which a
// backend keeps in many places (directories, placement groups).
func testListLong(t *testing.T, h Harness) {
	s := h.Open(t)
	long := string(bytes.Repeat([]byte("n"), 200))
	write(t, s, long, []byte{1}, 0)
	var want []string
	for i := range 300 {
		name := fmt.Sprintf("obj-%04d", i)
		write(t, s, name, []byte{byte(i)}, 0)
		want = append(want, name)
	}
	wantList(t, s, long, long)
	if got := list(t, s, "obj-"); !slices.Equal(got, want) {
		t.Errorf("List(\"obj-\"): %d names, want %d in order", len(got), len(want))
	}
	wantList(t, s, "obj-012", want[120:130]...)
	if got := list(t, s, ""); len(got) != len(want)+1 {
		t.Errorf("List(\"\"): %d names, want %d", len(got), len(want)+1)
	}
}

// testListInvalid checks that prefixes no name can start with are
// ErrInvalidName, and that an ended context ends a listing.
func testListInvalid(t *testing.T, h Harness) {
	s := h.Open(t)
	write(t, s, "good", []byte{1}, 0)
	for _, prefix := range []string{"/", "a/b", "../escape", "/etc", "x\x00y", "\x00",
		string(bytes.Repeat([]byte("a"), drivers.MaxNameLen+1))} {
		names, err := s.List(t.Context(), prefix)
		wantErr(t, fmt.Sprintf("List(%q) = %q", prefix, names), err, drivers.ErrInvalidName)
	}
	// The longest prefix is fine, and "." and ".." are prefixes like any.
	wantList(t, s, string(bytes.Repeat([]byte("a"), drivers.MaxNameLen)))
	wantList(t, s, ".")
	wantList(t, s, "..")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if names, err := s.List(ctx, ""); err == nil {
		t.Errorf("List with an ended context = %q, want an error", names)
	}
}
