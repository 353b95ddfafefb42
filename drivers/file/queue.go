package file

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/internal/uring"
)

// Reads and writes go through an io_uring (internal/uring): a poller
// that has accepted a batch of requests submits their preads and pwrites
// with one system call, and those the page cache serves complete inside
// it. Served one system call each, the kernel entry and exit cost about
// as much as the 4 KiB copy on this project's machines.
const (
	// queueEntries bounds the operations in flight in one queue; more
	// are ErrNotQueued.
	queueEntries = 256
	// queueMaxIO is the largest read or write a queue takes: larger ones
	// copy long enough that a blocking call on a goroutine each serves
	// them better, on as many cores as there are.
	queueMaxIO = 64 << 10
	// futexTag marks the ring's wait on the poller's wake word.
	futexTag = ^uint64(0)
)

var _ drivers.AsyncStore = (*Store)(nil)

// queueSupport is what the queues of a store take, probed once.
type queueSupport struct {
	once          sync.Once
	reads, writes bool
	err           error
}

// QueueSupported reports whether NewQueue works for this store: nil, or
// an error wrapping uring.ErrNotSupported that says what is missing. A
// queue needs an io_uring with futex waits (Linux 6.7), and a file system
// that serves reads or writes without blocking when it can (RWF_NOWAIT):
// on one that does not (tmpfs), io_uring hands every operation to a
// kernel thread, which costs more than a system call each.
func (s *Store) QueueSupported() error {
	s.queueing.once.Do(s.probeQueue)
	return s.queueing.err
}

func (s *Store) probeQueue() {
	q := &s.queueing
	r, err := uring.New(1)
	if err != nil {
		q.err = err
		return
	}
	r.Close()
	fd, remove, err := createProbe(s.dir, ".nowait-probe", s.oflags)
	if err != nil {
		q.err = fmt.Errorf("probe %q for non-blocking I/O: %w", s.dir, err)
		return
	}
	defer remove()
	buf := alignedBuffer(directAlign)
	if err := pwriteFull(fd, buf, 0); err != nil {
		q.err = fmt.Errorf("probe %q for non-blocking I/O: %w", s.dir, err)
		return
	}
	q.reads, q.writes = nowaitIO(fd, buf)
	if !q.reads && !q.writes {
		q.err = fmt.Errorf("%w: the file system under %q serves neither reads nor writes without blocking (RWF_NOWAIT)", uring.ErrNotSupported, s.dir)
	}
}

// NewQueue returns a queue whose reads and writes go through an io_uring.
// It takes reads and writes of up to 64 KiB, without FUA or FLUSH, that
// the file system serves without blocking when it can (see
// QueueSupported), and on a direct-I/O store only aligned reads; others
// are ErrNotQueued. A read of hot pages copies through the object's view
// at once instead (view.go). It fails as QueueSupported does.
func (s *Store) NewQueue(wake *atomic.Uint32) (drivers.Queue, error) {
	if err := s.QueueSupported(); err != nil {
		return nil, fmt.Errorf("file store queue: %w", err)
	}
	r, err := uring.New(queueEntries)
	if err != nil {
		return nil, fmt.Errorf("file store queue: %w", err)
	}
	q := &queue{s: s, r: r, wake: wake, ops: make([]queuedOp, queueEntries), maxRead: queueMaxIO}
	for i := range q.ops {
		q.free = append(q.free, uint32(len(q.ops)-1-i))
	}
	if wake != nil {
		q.wakePin.Pin(wake)
	}
	return q, nil
}

// queue is the drivers.Queue of a Store.
type queue struct {
	s       *Store
	r       *uring.Ring
	wake    *atomic.Uint32
	wakePin runtime.Pinner // wake, should it be Go memory
	// bufPins pins the buffers of operations in the ring that are Go
	// memory (a peer's are in the segment, which it does not pin); all
	// are unpinned when the ring runs empty.
	bufPins runtime.Pinner

	maxRead  int                 // the largest read taken (TakeLargeReads)
	ops      []queuedOp          // by tag
	free     []uint32            // tags not in use
	inRing   int                 // operations handed to the ring and not reaped
	waitSet  bool                // the ring holds a wait on wake
	finished drivers.Completions // operations that completed without the ring
	reaped   []uring.Completion
}

// queuedOp is an operation in the ring.
type queuedOp struct {
	o     *object
	p     []byte
	off   int64
	write bool
	done  func(error)
}

// TakeLargeReads makes the queue take reads of any size, for a poller
// that would otherwise make them on its own goroutine (vlmcd's loop): the
// ring copies a read the page cache holds during the submit, as pread
// would, and goes on with one it misses without blocking the poller.
func (q *queue) TakeLargeReads() { q.maxRead = math.MaxInt }

