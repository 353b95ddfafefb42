package file

import (
	"bytes"
	"context"
	"os"
	"testing"
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
	c := bytes.Repeat([]byte("c"), 3000)
	if err := other.Write(ctx, "obj", c, 10000, 0); err != nil {
		t.Fatal(err)
	}
	want := append(append(append(b[:50:50], bytes.Repeat([]byte("a"), 8192-1050)...), make([]byte, 10000-8192)...), c...)
	if got := read("obj", len(want), 1000); !bytes.Equal(got, want) {
		t.Error("read of what another store wrote past the known end differs")
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

// TestViewShrunkFile: a file truncated under its mapping by another
// program makes the view fault; the read recovers and reads zeros past
// the new end instead of crashing.
func TestViewShrunkFile(t *testing.T) {
	s := viewStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, "obj", bytes.Repeat([]byte("x"), 64<<10), 0, 0); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	if err := s.Read(ctx, "obj", p, 32<<10); err != nil || p[0] != 'x' {
		t.Fatalf("read: %v, %q", err, p[:1])
	}
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
