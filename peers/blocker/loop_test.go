package blocker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/xseg"
)

// asyncStats counts what went through an asyncStore's asynchronous path.
type asyncStats struct {
	reads, writes atomic.Int64
	// running counts operations started and not yet completed; peak is
	// its highest value.
	running, peak atomic.Int64
}

// asyncStore gives a store an asynchronous path: each StartRead or
// StartWrite of its queues runs the synchronous call on a goroutine of its
// own, after delay, and queues done with its result, or err when set.
type asyncStore struct {
	drivers.Store
	stats *asyncStats
	delay time.Duration
	err   error
	// refuse makes Start fail at once with this error.
	refuse error
}

func (s *asyncStore) NewQueue(wake *atomic.Uint32) (drivers.Queue, error) {
	return &asyncQueue{s: s, wake: wake}, nil
}

// asyncQueue is asyncStore's drivers.Queue.
type asyncQueue struct {
	s        *asyncStore
	wake     *atomic.Uint32
	inflight sync.WaitGroup
	done     drivers.Completions
}

func (q *asyncQueue) StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error {
	if q.s.refuse != nil {
		return q.s.refuse
	}
	q.s.stats.reads.Add(1)
	q.run(done, func() error { return q.s.Read(ctx, name, p, off) })
	return nil
}

func (q *asyncQueue) StartWrite(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags, done func(error)) error {
	if q.s.refuse != nil {
		return q.s.refuse
	}
	q.s.stats.writes.Add(1)
	q.run(done, func() error { return q.s.Write(ctx, name, p, off, flags) })
	return nil
}

// run runs op on a goroutine after the store's delay, queues done with
// its result and wakes the poller.
func (q *asyncQueue) run(done func(error), op func() error) {
	q.inflight.Add(1)
	stats := q.s.stats
	n := stats.running.Add(1)
	for p := stats.peak.Load(); n > p && !stats.peak.CompareAndSwap(p, n); p = stats.peak.Load() {
	}
	go func() {
		defer q.inflight.Done()
		time.Sleep(q.s.delay)
		err := q.s.err
		if err == nil {
			err = op()
		}
		stats.running.Add(-1)
		q.done.Add(done, err)
		xseg.Wake(q.wake)
	}()
}

func (q *asyncQueue) Ready() bool { return q.done.Ready() }

func (q *asyncQueue) Poll() int { return q.done.Run() }

func (q *asyncQueue) Close() {
	q.inflight.Wait()
	q.Poll()
}

// TestLoop runs this package's request tests through Blocker.Loop over a
// store with an asynchronous path: same replies, and READ and WRITE took
// that path.
func TestLoop(t *testing.T) {
	stats := &asyncStats{}
	serveWithLoop = stats
	defer func() { serveWithLoop = nil }()
	for name, test := range map[string]func(*testing.T){
		"ReadWrite":          TestReadWrite,
		"InfoDeleteCopyHash": TestInfoDeleteCopyHash,
		"Locks":              TestLocks,
		"StopCancelsLock":    TestStopCancelsLockWait,
		"HostileInput":       TestHostileInput,
		"List":               TestList,
		"ListBadInput":       TestListBadInput,
	} {
		t.Run(name, test)
	}
	if stats.reads.Load() == 0 || stats.writes.Load() == 0 {
		t.Errorf("asynchronous path: %d reads, %d writes, want some of each", stats.reads.Load(), stats.writes.Load())
	}
}

// loopHost starts Blocker.Loop on port 1 over store and returns a client
// and a function that stops it (draining) and reports how long that took.
func loopHost(t *testing.T, store drivers.Store) (*peertest.Client, func() time.Duration) {
	t.Helper()
	seg, _ := peertest.Segment(t)
	b, err := blocker.New(store, blocker.Options{Owner: "host_1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.(drivers.AsyncStore); !ok {
		t.Fatal("the store has no asynchronous path")
	}
	p, err := seg.Bind(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		b.Loop(4, nil)(ctx, []*xseg.Port{p})
		b.Close()
		p.Release()
		close(done)
	}()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			<-done
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return peertest.NewClient(t, seg, 1), stop
}

func openFile(t *testing.T) drivers.Store {
	t.Helper()
	store, err := file.Open(t.TempDir(), file.Options{Owner: "host_1"})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// TestLoopErrors: a completion's error and a refused start reach the
// client with their errnos, and the peer stays up.
func TestLoopErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		done, start error
		want        syscall.Errno
	}{
		{"timeout", fmt.Errorf("rados read: %w", syscall.ETIMEDOUT), nil, syscall.ETIMEDOUT},
		{"backend", errors.New("disk on fire"), nil, syscall.EIO},
		{"refused", nil, errors.New("store closed"), syscall.EIO},
		{"refused range", nil, drivers.ErrInvalidRange, syscall.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := loopHost(t, &asyncStore{Store: openFile(t), stats: &asyncStats{}, err: tc.done, refuse: tc.start})
			data := pattern(4096, 1)
			wantErr(t, "write", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Size: 4096, Data: data}), tc.want)
			wantErr(t, "read", c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "obj", Size: 4096}), tc.want)
			wantErr(t, "still up", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "obj", DataLen: 8}), syscall.ENOENT)
		})
	}
}

