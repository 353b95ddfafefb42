// Package drivertest is the conformance suite for drivers.Store backends.
// A backend's tests call Run with a Harness that opens fresh stores; every
// backend must pass it unchanged, so callers can swap one for another.
package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
)

// Harness tells the suite how to reach a backend.
type Harness struct {
	// Open returns a fresh, empty store. The harness closes it when the
	// test ends (t.Cleanup); the suite never calls Close.
	Open func(t *testing.T) drivers.Store
	// OpenPeer returns a second store over the same backend data as first,
	// as another host would open it. Nil skips the tests that need it.
	OpenPeer func(t *testing.T, first drivers.Store) drivers.Store
	// Files lists everything the backend holds in and around store s (for
	// a directory backend, every path under a parent of the store's
	// directory). The suite checks that calls with invalid names change
	// nothing in it. Nil skips that check.
	Files func(t *testing.T, s drivers.Store) []string
}

// objectSize is Archipelago's default object size; requests that straddle
// it exercise the boundaries a volume's blocks have.
const objectSize = 4 << 20

// Run runs the conformance suite, each case a subtest.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("drivertest: Harness.Open is nil")
	}
	cases := []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"RandomWrites", testRandomWrites},
		{"ZerosPastEnd", testZerosPastEnd},
		{"Missing", testMissing},
		{"InvalidRange", testInvalidRange},
		{"Delete", testDelete},
		{"Copy", testCopy},
		{"WriteFlags", testWriteFlags},
		{"Names", testNames},
		{"HostileNames", testHostileNames},
		{"Lock", testLock},
		{"LockWait", testLockWait},
		{"LockForce", testLockForce},
		{"LockRace", testLockRace},
		{"LockMutualExclusion", testLockMutualExclusion},
		{"List", testList},
		{"ListLong", testListLong},
		{"ListInvalid", testListInvalid},
		{"Hash", testHash},
		{"HashZeros", testHashZeros},
		{"ConcurrentObjects", testConcurrentObjects},
		{"ConcurrentSameObject", testConcurrentSameObject},
		{"Peer", testPeer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

// pattern returns n bytes derived from seed, none of them zero, so a
// stray zero always means a missed or misplaced write.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(1 + r.IntN(255))
	}
	return b
}

// garbage is what read buffers hold before a Read, so a Read that leaves
// bytes untouched is caught.
const garbage = 0xa5

func write(t *testing.T, s drivers.Store, name string, p []byte, off int64) {
	t.Helper()
	if err := s.Write(t.Context(), name, p, off, 0); err != nil {
		t.Fatalf("Write(%q, %d bytes at %d): %v", name, len(p), off, err)
	}
}

func read(t *testing.T, s drivers.Store, name string, n int, off int64) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{garbage}, n)
	if err := s.Read(t.Context(), name, p, off); err != nil {
		t.Fatalf("Read(%q, %d bytes at %d): %v", name, n, off, err)
	}
	return p
}

func size(t *testing.T, s drivers.Store, name string) int64 {
	t.Helper()
	n, err := s.Size(t.Context(), name)
	if err != nil {
		t.Fatalf("Size(%q): %v", name, err)
	}
	return n
}

func wantSize(t *testing.T, s drivers.Store, name string, want int64) {
	t.Helper()
	if got := size(t, s, name); got != want {
		t.Errorf("Size(%q) = %d, want %d", name, got, want)
	}
}

func wantMissing(t *testing.T, s drivers.Store, name string) {
	t.Helper()
	if n, err := s.Size(t.Context(), name); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Size(%q) = %d, %v; want ErrNotFound", name, n, err)
	}
}

// wantBytes reports where got first differs from want.
func wantBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: got %d bytes, want %d", what, len(got), len(want))
		return
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	t.Errorf("%s: first difference at byte %d of %d: got %#x, want %#x", what, i, len(got), got[i], want[i])
}

