//go:build ceph

package rados

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
	"github.com/archipelago-go/archipelago/drivers/drivertest"
)

// newQueue returns a driver of a new queue of s, closed when the test ends.
func newQueue(t testing.TB, s *Store) *drivertest.QueueDriver { return drivertest.NewQueueDriver(t, s) }

// TestConformanceAsync runs the shared driver suite with every Read and
// Write on the asynchronous path.
func TestConformanceAsync(t *testing.T) {
	needCluster(t)
	drivertest.RunQueued(t, drivertest.Harness{
		Open: func(t *testing.T) drivers.Store { return openStore(t, "host-a") },
		OpenPeer: func(t *testing.T, first drivers.Store) drivers.Store {
			return openPeer(t, first.(*Store), "host-b")
		},
		Files: func(t *testing.T, s drivers.Store) []string { return listObjects(t, s.(*Store)) },
	})
}

// TestQueueWakes: a completion wakes the queue's poller from its futex
// sleep, at once rather than at the end of the sleep.
func TestQueueWakes(t *testing.T) {
	s := openStore(t, "host-a")
	q := newQueue(t, s)
	ctx := context.Background()
	data := pattern(4096, 2)
	start := time.Now()
	for i := range 20 {
		if _, err := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, fmt.Sprintf("w%d", i), data, 0, 0, done) }); err != nil {
			t.Fatal(err)
		}
	}
	if q.Timeouts > 0 || q.Sleeps == 0 {
		t.Errorf("20 writes: %d sleeps ended by a completion, %d by the 1 s timeout (%v in all)", q.Sleeps, q.Timeouts, time.Since(start))
	}
}

func TestAsyncReadWrite(t *testing.T) {
	s := openStore(t, "host-a")
	q := newQueue(t, s)
	ctx := context.Background()
	data := pattern(10000, 1)
	if _, err := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "obj", data, 4093, drivers.WriteFUA, done) }); err != nil {
		t.Fatalf("StartWrite: %v", err)
	}
	// Across the start, the data and past the end, into a dirty buffer.
	got := pattern(20000, 9)
	if _, err := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "obj", got, 4000, done) }); err != nil {
		t.Fatalf("StartRead: %v", err)
	}
	want := make([]byte, 20000)
	copy(want[93:], data)
	if !bytes.Equal(got, want) {
		t.Error("read back differs")
	}
	// Wholly past the end, and a missing object: zeros.
	for _, tc := range []struct {
		name string
		off  int64
	}{{"obj", 1 << 20}, {"missing", 0}} {
		got := pattern(4096, 3)
		if _, err := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, tc.name, got, tc.off, done) }); err != nil {
			t.Fatalf("StartRead %s at %d: %v", tc.name, tc.off, err)
		}
		if !bytes.Equal(got, make([]byte, 4096)) {
			t.Errorf("%s at %d: not zeros", tc.name, tc.off)
		}
	}
	// A write of nothing succeeds and creates nothing.
	if _, err := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "empty", nil, 0, drivers.WriteFlush, done) }); err != nil {
		t.Fatalf("empty StartWrite: %v", err)
	}
	if _, err := s.Size(ctx, "empty"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("empty write created an object: %v", err)
	}
}

// TestAsyncLarge: requests over the 32 MiB a librados call takes are split
// (on the synchronous path) and still round-trip.
func TestAsyncLarge(t *testing.T) {
	s := openStore(t, "host-a")
	q := newQueue(t, s)
	ctx := context.Background()
	data := pattern(maxIOBytes+5000, 4)
	if _, err := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "big", data, 100, 0, done) }); err != nil {
		t.Fatalf("StartWrite: %v", err)
	}
	got := make([]byte, len(data)+100)
	if _, err := q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "big", got, 0, done) }); err != nil {
		t.Fatalf("StartRead: %v", err)
	}
	if !bytes.Equal(got[:100], make([]byte, 100)) || !bytes.Equal(got[100:], data) {
		t.Error("read back differs")
	}
	if err := s.Delete(ctx, "big"); err != nil {
		t.Fatal(err)
	}
}