func (q *queue) StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error {
	if !q.s.queueing.reads || len(p) > q.maxRead || (q.s.direct && !isAligned(p, off)) || len(q.free) == 0 {
		return drivers.ErrNotQueued
	}
	if err := q.s.check(ctx, name, off, len(p)); err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	o, err := q.s.get(name, false)
	if err == unix.ENOENT || (err == nil && len(p) == 0) {
		if o != nil {
			q.s.release(o)
		}
		clear(p)
		q.finished.Add(done, nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	if o.view.read(p, off) {
		q.s.release(o)
		q.finished.Add(done, nil)
		return nil
	}
	q.add(queuedOp{o: o, p: p, off: off, done: done})
	return nil
}

func (q *queue) StartWrite(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags, done func(error)) error {
	if !q.s.queueing.writes || len(p) > queueMaxIO || len(p) == 0 || flags != 0 || q.s.direct || len(q.free) == 0 {
		return drivers.ErrNotQueued
	}
	if err := q.s.check(ctx, name, off, len(p)); err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	o, err := q.s.get(name, true)
	if err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	q.add(queuedOp{o: o, p: p, off: off, write: true, done: done})
	return nil
}

// add prepares op in the ring; it is submitted by the next Poll.
func (q *queue) add(op queuedOp) {
	tag := q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	q.ops[tag] = op
	qo := &q.ops[tag]
	if len(qo.p) > 0 {
		q.bufPins.Pin(&qo.p[0])
	}
	for {
		var ok bool
		if qo.write {
			ok = q.r.Write(qo.o.fd, qo.p, qo.off, uint64(tag))
		} else {
			ok = q.r.Read(qo.o.fd, qo.p, qo.off, uint64(tag))
		}
		if ok {
			break
		}
		q.submit() // the submission ring is full: make room
	}
	q.inRing++
}

func (q *queue) Ready() bool {
	return q.r.Ready() || q.r.Prepared() > 0 || q.finished.Ready()
}

// submit hands the prepared operations to the kernel. A failure is left
// for the next Poll to retry: the operations stay prepared.
func (q *queue) submit() {
	if q.r.Prepared() > 0 {
		q.r.Submit()
	}
}

func (q *queue) Poll() int {
	q.submit()
	n := 0
	// A done may start an operation that completes at once: run those too.
	for k := q.finished.Run(); k > 0; k = q.finished.Run() {
		n += k
	}
	q.reaped = q.r.Reap(q.reaped[:0])
	for _, c := range q.reaped {
		if c.Tag == futexTag {
			q.waitSet = false
			continue
		}
		q.complete(uint32(c.Tag), c.Result)
		n++
	}
	if q.inRing == 0 && n > 0 {
		q.bufPins.Unpin()
	}
	return n
}

// complete ends the operation tagged tag with the ring's result res,
// finishing a short transfer with blocking calls.
func (q *queue) complete(tag uint32, res int32) {
	op := q.ops[tag]
	q.ops[tag] = queuedOp{}
	q.free = append(q.free, tag)
	q.inRing--
	var err error
	switch errno := syscall.Errno(-res); {
	case res < 0 && (errno == unix.EINTR || errno == unix.EAGAIN):
		err = q.finishShort(op, 0, false) // do it all with a blocking call
	case res < 0:
		err = errno
	case int(res) < len(op.p):
		err = q.finishShort(op, int(res), res == 0)
	}
	if op.write {
		op.o.written.Add(1)
	}
	switch {
	case op.write && err == nil:
		op.o.view.grow(op.off + int64(len(op.p)))
	case !op.write && res > 0:
		op.o.view.grow(op.off + int64(res))
	}
	q.s.release(op.o)
	if err != nil {
		verb := "read"
		if op.write {
			verb = "write"
		}
		err = fmt.Errorf("%s %q at %d: %w", verb, op.o.name, op.off, err)
	}
	op.done(err)
}

// finishShort transfers what the ring left of op after its first n bytes:
// for a read, what the file holds of it and zeros after. A read of nothing
// (res 0) was at the end of the file, as is one that stopped at an
// unaligned count with direct I/O.
func (q *queue) finishShort(op queuedOp, n int, atEnd bool) error {
	if op.write {
		return pwriteFull(op.o.fd, op.p[n:], op.off+int64(n))
	}
	if !atEnd && (!q.s.direct || n%directAlign == 0) {
		m, err := preadFull(op.o.fd, op.p[n:], op.off+int64(n), q.s.direct)
		if err != nil {
			return err
		}
		n += m
	}
	clear(op.p[n:])
	return nil
}

func (q *queue) Sleep(timeout time.Duration) bool {
	if q.inRing == 0 || q.wake == nil {
		return false
	}
	if !q.waitSet {
		q.waitSet = q.r.FutexWait(q.wake, 1, futexTag)
	}
	q.r.SubmitAndWait(timeout)
	return true
}

func (q *queue) Close() {
	for q.Poll(); q.inRing > 0 || q.finished.Ready(); q.Poll() {
		q.r.SubmitAndWait(10 * time.Millisecond)
	}
	q.r.Close()
	q.bufPins.Unpin()
	q.wakePin.Unpin()
}