func wantZeros(t *testing.T, what string, got []byte) {
	t.Helper()
	wantBytes(t, what, got, make([]byte, len(got)))
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	s := h.Open(t)
	cases := []struct {
		off int64
		n   int
	}{
		{0, 1}, {1, 1}, {4095, 1}, {4096, 1}, {0, 4095}, {1, 4095}, {0, 4097},
		{4095, 4097}, {4097, 4095}, {0, 4096}, {4096, 8192}, {511, 513},
		{objectSize - 1, 2}, {objectSize - 4095, 8191}, {objectSize - 100, 200},
		{0, objectSize}, {3, objectSize + 5}, {2*objectSize - 1, 1},
	}
	for i, c := range cases {
		name := fmt.Sprintf("roundtrip-%d-%d", c.off, c.n)
		data := pattern(uint64(i+1), c.n)
		write(t, s, name, data, c.off)
		wantSize(t, s, name, c.off+int64(c.n))
		wantBytes(t, name, read(t, s, name, c.n, c.off), data)
		if c.off > 0 {
			wantZeros(t, name+": hole before the data", read(t, s, name, int(c.off), 0))
		}
		wantZeros(t, name+": past the end", read(t, s, name, 4097, c.off+int64(c.n)))
		// One read straddling both edges of the data.
		lo := max(c.off-3, 0)
		got := read(t, s, name, int(c.off-lo)+c.n+5, lo)
		want := append(append(make([]byte, c.off-lo), data...), make([]byte, 5)...)
		wantBytes(t, name+": straddling read", got, want)
	}
}

// testRandomWrites checks a series of overlapping writes at odd offsets and
// sizes against a model of the object.
func testRandomWrites(t *testing.T, h Harness) {
	s := h.Open(t)
	r := rand.New(rand.NewPCG(7, 11))
	var model []byte
	for i := range 40 {
		off := r.Int64N(objectSize + 8192)
		n := 1 + r.IntN(70000)
		if i%5 == 0 {
			off = objectSize - int64(r.IntN(5000)) // straddle the object size
		}
		data := pattern(uint64(100+i), n)
		write(t, s, "random", data, off)
		if end := off + int64(n); end > int64(len(model)) {
			model = append(model, make([]byte, end-int64(len(model)))...)
		}
		copy(model[off:], data)
		if i%8 == 7 {
			wantSize(t, s, "random", int64(len(model)))
			wantBytes(t, fmt.Sprintf("after write %d", i), read(t, s, "random", len(model), 0), model)
		}
	}
}

func testZerosPastEnd(t *testing.T, h Harness) {
	s := h.Open(t)
	data := pattern(1, 10)
	write(t, s, "short", data, 0)
	got := read(t, s, "short", 100, 0)
	wantBytes(t, "data", got[:10], data)
	wantZeros(t, "past the end", got[10:])
	wantZeros(t, "far past the end", read(t, s, "short", 4096, 5000))
	wantZeros(t, "beyond the object size", read(t, s, "short", 3, 3*objectSize))
	wantSize(t, s, "short", 10) // reading past the end does not grow it
}

func testMissing(t *testing.T, h Harness) {
	s := h.Open(t)
	wantZeros(t, "missing object", read(t, s, "never-written", 8192, 0))
	wantZeros(t, "missing object at an offset", read(t, s, "never-written", 3, 4097))
	wantMissing(t, s, "never-written") // reading does not create it
	if err := s.Read(t.Context(), "never-written", nil, 0); err != nil {
		t.Errorf("empty Read of a missing object: %v", err)
	}
}

func testInvalidRange(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	wantErr(t, "Read at -1", s.Read(ctx, "x", make([]byte, 1), -1), drivers.ErrInvalidRange)
	wantErr(t, "Write at -1", s.Write(ctx, "x", []byte{1}, -1, 0), drivers.ErrInvalidRange)
	write(t, s, "src", []byte{1}, 0)
	wantErr(t, "Copy of size -1", s.Copy(ctx, "src", "dst", -1), drivers.ErrInvalidRange)
	wantMissing(t, s, "x")
	wantMissing(t, s, "dst")
}

