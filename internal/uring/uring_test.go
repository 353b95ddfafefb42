package uring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries)
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitAll submits and reaps until n completions came in.
func waitAll(t *testing.T, r *Ring, n int) map[uint64]int32 {
	t.Helper()
	got := map[uint64]int32{}
	var c []Completion
	for deadline := time.Now().Add(5 * time.Second); len(got) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d completions after 5 s", len(got), n)
		}
		if err := r.SubmitAndWait(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		c = r.Reap(c[:0])
		for _, e := range c {
			if _, dup := got[e.Tag]; dup {
				t.Fatalf("tag %d completed twice", e.Tag)
			}
			got[e.Tag] = e.Result
		}
	}
	return got
}

func TestReadWriteBatch(t *testing.T) {
	r := newRing(t, 8)
	f := tempFile(t)
	fd := int(f.Fd())
	const n, size = 8, 4096
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
		if !r.Write(fd, bufs[i], int64(i*size+100), uint64(i)) {
			t.Fatalf("write %d: ring full", i)
		}
	}
	if r.Write(fd, bufs[0], 0, 99) {
		t.Fatal("a ring of 8 took a ninth operation")
	}
	if r.Prepared() != n {
		t.Fatalf("prepared %d, want %d", r.Prepared(), n)
	}
	for tag, res := range waitAll(t, r, n) {
		if res != size {
			t.Errorf("write %d: result %d, want %d", tag, res, size)
		}
	}
	if r.Prepared() != 0 {
		t.Fatalf("prepared %d after submitting", r.Prepared())
	}
	want, _ := os.ReadFile(f.Name())
	got := make([][]byte, n+1)
	for i := range got {
		got[i] = make([]byte, size)
		if i < n && !r.Read(fd, got[i], int64(i*size+100), uint64(i)) {
			t.Fatalf("read %d: ring full", i)
		}
	}
	for tag, res := range waitAll(t, r, n) {
		if res != size || !bytes.Equal(got[tag], want[tag*size+100:][:size]) || got[tag][0] != byte('a'+tag) {
			t.Errorf("read %d: result %d, data %q...", tag, res, got[tag][:4])
		}
	}
	// Past the end: a short read, then nothing.
	if !r.Read(fd, got[n], int64(n*size+100-10), 1) || !r.Read(fd, got[n][:10], 1<<20, 2) {
		t.Fatal("ring full")
	}
	res := waitAll(t, r, 2)
	if res[1] != 10 || res[2] != 0 {
		t.Errorf("reads at the end: %d and %d bytes, want 10 and 0", res[1], res[2])
	}
	if !r.Read(-1, got[0], 0, 3) {
		t.Fatal("ring full")
	}
	if res := waitAll(t, r, 1); res[3] != -int32(unix.EBADF) {
		t.Errorf("read of a bad fd: result %d, want -EBADF", res[3])
	}
}

func futexWake(word *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), 1 /* FUTEX_WAKE */, 1<<31-1, 0, 0, 0)
}

func TestFutexWait(t *testing.T) {
	r := newRing(t, 4)
	word := new(atomic.Uint32)
	word.Store(1)
	if !r.FutexWait(word, 1, 7) {
		t.Fatal("ring full")
	}
	begin := time.Now()
	if err := r.SubmitAndWait(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r.Ready() {
		t.Fatal("a wait on an unchanged word completed")
	}
	if waited := time.Since(begin); waited < 40*time.Millisecond {
		t.Errorf("SubmitAndWait returned after %v, before its 50 ms timeout", waited)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		word.Store(0)
		futexWake(word)
	}()
	res := waitAll(t, r, 1)
	if res[7] != 0 {
		t.Errorf("woken wait: result %d, want 0", res[7])
	}
	// A word that no longer holds the value: at once.
	if !r.FutexWait(word, 1, 8) {
		t.Fatal("ring full")
	}
	if res := waitAll(t, r, 1); res[8] != -eagain {
		t.Errorf("wait on a changed word: result %d, want -EAGAIN", res[8])
	}
}

func BenchmarkRead4K(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(map[int]string{1: "batch1", 16: "batch16"}[batch], func(b *testing.B) {
			r, err := New(64)
			if err != nil {
				b.Skip(err)
			}
			defer r.Close()
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			f.Write(make([]byte, 1<<20))
			buf := make([]byte, 4096*batch)
			var c []Completion
			for i := 0; b.Loop(); i++ {
				if i%batch != 0 {
					continue
				}
				for j := range batch {
					r.Read(int(f.Fd()), buf[j*4096:][:4096], int64((i+j)%256)*4096, uint64(j))
				}
				r.Submit()
				for c = r.Reap(c[:0]); len(c) < batch; c = r.Reap(c) {
					r.SubmitAndWait(0)
				}
			}
		})
	}
}
