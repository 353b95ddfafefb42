package file

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// viewStore returns a store that reads through views, or skips.
func viewStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t, Options{}, false)
	if !s.views {
		t.Skip("the file system of the test directory is not one the store maps")
	}
	return s
}

// heat reads n bytes of name at off until the view serves its pages.
func heat(t *testing.T, s *Store, name string, off int64, n int) {
	t.Helper()
	p := make([]byte, n)
	for range viewAfter {
		if err := s.Read(context.Background(), name, p, off); err != nil {
			t.Fatal(err)
		}
	}
	o, err := s.get(name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.release(o)
	if !o.view.serves(off, n) {
		t.Fatalf("pages at %d are not hot after %d reads", off, viewAfter)
	}
}

// TestViewReads: reads through the view see every write, of this store
// and of another one on the same directory, past the part of the file
// known when it was opened and past the mapping's end.
func TestViewReads(t *testing.T) {
	s := viewStore(t)
	other := openStore(t, s.Dir(), Options{Owner: "other"})
	ctx := context.Background()
	read := func(name string, n int, off int64) []byte {
		t.Helper()
		p := bytes.Repeat([]byte{0xee}, n)
		if err := s.Read(ctx, name, p, off); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := bytes.Repeat([]byte("a"), 8192)
	if err := s.Write(ctx, "obj", a, 0, 0); err != nil {
		t.Fatal(err)
	}
	heat(t, s, "obj", 0, 8192)
	if got := read("obj", 4096, 100); !bytes.Equal(got, a[:4096]) {
		t.Fatal("read of a write differs")
	}
	o, _ := s.get("obj", false)
	known := o.view.known.Load()
	s.release(o)
	if known != 8192 {
		t.Fatalf("view knows %d bytes of an 8192-byte file", known)
	}
	// Overwritten in place by this store, then grown by the other one.
	b := bytes.Repeat([]byte("b"), 1000)
	if err := s.Write(ctx, "obj", b, 50, 0); err != nil {
		t.Fatal(err)
	}
	if got := read("obj", 1100, 0); !bytes.Equal(got, append(append(a[:50:50], b...), a[:50]...)) {
		t.Error("read after an overwrite differs")
	}
	theirs := make([]byte, 1000)
	if err := other.Read(ctx, "obj", theirs, 50); err != nil || !bytes.Equal(theirs, b) {
		t.Errorf("another store reads the overwrite: %v, equal %v", err, bytes.Equal(theirs, b))
	}
	c := bytes.Repeat([]byte("c"), 3000)
	if err := other.Write(ctx, "obj", c, 10000, 0); err != nil {
		t.Fatal(err)
	}
	want := append(append(append(b[:50:50], bytes.Repeat([]byte("a"), 8192-1050)...), make([]byte, 10000-8192)...), c...)
	if got := read("obj", len(want), 1000); !bytes.Equal(got, want) {
		t.Error("read of what another store wrote past the known end differs")
	}
	heat(t, s, "obj", 1000, len(want))
	if got := read("obj", len(want), 1000); !bytes.Equal(got, want) {
		t.Error("read of what another store wrote, through the view, differs")
	}
	// Across the end of the mapping, and past the end of the file.
	big := bytes.Repeat([]byte("d"), 300)
	if err := s.Write(ctx, "obj", big, viewBytes-100, 0); err != nil {
		t.Fatal(err)
	}
	if got := read("obj", 400, viewBytes-100); !bytes.Equal(got, append(big, make([]byte, 100)...)) {
		t.Error("read across the mapping's end differs")
	}
}

// TestViewLargeIO: the view serves reads and writes of up to its whole
// size once their pages are hot, and what it writes is what another
// store reads by system call.
func TestViewLargeIO(t *testing.T) {
	s := viewStore(t)
	other := openStore(t, s.Dir(), Options{Owner: "other"})
	ctx := context.Background()
	whole := make([]byte, viewBytes)
	for i := range whole {
		whole[i] = byte(i * 7 / 4096)
	}
	if err := s.Write(ctx, "big", whole, 0, 0); err != nil {
		t.Fatal(err)
	}
	heat(t, s, "big", 1<<20, 1<<20) // fails unless 1 MiB requests may use the view
	heat(t, s, "big", 0, viewBytes)
	p := bytes.Repeat([]byte{1}, 1<<20)
	if err := s.Write(ctx, "big", p, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	copy(whole[1<<20:], p)
	got := make([]byte, viewBytes)
	if err := s.Read(ctx, "big", got, 0); err != nil || !bytes.Equal(got, whole) {
		t.Fatalf("4 MiB read through the view: %v, equal %v", err, bytes.Equal(got, whole))
	}
	theirs := make([]byte, 3<<20)
	if err := other.Read(ctx, "big", theirs, 512<<10); err != nil || !bytes.Equal(theirs, whole[512<<10:512<<10+3<<20]) {
		t.Fatalf("another store reads the 1 MiB written through the view: %v, equal %v", err, bytes.Equal(theirs, whole[512<<10:512<<10+3<<20]))
	}
}

// TestViewCools: a hot page stays hot while it is used, and one unused
// for longer than viewCool seconds goes back to system calls until it is
// hot again.
func TestViewCools(t *testing.T) {
	s := viewStore(t)
	ctx := context.Background()
	now := viewClock()
	defer func(clock func() uint32) { viewClock = clock }(viewClock)
	viewClock = func() uint32 { return now }
	if err := s.Write(ctx, "obj", bytes.Repeat([]byte("c"), 3*pageBytes), 0, 0); err != nil {
		t.Fatal(err)
	}
	heat(t, s, "obj", 0, 2*pageBytes)
	o, err := s.get("obj", false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.release(o)
	now += viewCool // used at the limit: still hot, and now used again
	if !o.view.serves(0, 2*pageBytes) {
		t.Fatalf("pages unused for %d s are cold", viewCool)
	}
	now += viewCool
	if !o.view.serves(pageBytes, pageBytes) {
		t.Fatalf("a page used %d s ago is cold", viewCool)
	}
	now++ // page 0 unused for viewCool+1 s, page 1 for 1 s
	for i := range viewAfter {
		if o.view.serves(0, pageBytes) {
			t.Fatalf("a page unused for %d s is hot again after %d accesses", viewCool+1, i)
		}
	}
	if !o.view.serves(pageBytes, pageBytes) || !o.view.serves(0, pageBytes) {
		t.Fatalf("pages are not served after %d accesses", viewAfter)
	}
	// The recorded seconds wrap: a page used just before stays hot after.
	now = pageTimeMask
	for range viewAfter {
		o.view.serves(0, pageBytes)
	}
	now += 2
	if !o.view.serves(0, pageBytes) {
		t.Fatal("a page used 2 s ago, across the wrap of the recorded seconds, is cold")
	}
}

// TestViewShrunkFile: a file truncated under its mapping by another
// program makes the view fault; the read recovers and reads zeros past
// the new end instead of crashing.
func TestViewShrunkFile(t *testing.T) {
	s := viewStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, "obj", bytes.Repeat([]byte("x"), 64<<10), 0, 0); err != nil {
		t.Fatal(err)
	}
	heat(t, s, "obj", 32<<10, 4096)
	p := make([]byte, 4096)
	if err := os.Truncate(objectPath(s.Dir(), "obj"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := s.Read(ctx, "obj", p, 32<<10); err != nil || !bytes.Equal(p, make([]byte, 4096)) {
		t.Errorf("read past the new end: %v, %q...", err, p[:4])
	}
	known := func() int64 {
		o, _ := s.get("obj", false)
		defer s.release(o)
		return o.view.known.Load()
	}
	if k := known(); k != 0 {
		t.Errorf("after the fault the view knows %d bytes, want 0", k)
	}
	if err := s.Read(ctx, "obj", p, 0); err != nil || !bytes.Equal(p, bytes.Repeat([]byte("x"), 4096)) {
		t.Errorf("read before the new end: %v, %q...", err, p[:4])
	}
	if k := known(); k != 4096 {
		t.Errorf("after a pread of the first 4096 bytes the view knows %d", k)
	}
}

// TestViewWriteNoSpace: a write through the view into a hole of a file on
// a full file system faults; the write recovers and fails with ENOSPC
// from pwrite instead of crashing. It needs root, for a small tmpfs.
func TestViewWriteNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount a 1 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	s := openStore(t, dir, Options{})
	if !s.views {
		t.Fatal("no views on tmpfs")
	}
	ctx := context.Background()
	// A sparse object: a page at 0 and one at 512 KiB; the view knows all
	// of it, the file system holds two pages.
	page := bytes.Repeat([]byte("p"), 4096)
	for _, off := range []int64{0, 512 << 10} {
		if err := s.Write(ctx, "sparse", page, off, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The hole at 256 KiB is hot, as reads make a hole hot where they
	// allocate nothing (ext4); on tmpfs only data turns hot.
	o, err := s.get("sparse", false)
	if err != nil {
		t.Fatal(err)
	}
	o.view.touches[(256<<10)/pageBytes].Store(viewClock()<<pageCountBits | viewAfter)
	s.release(o)
	// Fill the file system.
	big := bytes.Repeat([]byte("f"), 64<<10)
	for i := 0; ; i++ {
		if err := s.Write(ctx, "filler", big, int64(i)*int64(len(big)), 0); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	err = s.Write(ctx, "sparse", page, 256<<10, 0)
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("write into a hole of a full file system: %v, want ENOSPC", err)
	}
	if o, err := s.get("sparse", false); err == nil {
		if k := o.view.known.Load(); k != 0 {
			t.Errorf("the view knows %d bytes after the write: it did not fault", k)
		}
		s.release(o)
	}
	got := make([]byte, 4096)
	if err := s.Read(ctx, "sparse", got, 512<<10); err != nil || !bytes.Equal(got, page) {
		t.Errorf("read back: %v, %q...", err, got[:4])
	}
}

// TestViewHolesOnTmpfs: on tmpfs, where a read through a mapping would
// allocate a hole's page, a hole read many times stays a hole (and reads
// as zeros); a page of data read as often turns hot.
func TestViewHolesOnTmpfs(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "view-holes-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if maps, holesFill := mapsFiles(dir); !maps || !holesFill {
		t.Skip("/dev/shm is not tmpfs")
	}
	s := openStore(t, dir, Options{})
	ctx := context.Background()
	data := bytes.Repeat([]byte{7}, pageBytes)
	if err := s.Write(ctx, "thin", data, 1<<20, 0); err != nil { // 1 MiB of hole first
		t.Fatal(err)
	}
	p := make([]byte, pageBytes)
	for range 4 * viewAfter {
		for _, off := range []int64{0, 512 << 10, 1 << 20} {
			if err := s.Read(ctx, "thin", p, off); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, pageBytes)
			if off == 1<<20 {
				want = data
			}
			if !bytes.Equal(p, want) {
				t.Fatalf("read at %d: %d..., want %d...", off, p[0], want[0])
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(objectPath(s.Dir(), "thin"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 != pageBytes {
		t.Errorf("the object holds %d bytes after reads of its holes, want the %d written", st.Blocks*512, pageBytes)
	}
	o, err := s.get("thin", false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.release(o)
	if !o.view.serves(1<<20, pageBytes) {
		t.Error("the page of data is not hot")
	}
	if o.view.serves(0, pageBytes) {
		t.Error("a hole is hot")
	}
}
