package file

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/drivertest"
	"github.com/archipelago-go/archipelago/internal/uring"
)

// newQueue returns a driver of a new queue of s; it skips the test where
// the store can have none.
func newQueue(t testing.TB, s *Store) *drivertest.QueueDriver {
	t.Helper()
	if err := s.QueueSupported(); errors.Is(err, uring.ErrNotSupported) {
		t.Skip(err)
	}
	return drivertest.NewQueueDriver(t, s)
}

// TestConformanceQueued runs the shared driver suite with every Read and
// Write that a queue takes on the queue.
func TestConformanceQueued(t *testing.T) {
	if err := newStore(t, Options{}, false).QueueSupported(); err != nil {
		t.Skip(err)
	}
	t.Run("Default", func(t *testing.T) { drivertest.RunQueued(t, harness(Options{}, false)) })
	t.Run("DirectIO", func(t *testing.T) { drivertest.RunQueued(t, harness(Options{DirectIO: true, FDCache: 4}, false)) })
}

func TestQueueReadWrite(t *testing.T) {
	s := newStore(t, Options{}, false)
	q := newQueue(t, s)
	ctx := context.Background()
	data := bytes.Repeat([]byte("queued!"), 1000)[:5000]
	if err := s.Write(ctx, "obj", data, 100, 0); err != nil {
		t.Fatal(err)
	}
	// A batch: every read started before one Poll submits them all.
	got := make([][]byte, 8)
	ran := 0
	for i := range got {
		got[i] = make([]byte, 1000)
		if err := q.StartRead(ctx, "obj", got[i], int64(i*1000), func(err error) {
			if err != nil {
				t.Errorf("read %d: %v", i, err)
			}
			ran++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.WaitUntil(func() bool { return ran == len(got) }, time.Second); err != nil {
		t.Fatal(err)
	}
	want := append(make([]byte, 100), data...)
	want = append(want, make([]byte, 8000-len(want))...)
	if all := bytes.Join(got, nil); !bytes.Equal(all, want) {
		t.Errorf("batched reads differ from what was written (zeros past the end of the object)")
	}
	// A missing object reads as zeros; a bad name fails at the start.
	p := bytes.Repeat([]byte{1}, 100)
	if serr, derr := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "missing", p, 0, done) }); serr != nil || derr != nil || !bytes.Equal(p, make([]byte, 100)) {
		t.Errorf("read of a missing object: start %v, done %v, data %v...", serr, derr, p[:4])
	}
	if serr, _ := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "a/b", p, 0, done) }); !errors.Is(serr, drivers.ErrInvalidName) {
		t.Errorf("read of a/b: start %v, want ErrInvalidName", serr)
	}
	// Large requests and durable writes are left to the store.
	big := make([]byte, queueMaxIO+1)
	if serr, _ := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "obj", big, 0, done) }); !errors.Is(serr, drivers.ErrNotQueued) {
		t.Errorf("read of %d bytes: start %v, want ErrNotQueued", len(big), serr)
	}
	if serr, _ := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "obj", data, 0, drivers.WriteFUA, done) }); !errors.Is(serr, drivers.ErrNotQueued) {
		t.Errorf("FUA write: start %v, want ErrNotQueued", serr)
	}
	if s.queueing.writes {
		if serr, derr := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "new", data, 3, 0, done) }); serr != nil || derr != nil {
			t.Fatalf("write: start %v, done %v", serr, derr)
		}
		back := make([]byte, len(data)+3)
		if err := s.Read(ctx, "new", back, 0); err != nil || !bytes.Equal(back[3:], data) {
			t.Errorf("queued write read back: %v, equal %v", err, bytes.Equal(back[3:], data))
		}
	}
}