func testDelete(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	write(t, s, "doomed", pattern(1, 8192), 0)
	if err := s.Delete(ctx, "doomed"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, s, "doomed")
	wantZeros(t, "deleted object", read(t, s, "doomed", 8192, 0))
	wantErr(t, "second Delete", s.Delete(ctx, "doomed"), drivers.ErrNotFound)
	wantErr(t, "third Delete", s.Delete(ctx, "doomed"), drivers.ErrNotFound)
	wantErr(t, "Delete of a never-written object", s.Delete(ctx, "never"), drivers.ErrNotFound)

	// A new object of the same name starts empty: nothing of the old one
	// (or of a cached handle to it) shows through.
	write(t, s, "doomed", []byte{7}, 0)
	wantSize(t, s, "doomed", 1)
	got := read(t, s, "doomed", 8192, 0)
	wantBytes(t, "recreated object", got[:1], []byte{7})
	wantZeros(t, "recreated object past its end", got[1:])

	// Deleting one object leaves its neighbours alone.
	write(t, s, "keep", pattern(2, 100), 0)
	if err := s.Delete(ctx, "doomed"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantBytes(t, "neighbour", read(t, s, "keep", 100, 0), pattern(2, 100))
}

func testCopy(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	src := pattern(1, 10000)
	write(t, s, "src", src, 0)
	copyTo := func(dst string, n int64) {
		t.Helper()
		if err := s.Copy(ctx, "src", dst, n); err != nil {
			t.Fatalf("Copy(src, %q, %d): %v", dst, n, err)
		}
	}

	copyTo("bigger", 20000)
	wantSize(t, s, "bigger", 20000)
	got := read(t, s, "bigger", 20000+4096, 0)
	wantBytes(t, "larger copy", got[:10000], src)
	wantZeros(t, "larger copy past the source's end", got[10000:])

	copyTo("smaller", 5000)
	wantSize(t, s, "smaller", 5000)
	got = read(t, s, "smaller", 8192, 0)
	wantBytes(t, "smaller copy", got[:5000], src[:5000])
	wantZeros(t, "smaller copy past its end", got[5000:])

	copyTo("empty", 0)
	wantSize(t, s, "empty", 0)

	copyTo("across", objectSize+1)
	wantSize(t, s, "across", objectSize+1)
	wantZeros(t, "copy across the object size", read(t, s, "across", 4096, objectSize-4095))

	// An existing destination is replaced, not overlaid.
	write(t, s, "replaced", pattern(2, 30000), 0)
	copyTo("replaced", 10000)
	wantSize(t, s, "replaced", 10000)
	got = read(t, s, "replaced", 30000, 0)
	wantBytes(t, "replaced destination", got[:10000], src)
	wantZeros(t, "replaced destination past its end", got[10000:])

	// Source and copy are independent afterwards.
	write(t, s, "bigger", []byte{1, 2, 3}, 0)
	wantBytes(t, "source after writing the copy", read(t, s, "src", 10000, 0), src)
	write(t, s, "src", []byte{9}, 0)
	wantBytes(t, "copy after writing the source", read(t, s, "smaller", 5000, 0), src[:5000])

	// Copying an object onto itself resizes it and keeps its prefix.
	write(t, s, "self", src, 0)
	if err := s.Copy(ctx, "self", "self", 4000); err != nil {
		t.Fatalf("Copy onto itself: %v", err)
	}
	wantSize(t, s, "self", 4000)
	wantBytes(t, "self copy", read(t, s, "self", 4000, 0), src[:4000])

	// A missing source fails and creates no destination.
	wantErr(t, "Copy from a missing source", s.Copy(ctx, "missing", "nodst", 100), drivers.ErrNotFound)
	wantMissing(t, s, "nodst")
}

func testWriteFlags(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	for i, flags := range []drivers.WriteFlags{drivers.WriteFUA, drivers.WriteFlush, drivers.WriteFUA | drivers.WriteFlush} {
		name := fmt.Sprintf("flags-%d", flags)
		data := pattern(uint64(i), 4097)
		write(t, s, "before-"+name, data, 1) // something for the barrier to cover
		if err := s.Write(ctx, name, data, 4095, flags); err != nil {
			t.Fatalf("Write with flags %d: %v", flags, err)
		}
		wantBytes(t, name, read(t, s, name, len(data), 4095), data)
		wantBytes(t, "before-"+name, read(t, s, "before-"+name, len(data), 1), data)
		wantSize(t, s, name, 4095+4097)
		// A durability-only write of nothing changes nothing.
		if err := s.Write(ctx, name, nil, 0, flags); err != nil {
			t.Fatalf("empty Write with flags %d: %v", flags, err)
		}
		wantSize(t, s, name, 4095+4097)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush with nothing to flush: %v", err)
	}
}

// testNames checks short names (the original filed refused names under six
// bytes), long ones and odd bytes, and that distinct names never share data.
func testNames(t *testing.T, h Harness) {
	s := h.Open(t)
	names := []string{
		"a", "ab", "abc", "abcd", "abcde", "A", "a ", " a", "a\n", "...", ".a", "-",
		"\xff\xfe", "名前", "vol_0000000000000001_0000000000000002",
		string(bytes.Repeat([]byte("n"), 200)),
	}
	for i, name := range names {
		write(t, s, name, pattern(uint64(i), 100+i), 0)
	}
	for i, name := range names {
		wantSize(t, s, name, int64(100+i))
		wantBytes(t, fmt.Sprintf("%q", name), read(t, s, name, 100+i, 0), pattern(uint64(i), 100+i))
	}
	for _, name := range names {
		if err := s.Delete(t.Context(), name); err != nil {
			t.Errorf("Delete(%q): %v", name, err)
		}
		wantMissing(t, s, name)
	}
}

func testHostileNames(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	write(t, s, "good", []byte{1}, 0)
	var before []string
	if h.Files != nil {
		before = h.Files(t, s)
	}
	hostile := []string{
		"", "/", ".", "..", "a/b", "../escape", "/etc/passwd", "a/", "/a",
		"x\x00y", "\x00", string(bytes.Repeat([]byte("a"), drivers.MaxNameLen+1)),
	}
	p := make([]byte, 16)
	for _, name := range hostile {
		calls := map[string]error{
			"Read":      s.Read(ctx, name, p, 0),
			"Write":     s.Write(ctx, name, p, 0, drivers.WriteFUA),
			"Delete":    s.Delete(ctx, name),
			"Copy from": s.Copy(ctx, name, "good-copy", 1),
			"Copy to":   s.Copy(ctx, "good", name, 1),
			"Lock":      s.Lock(ctx, name, "owner", drivers.LockTry),
			"Unlock":    s.Unlock(ctx, name, "owner", true),
		}
		_, calls["Size"] = s.Size(ctx, name)
		_, calls["LockOwner"] = s.LockOwner(ctx, name)
		_, calls["Hash"] = s.Hash(ctx, name)
		for call, err := range calls {
			wantErr(t, fmt.Sprintf("%s(%q)", call, name), err, drivers.ErrInvalidName)
		}
	}
	wantMissing(t, s, "good-copy")
	wantBytes(t, "good object", read(t, s, "good", 1, 0), []byte{1})
	if h.Files != nil {
		after := h.Files(t, s)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("calls with invalid names changed the backend:\nbefore %q\nafter  %q", before, after)
		}
	}
}

