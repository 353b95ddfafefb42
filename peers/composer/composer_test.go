package composer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

const (
	volSize   = 64 << 20
	blockSize = 4 << 20
)

// fakeMapper maps block i of a volume to object "<vol>.<i>"; a block is
// the zero block until a MAPW touched it. It counts the requests it gets.
type fakeMapper struct {
	mu      sync.Mutex
	written map[string]bool
	calls   map[xseg.Op]int
}

func (m *fakeMapper) serve(p *xseg.Port, r xseg.Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[r.Op()]++
	switch r.Op() {
	case xseg.OpInfo:
		binary.LittleEndian.PutUint64(r.Data(), volSize)
		binary.LittleEndian.PutUint64(r.Data()[8:], blockSize)
		return nil
	case xseg.OpMapRead, xseg.OpMapWrite:
		var segs []protocol.Segment
		off, left := r.Offset(), r.Size()
		if off+left > volSize {
			return syscall.EINVAL
		}
		for left > 0 {
			i, in := off/blockSize, off%blockSize
			n := min(left, blockSize-in)
			obj := fmt.Sprintf("%s.%d", r.TargetString(), i)
			if r.Op() == xseg.OpMapWrite {
				m.written[obj] = true
			}
			s := protocol.Segment{Object: obj, Offset: in, Size: n}
			if !m.written[obj] {
				s.Flags = protocol.SegmentZero
			}
			segs = append(segs, s)
			off += n
			left -= n
		}
		return protocol.EncodeMap(r.Data(), segs)
	case xseg.OpSnapshot:
		for k := range m.written { // the snapshot shares them: read-only now
			delete(m.written, k)
		}
		return nil
	}
	return syscall.EOPNOTSUPP
}

func (m *fakeMapper) count(op xseg.Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// fakeBlocker keeps objects in memory.
type fakeBlocker struct {
	mu      sync.Mutex
	objects map[string][]byte
	ops     map[xseg.Op]int
}

func (b *fakeBlocker) serve(p *xseg.Port, r xseg.Request) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops[r.Op()]++
	if r.Size() == 0 {
		return nil // a flush
	}
	obj := b.objects[r.TargetString()]
	if need := int(r.Offset() + r.Size()); len(obj) < need {
		obj = append(obj, make([]byte, need-len(obj))...)
		b.objects[r.TargetString()] = obj
	}
	switch r.Op() {
	case xseg.OpRead:
		copy(r.Data(), obj[r.Offset():])
	case xseg.OpWrite:
		copy(obj[r.Offset():], r.Data())
	default:
		return syscall.EOPNOTSUPP
	}
	r.SetServiced(r.Size())
	return nil
}

func (b *fakeBlocker) count(op xseg.Op) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ops[op]
}

func servePort(t *testing.T, p *xseg.Port, f func(*xseg.Port, xseg.Request) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !p.Interrupted() {
			p.Wait(0)
			for {
				r, ok := p.Accept()
				if !ok {
					break
				}
				p.Respond(r, f(p, r))
			}
		}
	}()
	t.Cleanup(func() { p.Interrupt(); <-done })
}

type rig struct {
	client *xseg.Port
	mapper *fakeMapper
	store  *fakeBlocker
	seg    *xseg.Segment
}

func newRig(t *testing.T) *rig { return newRigWith(t, nil) }