// TestQueueHotRead: a queued read of hot pages copies through the view at
// once and never enters the ring.
func TestQueueHotRead(t *testing.T) {
	s := newStore(t, Options{}, false)
	q := newQueue(t, s)
	if !s.views {
		t.Skip("the file system of the test directory is not one the store maps")
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("hot page"), 2*pageBytes/8)
	if err := s.Write(ctx, "obj", data, 0, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)-100)
	for i := range viewAfter + 1 {
		clear(got)
		if serr, derr := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "obj", got, 100, done) }); serr != nil || derr != nil {
			t.Fatalf("read %d: start %v, done %v", i, serr, derr)
		}
		if !bytes.Equal(got, data[100:]) {
			t.Fatalf("read %d: wrong data", i)
		}
	}
	ran := false
	if err := q.StartRead(ctx, "obj", got, 100, func(err error) { ran = err == nil }); err != nil {
		t.Fatal(err)
	}
	if in := q.Queue.(*queue).inRing; in != 0 {
		t.Errorf("a read of hot pages went into the ring (%d in flight)", in)
	}
	if q.Poll(); !ran {
		t.Error("a read of hot pages did not complete at the next Poll")
	}
}

// TestQueueColdRead reads a file the page cache does not hold: the reads
// complete after the submission, and each must end the poller's sleep at
// once, not at its limit.
func TestQueueColdRead(t *testing.T) {
	s := newStore(t, Options{}, false)
	q := newQueue(t, s)
	ctx := context.Background()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := s.Write(ctx, "cold", data, 0, drivers.WriteFUA); err != nil {
		t.Fatal(err)
	}
	o, err := s.get("cold", false)
	if err != nil {
		t.Fatal(err)
	}
	unix.Fadvise(o.fd, 0, 0, unix.FADV_DONTNEED)
	s.release(o)
	got := make([]byte, 64<<10)
	for off := 0; off < len(data); off += len(got) {
		if serr, derr := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "cold", got, int64(off), done) }); serr != nil || derr != nil {
			t.Fatalf("read at %d: start %v, done %v", off, serr, derr)
		}
		if !bytes.Equal(got, data[off:][:len(got)]) {
			t.Fatalf("read at %d: wrong data", off)
		}
	}
	if q.Timeouts > 0 {
		t.Errorf("%d sleeps ran to their 1 s limit (%d ended by a completion)", q.Timeouts, q.Sleeps)
	}
	t.Logf("%d sleeps ended by a completion", q.Sleeps)
}

// TestQueueSleepWakes: with an operation in flight the poller sleeps in
// the ring, and a wake of its word (a new request) still ends the sleep.
func TestQueueSleepWakes(t *testing.T) {
	s := newStore(t, Options{}, false)
	q := newQueue(t, s)
	// A read of a FIFO stays in flight until something is written to it.
	path := objectPath(s.Dir(), "fifo")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	var readErr error
	ran := false
	if err := q.StartRead(context.Background(), "fifo", p, 0, func(err error) { readErr, ran = err, true }); err != nil {
		t.Fatal(err)
	}
	q.Poll()
	if ran {
		t.Fatalf("a read of an empty FIFO completed: %v", readErr)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		if q.Word.Load() == 1 && q.Word.CompareAndSwap(1, 0) {
			unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&q.Word)), 1 /* FUTEX_WAKE */, 1<<31-1, 0, 0, 0)
		}
	}()
	begin := time.Now()
	q.SleepOnce(5 * time.Second)
	if waited := time.Since(begin); waited > 2*time.Second {
		t.Errorf("a wake of the word ended the sleep after %v", waited)
	}
	fifo, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	fifo.Write([]byte("fifo"))
	if err := q.WaitUntil(func() bool { return ran }, time.Second); err != nil {
		t.Fatal(err)
	}
	if readErr != nil || string(p) != "fifo" || q.Timeouts > 0 {
		t.Errorf("read of the FIFO: %v, %q; %d sleeps ran out", readErr, p, q.Timeouts)
	}
}

// TestQueueNotOnTmpfs: a file system that blocks every read and write
// (tmpfs) gets no queue.
func TestQueueNotOnTmpfs(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	if _, err := uring.New(1); err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("/dev/shm", "queue-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := openStore(t, dir, Options{})
	if err := s.QueueSupported(); !errors.Is(err, uring.ErrNotSupported) {
		t.Errorf("QueueSupported on tmpfs: %v, want ErrNotSupported", err)
	}
	if _, err := s.NewQueue(nil); !errors.Is(err, uring.ErrNotSupported) {
		t.Errorf("NewQueue on tmpfs: %v, want ErrNotSupported", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the probe left %d files behind", len(entries))
	}
}