func testLock(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	if o, err := s.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("LockOwner of a free lock = %q, %v; want ErrNotFound", o, err)
	}
	wantErr(t, "Unlock of a free lock", s.Unlock(ctx, "vol", "A", false), drivers.ErrNotFound)
	wantErr(t, "forced Unlock of a free lock", s.Unlock(ctx, "vol", "A", true), drivers.ErrNotFound)

	if err := s.Lock(ctx, "vol", "A", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	wantOwner(t, s, "vol", "A")
	if err := s.Lock(ctx, "vol", "A", drivers.LockTry); err != nil {
		t.Errorf("re-Lock by the owner: %v", err)
	}
	if err := s.Lock(ctx, "vol", "A", drivers.LockWait); err != nil {
		t.Errorf("re-Lock by the owner, waiting: %v", err)
	}
	wantErr(t, "Lock by another owner", s.Lock(ctx, "vol", "B", drivers.LockTry), drivers.ErrLocked)
	wantErr(t, "Unlock by another owner", s.Unlock(ctx, "vol", "B", false), drivers.ErrNotOwner)
	wantOwner(t, s, "vol", "A")

	// Locks are independent of objects and of each other.
	wantMissing(t, s, "vol")
	write(t, s, "vol", []byte{1}, 0)
	if err := s.Delete(ctx, "vol"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantOwner(t, s, "vol", "A")
	if err := s.Lock(ctx, "vol2", "B", drivers.LockTry); err != nil {
		t.Errorf("Lock of another name: %v", err)
	}
	wantOwner(t, s, "vol2", "B")

	if err := s.Unlock(ctx, "vol", "A", false); err != nil {
		t.Fatalf("Unlock by the owner: %v", err)
	}
	if o, err := s.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("LockOwner after Unlock = %q, %v; want ErrNotFound", o, err)
	}
	wantErr(t, "second Unlock", s.Unlock(ctx, "vol", "A", false), drivers.ErrNotFound)
	if err := s.Lock(ctx, "vol", "B", drivers.LockTry); err != nil {
		t.Errorf("Lock of a released lock by another owner: %v", err)
	}
	wantOwner(t, s, "vol", "B")
	wantOwner(t, s, "vol2", "B")

	if h.OpenPeer != nil {
		peer := h.OpenPeer(t, s)
		wantOwner(t, peer, "vol", "B")
		wantErr(t, "Lock from a peer", peer.Lock(ctx, "vol", "C", drivers.LockTry), drivers.ErrLocked)
		wantErr(t, "Unlock from a peer", peer.Unlock(ctx, "vol", "C", false), drivers.ErrNotOwner)
		if err := peer.Lock(ctx, "vol", "B", drivers.LockTry); err != nil {
			t.Errorf("re-Lock by the owner from a peer: %v", err)
		}
		if err := peer.Unlock(ctx, "vol", "B", false); err != nil {
			t.Errorf("Unlock by the owner from a peer: %v", err)
		}
		if o, err := s.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
			t.Errorf("LockOwner after a peer's Unlock = %q, %v; want ErrNotFound", o, err)
		}
	}
}