// newInlineRig is a rig whose composer does object I/O itself, in a
// drivers/file store of its own.
func newInlineRig(t *testing.T) *rig {
	st, err := file.Open(t.TempDir(), file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newRigWith(t, st)
}

// newRigWith is newRig with the composer doing object I/O through data
// (SetData) when it is not nil.
func newRigWith(t *testing.T, data drivers.Store) *rig {
	opts := xseg.Options{Dir: t.TempDir()}
	if err := xseg.Create("c", xseg.Geometry{Ports: 8, StaticPorts: 4, Requests: 1024, BufferBytes: 64 << 20}, opts); err != nil {
		t.Fatal(err)
	}
	seg, err := xseg.Join("c", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Leave() })
	vp, _ := seg.Bind(1)
	mp, _ := seg.Bind(2)
	bp, _ := seg.Bind(3)
	rg := &rig{seg: seg,
		mapper: &fakeMapper{written: map[string]bool{}, calls: map[xseg.Op]int{}},
		store:  &fakeBlocker{objects: map[string][]byte{}, ops: map[xseg.Op]int{}},
	}
	servePort(t, mp, rg.mapper.serve)
	servePort(t, bp, rg.store.serve)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c := New(vp, 2, 3, nil)
	if data != nil {
		c.SetData(data)
	}
	go func() { defer close(done); c.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rg.client, _ = seg.BindDynamic()
	return rg
}

// ranges sends op on vol for every range (offs[i], sizes[i]) at once, a
// WRITE carrying model's bytes there, waits for every reply, and checks
// that a READ returns model's bytes.
func (rg *rig) ranges(t *testing.T, op xseg.Op, vol string, model []byte, offs, sizes []uint64) {
	t.Helper()
	var reqs []xseg.Request
	for i, off := range offs {
		r, err := rg.client.Get()
		if err == nil {
			err = r.Prepare(op, vol, sizes[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		if op == xseg.OpWrite {
			copy(r.Data(), model[off:off+sizes[i]])
		}
		r.SetOffset(off)
		r.SetSize(sizes[i])
		r.SetPriv(uint64(i))
		reqs = append(reqs, r)
	}
	for _, r := range reqs {
		if err := rg.client.Submit(r, 1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for got := 0; got < len(reqs); {
		rg.client.Wait(time.Second)
		rep, ok := rg.client.Receive()
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("%v: %d of %d replies", op, got, len(reqs))
			}
			continue
		}
		got++
		i := rep.Priv()
		if err := rep.Err(); err != nil {
			t.Fatalf("%v %d: %v", op, i, err)
		}
		if off, size := offs[i], sizes[i]; op == xseg.OpRead && !bytes.Equal(rep.Data()[:size], model[off:off+size]) {
			t.Errorf("read %d (%d bytes at %d) differs from what was written", i, size, off)
		}
		rg.client.Put(rep)
	}
}

// do sends one request to vlmcd and waits for its reply.
func (rg *rig) do(t *testing.T, op xseg.Op, vol string, off uint64, data []byte, size uint64, flags xseg.Flags) ([]byte, error) {
	t.Helper()
	r, err := rg.client.Get()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Prepare(op, vol, size); err != nil {
		t.Fatal(err)
	}
	copy(r.Data(), data)
	r.SetOffset(off)
	r.SetSize(size)
	r.SetFlags(flags)
	if err := rg.client.Submit(r, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rg.client.Wait(time.Second)
		if rep, ok := rg.client.Receive(); ok {
			out := bytes.Clone(rep.Data())
			err := rep.Err()
			rg.client.Put(rep)
			return out, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v %s: no reply", op, vol)
		}
	}
}

func TestReadWriteAcrossObjects(t *testing.T) {
	rg := newRig(t)
	model := make([]byte, volSize)
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 40; i++ {
		off := uint64(rnd.Intn(volSize - 9<<20))
		n := uint64(1 + rnd.Intn(9<<20))
		if i%3 == 0 { // straddle an object boundary
			off = uint64(rnd.Intn(15)+1)*blockSize - uint64(rnd.Intn(4096)) - 1
			n = uint64(rnd.Intn(8192) + 2)
		}
		data := make([]byte, n)
		rnd.Read(data)
		if _, err := rg.do(t, xseg.OpWrite, "vol", off, data, n, 0); err != nil {
			t.Fatalf("write %d at %d: %v", n, off, err)
		}
		copy(model[off:], data)
	}
	for off := uint64(0); off < volSize; off += 3 << 20 {
		n := min(uint64(5<<20), volSize-off)
		got, err := rg.do(t, xseg.OpRead, "vol", off, nil, n, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model[off:off+n]) {
			t.Fatalf("read at %d differs from what was written", off)
		}
	}
	if _, err := rg.do(t, xseg.OpRead, "vol", volSize-10, nil, 11, 0); err != syscall.EINVAL {
		t.Fatalf("read past the end: %v, want EINVAL", err)
	}
}

func TestZerosCacheAndBarriers(t *testing.T) {
	rg := newRig(t)
	got, err := rg.do(t, xseg.OpRead, "v", 5<<20, nil, 8192, 0)
	if err != nil || !bytes.Equal(got, make([]byte, 8192)) {
		t.Fatalf("never-written read: %v", err)
	}
	if rg.store.count(xseg.OpRead) != 0 {
		t.Fatal("a never-written block was read from storage")
	}
	for i := 0; i < 10; i++ {
		rg.do(t, xseg.OpWrite, "v", uint64(i)*4096, []byte{byte(i + 1)}, 4096, xseg.FlagFUA)
	}
	if n := rg.mapper.count(xseg.OpMapWrite); n != 1 {
		t.Fatalf("%d MAPW for 10 writes to one block: the mapping was not cached", n)
	}
	if _, err := rg.do(t, xseg.OpFlush, "v", 0, nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := rg.do(t, xseg.OpSnapshot, "v", 0, nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	rg.do(t, xseg.OpWrite, "v", 0, []byte{9}, 4096, 0)
	if n := rg.mapper.count(xseg.OpMapWrite); n != 2 {
		t.Fatalf("%d MAPW: a write after SNAPSHOT did not ask the mapper again", n)
	}
	got, _ = rg.do(t, xseg.OpRead, "v", 4096, nil, 1, 0)
	if got[0] != 2 {
		t.Fatalf("read back %d, want 2", got[0])
	}
	if rep := rg.seg.Report(false); rep.FreeRequests != 1024 {
		t.Fatalf("%d free slots after the test, want 1024", rep.FreeRequests)
	}
}

// TestManyInFlight keeps 64 volume writes in flight on 4 volumes, then
// checks every byte.
func TestManyInFlight(t *testing.T) {
	rg := newRig(t)
	const depth, total = 64, 2000
	c := rg.client
	sent, done := 0, 0
	submit := func() {
		r, _ := c.Get()
		r.Prepare(xseg.OpWrite, fmt.Sprintf("v%d", sent%4), 4096)
		binary.LittleEndian.PutUint64(r.Data(), uint64(sent))
		r.SetOffset(uint64(sent/4) * 4096)
		r.SetSize(4096)
		if err := c.Submit(r, 1); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	for sent < depth {
		submit()
	}
	for done < total {
		c.Wait(time.Second)
		for {
			r, ok := c.Receive()
			if !ok {
				break
			}
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			c.Put(r)
			done++
			if sent < total {
				submit()
			}
		}
	}
	for i := 0; i < total; i += 97 {
		got, err := rg.do(t, xseg.OpRead, fmt.Sprintf("v%d", i%4), uint64(i/4)*4096, nil, 8, 0)
		if err != nil || binary.LittleEndian.Uint64(got) != uint64(i) {
			t.Fatalf("write %d reads back %d (%v)", i, binary.LittleEndian.Uint64(got), err)
		}
	}
}

// A READ or WRITE whose blocks are cached, done by the composer itself,
// allocates nothing in vlmcd (nor in the client's few calls here).
func TestCachedInlineIOAllocatesNothing(t *testing.T) {
	rg := newInlineRig(t)
	block := bytes.Repeat([]byte{7}, 4096)
	if _, err := rg.do(t, xseg.OpWrite, "vol", 4096, block, 4096, 0); err != nil {
		t.Fatal(err)
	}
	for _, op := range []xseg.Op{xseg.OpRead, xseg.OpWrite} {
		r, _ := rg.client.Get()
		if err := r.Prepare(op, "vol", 4096); err != nil {
			t.Fatal(err)
		}
		one := func() {
			r.SetOffset(4096)
			r.SetSize(4096)
			r.SetFlags(0)
			if err := rg.client.Submit(r, 1); err != nil {
				t.Fatal(err)
			}
			for {
				rg.client.Wait(time.Second)
				if rep, ok := rg.client.Receive(); ok {
					if err := rep.Err(); err != nil {
						t.Fatal(err)
					}
					r = rep
					return
				}
			}
		}
		one()
		if n := testing.AllocsPerRun(200, one); n != 0 {
			t.Errorf("%v of a cached block: %v allocations per request", op, n)
		}
		if !bytes.Equal(r.Data()[:4096], block) {
			t.Errorf("%v: data differs", op)
		}
		rg.client.Put(r)
	}
}

// Large requests done by the composer itself, many at once and across
// objects, read back what was written.
func TestLargeInlineIO(t *testing.T) {
	rg := newInlineRig(t)
	const n, size = 12, 1<<20 + 12345
	model := make([]byte, volSize)
	rand.New(rand.NewSource(1)).Read(model)
	offset := func(i int) uint64 { return uint64(i)*(volSize/n) + blockSize - size/2 } // across a block
	var offs, sizes []uint64
	for i := range n {
		offs, sizes = append(offs, offset(i)), append(sizes, size)
	}
	many := func(op xseg.Op) { rg.ranges(t, op, "big", model, offs, sizes) }
	many(xseg.OpWrite)
	if _, err := rg.do(t, xseg.OpFlush, "big", 0, nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	many(xseg.OpRead)
}

// countingStore counts the operations its queues take.
type countingStore struct {
	*file.Store
	started atomic.Int64
}

func (s *countingStore) NewQueue(wake *atomic.Uint32) (drivers.Queue, error) {
	q, err := s.Store.NewQueue(wake)
	if err != nil {
		return nil, err
	}
	return &countingQueue{Queue: q, s: s}, nil
}

type countingQueue struct {
	drivers.Queue
	s *countingStore
}

func (q *countingQueue) StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error {
	err := q.Queue.StartRead(ctx, name, p, off, done)
	if err == nil {
		q.s.started.Add(1)
	}
	return err
}

func (q *countingQueue) StartWrite(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags, done func(error)) error {
	err := q.Queue.StartWrite(ctx, name, p, off, flags, done)
	if err == nil {
		q.s.started.Add(1)
	}
	return err
}

func (q *countingQueue) Sleep(timeout time.Duration) bool {
	return q.Queue.(drivers.Sleeper).Sleep(timeout)
}

func (q *countingQueue) TakeLargeReads() { q.Queue.(largeReads).TakeLargeReads() }

// queuedStore is a file store whose queue works here and counts what it
// takes, or skips.
func queuedStore(t *testing.T) *countingStore {
	st, err := file.Open(t.TempDir(), file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.QueueSupported(); err != nil {
		t.Skip(err)
	}
	return &countingStore{Store: st}
}

// TestLargeReadsQueued: reads of 1 MiB and more go through the queue too
// (the loop would wait there for a cold page cache), and read back what
// was written.
func TestLargeReadsQueued(t *testing.T) {
	cs := queuedStore(t)
	rg := newRigWith(t, cs)
	model := make([]byte, volSize)
	rand.New(rand.NewSource(3)).Read(model)
	offs, sizes := []uint64{0, 3 << 20, 9<<20 + 4096}, []uint64{1 << 20, 2<<20 + 777, 1 << 20}
	rg.ranges(t, xseg.OpWrite, "large", model, offs, sizes)
	before := cs.started.Load()
	rg.ranges(t, xseg.OpRead, "large", model, offs, sizes)
	// Each read spans one or two objects: at least one queued read each.
	if got := cs.started.Load() - before; got < int64(len(offs)) {
		t.Errorf("%d data store reads through the queue for %d large reads", got, len(offs))
	}
}

// Small requests, many at once, across blocks and of blocks never
// written, through the data store's queue where it has one: every reply
// carries what was written.
func TestQueuedInlineIO(t *testing.T) {
	cs := queuedStore(t)
	rg := newRigWith(t, cs)
	const n = 64
	offset := func(i int) uint64 { return uint64(i)*(volSize/n) + 1<<20 - 1000 - uint64(i/60)*(1<<20) } // across a block every fourth
	size := func(i int) uint64 { return uint64(512 + i*997%60000) }
	// What is written, in the first half of the volume; the rest reads
	// zeros.
	model := make([]byte, volSize)
	rnd := rand.New(rand.NewSource(2))
	var offs, sizes, writeOffs, writeSizes []uint64
	for i := range n {
		offs, sizes = append(offs, offset(i)), append(sizes, size(i))
		if offset(i)+size(i) <= volSize/2 {
			rnd.Read(model[offset(i):][:size(i)])
			writeOffs, writeSizes = append(writeOffs, offset(i)), append(writeSizes, size(i))
		}
	}
	rg.ranges(t, xseg.OpWrite, "small", model, writeOffs, writeSizes)
	rg.ranges(t, xseg.OpRead, "small", model, offs, sizes)
	if cs.started.Load() == 0 {
		t.Error("no data store operation went through the queue")
	}
}

// syncStallingStore is a file store whose syncs (Flush, and writes with
// FUA or FLUSH) wait until release is closed; entered is closed when the
// first one starts.
type syncStallingStore struct {
	*file.Store
	once             sync.Once
	entered, release chan struct{}
}

func (s *syncStallingStore) stall() {
	s.once.Do(func() { close(s.entered) })
	<-s.release
}

func (s *syncStallingStore) Flush(ctx context.Context) error {
	s.stall()
	return s.Store.Flush(ctx)
}

func (s *syncStallingStore) Write(ctx context.Context, name string, p []byte, off int64, flags drivers.WriteFlags) error {
	if flags != 0 {
		s.stall()
	}
	return s.Store.Write(ctx, name, p, off, flags)
}

// TestSyncsDoNotStallOtherVolumes: while a FLUSH of one volume and a FUA
// write of another wait on the disk, reads and writes of a third are
// served; the syncs complete afterwards.
func TestSyncsDoNotStallOtherVolumes(t *testing.T) {
	st, err := file.Open(t.TempDir(), file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ss := &syncStallingStore{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	rg := newRigWith(t, ss)
	var released sync.Once
	release := func() { released.Do(func() { close(ss.release) }) }
	t.Cleanup(release) // before the rig's cleanup stops the composer
	rg.do(t, xseg.OpWrite, "a", 0, []byte{1}, 4096, 0)
	send := func(op xseg.Op, vol string, size uint64, flags xseg.Flags) {
		r, err := rg.client.Get()
		if err == nil {
			err = r.Prepare(op, vol, size)
		}
		if err != nil {
			t.Fatal(err)
		}
		r.SetSize(size)
		r.SetFlags(flags)
		if err := rg.client.Submit(r, 1); err != nil {
			t.Fatal(err)
		}
	}
	send(xseg.OpFlush, "a", 0, 0)
	send(xseg.OpWrite, "b", 4096, xseg.FlagFUA)
	select {
	case <-ss.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync started")
	}
	served := make(chan error, 1)
	go func() {
		for i := range 8 {
			if _, err := rg.do(t, xseg.OpWrite, "c", uint64(i)*4096, []byte{byte(i + 1)}, 4096, 0); err != nil {
				served <- err
				return
			}
			got, err := rg.do(t, xseg.OpRead, "c", uint64(i)*4096, nil, 1, 0)
			if err == nil && got[0] != byte(i+1) {
				err = fmt.Errorf("read back %d, want %d", got[0], i+1)
			}
			if err != nil {
				served <- err
				return
			}
		}
		served <- nil
	}()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second): // before do gives up
		release()
		t.Fatal("volume c's I/O waited for the syncs of a and b")
	}
	release()
	for range 2 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			rg.client.Wait(time.Second)
			if rep, ok := rg.client.Receive(); ok {
				if err := rep.Err(); err != nil {
					t.Errorf("%v %s: %v", rep.Op(), rep.TargetString(), err)
				}
				rg.client.Put(rep)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the syncs did not complete")
			}
		}
	}
}