// TestLoopInflight: more requests than Loop's in-flight bound all complete
// (the rest wait queued), reads see the writes, and a drain waits for the
// completions still due.
func TestLoopInflight(t *testing.T) {
	const delay = 50 * time.Millisecond
	stats := &asyncStats{}
	c, stop := loopHost(t, &asyncStore{Store: openFile(t), stats: stats, delay: delay})
	const n = 12 // three times the bound of 4
	for i := range n {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpWrite, Target: fmt.Sprintf("o%d", i), Size: 512, Data: pattern(512, byte(i))}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for range n {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
		wantErr(t, "write", rep, nil)
	}
	// 12 writes of 50 ms, 4 at a time: about 150 ms; one at a time would
	// take 600 ms.
	if d := time.Since(start); d > 12*delay {
		t.Errorf("12 writes took %v: not 4 in flight", d)
	}
	if p := stats.peak.Load(); p != 4 {
		t.Errorf("%d operations in flight at most, want the bound of 4", p)
	}
	for i := range n {
		rep := c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: fmt.Sprintf("o%d", i), Size: 512})
		if !bytes.Equal(rep.Data, pattern(512, byte(i))) {
			t.Errorf("o%d: read back differs", i)
		}
	}
	// A drain answers what it accepted.
	for i := range 3 {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpWrite, Target: fmt.Sprintf("late%d", i), Size: 512, Data: pattern(512, 7)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(delay / 5)
	if took := stop(); took < delay/2 {
		t.Errorf("drain took %v, before the completions due", took)
	}
	for range 3 {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
		wantErr(t, "write during drain", rep, nil)
	}
	if got := stats.writes.Load(); got != n+3 {
		t.Errorf("%d writes took the asynchronous path, want %d", got, n+3)
	}
}

// stuckStore's Size of "stuck" waits until release is closed.
type stuckStore struct {
	*asyncStore
	entered chan struct{}
	release chan struct{}
}

func (s *stuckStore) Size(ctx context.Context, name string) (int64, error) {
	if name == "stuck" {
		close(s.entered)
		<-s.release
	}
	return s.asyncStore.Size(ctx, name)
}

// TestLoopHandsOffSlowRequest: a request served on the port's goroutine
// that lasts (an INFO stuck in the store) is handed off; reads and writes
// keep being served, through the queue, until it returns.
func TestLoopHandsOffSlowRequest(t *testing.T) {
	stats := &asyncStats{}
	store := &stuckStore{asyncStore: &asyncStore{Store: openFile(t), stats: stats}, entered: make(chan struct{}), release: make(chan struct{})}
	c, stop := loopHost(t, store)
	stuck, err := c.Submit(peertest.Req{Op: xseg.OpInfo, Target: "stuck", DataLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	<-store.entered
	served := make(chan struct{})
	go func() {
		defer close(served)
		for i := range 8 {
			data := pattern(4096, byte(i))
			wantErr(t, "write", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Offset: uint64(i) * 4096, Size: 4096, Data: data}), nil)
			rep := c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "obj", Offset: uint64(i) * 4096, Size: 4096})
			wantErr(t, "read", rep, nil)
			if !bytes.Equal(rep.Data, data) {
				t.Errorf("block %d: read back differs", i)
			}
		}
	}()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		close(store.release)
		<-served
		t.Fatal("reads and writes waited behind the stuck INFO")
	}
	if stats.reads.Load() != 8 || stats.writes.Load() != 8 {
		t.Errorf("%d reads and %d writes through the queue, want 8 and 8", stats.reads.Load(), stats.writes.Load())
	}
	close(store.release)
	rep, r, err := c.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if r.Index() != stuck.Index() {
		t.Fatalf("reply to request %d, want the stuck INFO (%d)", r.Index(), stuck.Index())
	}
	c.Port.Put(r)
	wantErr(t, "stuck info", rep, syscall.ENOENT)
	// The new leader serves on, and drains.
	wantErr(t, "info", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "obj", DataLen: 8}), nil)
	stop()
}