func wantOwner(t *testing.T, s drivers.Store, name, want string) {
	t.Helper()
	if got, err := s.LockOwner(t.Context(), name); err != nil || got != want {
		t.Errorf("LockOwner(%q) = %q, %v; want %q", name, got, err, want)
	}
}

// peerOrSelf returns a peer store if the harness can open one.
func peerOrSelf(t *testing.T, h Harness, s drivers.Store) drivers.Store {
	if h.OpenPeer == nil {
		return s
	}
	return h.OpenPeer(t, s)
}

func testLockWait(t *testing.T, h Harness) {
	s := h.Open(t)
	peer := peerOrSelf(t, h, s)
	if err := s.Lock(t.Context(), "vol", "A", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}

	// A wait bounded by its context ends with the context's error.
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	start := time.Now()
	err := peer.Lock(ctx, "vol", "B", drivers.LockWait)
	cancel()
	wantErr(t, "LockWait on a held lock", err, context.DeadlineExceeded)
	if d := time.Since(start); d < 100*time.Millisecond || d > 10*time.Second {
		t.Errorf("LockWait with a 150 ms deadline returned after %v", d)
	}
	wantOwner(t, s, "vol", "A")

	// A wait ends once the holder releases.
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- peer.Lock(ctx, "vol", "B", drivers.LockWait) }()
	select {
	case err := <-done:
		t.Fatalf("LockWait returned %v while the lock was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.Unlock(t.Context(), "vol", "A", false); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("LockWait after release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockWait still blocked 10 s after the lock was released")
	}
	wantOwner(t, s, "vol", "B")
}

func testLockForce(t *testing.T, h Harness) {
	s := h.Open(t)
	peer := peerOrSelf(t, h, s)
	ctx := t.Context()
	if err := s.Lock(ctx, "vol", "A", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := peer.Unlock(ctx, "vol", "B", true); err != nil {
		t.Fatalf("forced Unlock by another owner: %v", err)
	}
	if o, err := s.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("LockOwner after a forced Unlock = %q, %v; want ErrNotFound", o, err)
	}
	if err := peer.Lock(ctx, "vol", "B", drivers.LockTry); err != nil {
		t.Fatalf("Lock after a forced Unlock: %v", err)
	}
	wantErr(t, "former owner's Lock", s.Lock(ctx, "vol", "A", drivers.LockTry), drivers.ErrLocked)
	wantErr(t, "former owner's Unlock", s.Unlock(ctx, "vol", "A", false), drivers.ErrNotOwner)
	wantOwner(t, s, "vol", "B")
}

// testLockRace has owners on two stores race for free locks: exactly one
// wins each.
func testLockRace(t *testing.T, h Harness) {
	s := h.Open(t)
	stores := []drivers.Store{s, peerOrSelf(t, h, s)}
	for round := range 5 {
		name := fmt.Sprintf("race-%d", round)
		errs := make(chan error, 8)
		for i := range cap(errs) {
			go func() {
				errs <- stores[i%2].Lock(t.Context(), name, fmt.Sprintf("owner-%d", i), drivers.LockTry)
			}()
		}
		won := 0
		for range cap(errs) {
			switch err := <-errs; {
			case err == nil:
				won++
			case !errors.Is(err, drivers.ErrLocked):
				t.Errorf("Lock(%q): %v", name, err)
			}
		}
		if won != 1 {
			t.Errorf("%d owners took lock %q, want 1", won, name)
		}
	}
}

// testLockMutualExclusion has waiting owners on two stores take turns: at
// no time do two hold the lock.
func testLockMutualExclusion(t *testing.T, h Harness) {
	s := h.Open(t)
	stores := []drivers.Store{s, peerOrSelf(t, h, s)}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const workers, turns = 4, 3
	var (
		mu      sync.Mutex
		holders int
		taken   int
	)
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			owner := fmt.Sprintf("owner-%d", i)
			st := stores[i%2]
			for range turns {
				if err := st.Lock(ctx, "vol", owner, drivers.LockWait); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				holders++
				taken++
				n := holders
				mu.Unlock()
				if n != 1 {
					errs <- fmt.Errorf("%d owners hold the lock", n)
					return
				}
				time.Sleep(2 * time.Millisecond)
				mu.Lock()
				holders--
				mu.Unlock()
				if err := st.Unlock(ctx, "vol", owner, false); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if taken != workers*turns {
		t.Errorf("the lock was taken %d times, want %d", taken, workers*turns)
	}
}