// TestAsyncErrors: invalid requests, a closed store and an ended context
// are refused at once (done never runs); an error the OSD returns comes
// through done with its errno.
func TestAsyncErrors(t *testing.T) {
	s := openStore(t, "host-a")
	q := newQueue(t, s)
	ctx := context.Background()
	buf := make([]byte, 16)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		what  string
		start func(done func(error)) error
		want  error
	}{
		{"read bad name", func(done func(error)) error { return q.StartRead(ctx, "a/b", buf, 0, done) }, drivers.ErrInvalidName},
		{"write bad name", func(done func(error)) error { return q.StartWrite(ctx, "", buf, 0, 0, done) }, drivers.ErrInvalidName},
		{"read negative offset", func(done func(error)) error { return q.StartRead(ctx, "x", buf, -1, done) }, drivers.ErrInvalidRange},
		{"write negative offset", func(done func(error)) error { return q.StartWrite(ctx, "x", buf, -1, 0, done) }, drivers.ErrInvalidRange},
		{"cancelled", func(done func(error)) error { return q.StartWrite(cancelled, "x", buf, 0, 0, done) }, context.Canceled},
	} {
		startErr, _ := q.Start(t, tc.start)
		if !errors.Is(startErr, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, startErr, tc.want)
		}
	}
	// Past the OSD's largest object (osd_max_object_size, 128 MiB).
	startErr, doneErr := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "huge", buf, 1<<40, 0, done) })
	if startErr != nil || !errors.Is(doneErr, syscall.EFBIG) {
		t.Errorf("write at 1 TiB: start %v, done %v; want done EFBIG", startErr, doneErr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	startErr, _ = q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "x", buf, 0, done) })
	if !errors.Is(startErr, ErrClosed) {
		t.Errorf("StartRead after Close: %v, want ErrClosed", startErr)
	}
}

// TestAsyncClose: a queue's Close waits until every operation in flight
// has run its done; the store closes after it.
func TestAsyncClose(t *testing.T) {
	needCluster(t)
	s, err := Open(Config{ConfFile: testConf, Pool: testPool, Namespace: freshNamespace(t), Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	var word atomic.Uint32
	q, err := s.NewQueue(&word)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var doneCount, failed int
	data := pattern(4096, 5)
	for i := range n {
		err := q.StartWrite(context.Background(), fmt.Sprintf("o%d", i), data, 0, 0, func(err error) {
			if err != nil {
				failed++
			}
			doneCount++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	if doneCount != n || failed != 0 {
		t.Fatalf("after Close: %d of %d done, %d failed", doneCount, n, failed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAsyncDeadCluster: operations in flight, and started, on a cluster
// that died end with ETIMEDOUT within the configured timeout.
func TestAsyncDeadCluster(t *testing.T) {
	const timeout = 2 * time.Second
	s, _, kill := doomedStore(t, timeout)
	ctx := context.Background()
	var queues []*drivertest.QueueDriver
	for range 8 {
		queues = append(queues, newQueue(t, s))
	}
	q := queues[0]
	if _, err := q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "x", []byte("alive"), 0, 0, done) }); err != nil {
		t.Fatalf("write while alive: %v", err)
	}
	kill()
	var wg sync.WaitGroup
	for i := range 8 {
		q := queues[i]
		wg.Go(func() {
			start := time.Now()
			var startErr, doneErr error
			if i%2 == 0 {
				startErr, doneErr = q.Start(t, func(done func(error)) error { return q.StartWrite(ctx, "x", []byte("dead"), 0, 0, done) })
			} else {
				startErr, doneErr = q.Start(t, func(done func(error)) error { return q.StartRead(ctx, "x", make([]byte, 5), 0, done) })
			}
			took := time.Since(start)
			if startErr != nil || !errors.Is(doneErr, syscall.ETIMEDOUT) {
				t.Errorf("op %d on a dead cluster: start %v, done %v; want done ETIMEDOUT", i, startErr, doneErr)
			}
			if took > timeout+3*time.Second {
				t.Errorf("op %d on a dead cluster took %v, timeout %v", i, took, timeout)
			}
		})
	}
	wg.Wait()
	// Close does not hang on what timed out.
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("Close hangs on a dead cluster")
	}
}
