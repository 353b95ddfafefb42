package drivertest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
)

// QueueDriver drives a drivers.Queue as a blocker port does: it polls,
// and in between sleeps on the queue's wake word, or through the queue's
// Sleep when the queue is a drivers.Sleeper that takes the sleep.
type QueueDriver struct {
	drivers.Queue
	Word atomic.Uint32
	// Sleeps counts sleeps ended before their limit, Timeouts those that
	// ran out.
	Sleeps, Timeouts int
}

// NewQueueDriver returns a driver of a new queue of s, closed when the
// test ends.
func NewQueueDriver(t testing.TB, s drivers.AsyncStore) *QueueDriver {
	t.Helper()
	d := &QueueDriver{}
	q, err := s.NewQueue(&d.Word)
	if err != nil {
		t.Fatal(err)
	}
	d.Queue = q
	t.Cleanup(q.Close)
	return d
}

// SleepOnce sleeps once as a port would, for at most limit.
func (d *QueueDriver) SleepOnce(limit time.Duration) {
	d.Word.Store(1)
	if d.Ready() {
		d.Word.Store(0)
		return
	}
	begin := time.Now()
	if s, ok := d.Queue.(drivers.Sleeper); !ok || !s.Sleep(limit) {
		ts := unix.NsecToTimespec(int64(limit))
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&d.Word)), 0 /* FUTEX_WAIT */, 1, uintptr(unsafe.Pointer(&ts)), 0, 0)
	}
	d.Word.Store(0)
	if time.Since(begin) >= limit {
		d.Timeouts++
	} else {
		d.Sleeps++
	}
}

// WaitUntil polls until cond holds, sleeping for at most limit at a time;
// it gives up after a minute.
func (d *QueueDriver) WaitUntil(cond func() bool, limit time.Duration) error {
	deadline := time.Now().Add(time.Minute)
	for d.Poll(); !cond(); d.Poll() {
		if time.Now().After(deadline) {
			return errors.New("no completion came in a minute")
		}
		d.SleepOnce(limit)
	}
	return nil
}

// Start calls begin (a StartRead or StartWrite with the done it is given)
// and waits for done. It returns the start's error, or done's; it fails
// the test if done runs for a start that failed, or runs other than once.
func (d *QueueDriver) Start(t *testing.T, begin func(done func(error)) error) (startErr, doneErr error) {
	t.Helper()
	ran := 0
	if err := begin(func(err error) { doneErr = err; ran++ }); err != nil {
		time.Sleep(10 * time.Millisecond)
		if d.Poll(); ran != 0 {
			t.Error("done ran for a start that failed")
		}
		return err, nil
	}
	if err := d.WaitUntil(func() bool { return ran > 0 }, time.Second); err != nil {
		t.Fatal(err)
	}
	if d.Poll(); ran != 1 {
		t.Errorf("done ran %d times", ran)
	}
	return nil, doneErr
}

// Queued is a store whose Read and Write go through a queue of their own
// when the queue takes them (else through the store), so that the
// conformance suite, which calls from many goroutines at once, checks the
// asynchronous path. Calls counts the operations queues took.
type Queued struct {
	drivers.AsyncStore
	Calls atomic.Int64
}

// through runs start on a new queue and waits for the done it was given;
// false when the queue did not take the operation.
func (s *Queued) through(start func(q drivers.Queue, done func(error)) error) (bool, error) {
	var d QueueDriver
	q, err := s.NewQueue(&d.Word)
	if err != nil {
		return false, err
	}
	defer q.Close()
	d.Queue = q
	var result error
	ran := false
	err = start(q, func(err error) { result, ran = err, true })
	if errors.Is(err, drivers.ErrNotQueued) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	s.Calls.Add(1)
	if err := d.WaitUntil(func() bool { return ran }, time.Second); err != nil {
		return true, err
	}
	return true, result
}

func (s *Queued) Read(ctx context.Context, name string, p []byte, off int64) error {
	ok, err := s.through(func(q drivers.Queue, done func(error)) error { return q.StartRead(ctx, name, p, off, done) })
	if !ok && err == nil {
		return s.AsyncStore.Read(ctx, name, p, off)
	}
	return err
}

func (s *Queued) Write(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags) error {
	ok, err := s.through(func(q drivers.Queue, done func(error)) error { return q.StartWrite(ctx, name, p, off, flags, done) })
	if !ok && err == nil {
		return s.AsyncStore.Write(ctx, name, p, off, flags)
	}
	return err
}

// RunQueued runs the suite (Run) on the stores h opens, which must be
// drivers.AsyncStores, with every Read and Write that their queues take
// on a queue (Queued); it fails if no call went through one.
func RunQueued(t *testing.T, h Harness) {
	var stores []*Queued
	queued := func(s drivers.Store) drivers.Store {
		q := &Queued{AsyncStore: s.(drivers.AsyncStore)}
		stores = append(stores, q)
		return q
	}
	inner := func(s drivers.Store) drivers.Store { return s.(*Queued).AsyncStore }
	open, openPeer, files := h.Open, h.OpenPeer, h.Files
	h.Open = func(t *testing.T) drivers.Store { return queued(open(t)) }
	if openPeer != nil {
		h.OpenPeer = func(t *testing.T, first drivers.Store) drivers.Store { return queued(openPeer(t, inner(first))) }
	}
	if files != nil {
		h.Files = func(t *testing.T, s drivers.Store) []string { return files(t, inner(s)) }
	}
	Run(t, h)
	var calls int64
	for _, s := range stores {
		calls += s.Calls.Load()
	}
	if calls == 0 {
		t.Error("the suite made no call through a queue")
	}
}
