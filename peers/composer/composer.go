// Package composer owns vlmcd's work: it turns volume I/O into object I/O.
// A READ or WRITE of a volume range is mapped to the objects that hold it
// (asking mapperd with MAPR/MAPW, or from the mappings it already has) and
// split into one sub-request per object, sent to the data blocker in
// parallel. Sub-requests borrow the volume request's data buffer
// (xseg.Request.PrepareChild): no byte is copied.
//
// The composer runs as one event loop on one port: it accepts requests and
// receives the replies to its own sub-requests on the same port, so a
// request never waits for a goroutine to be scheduled.
//
// Mappings are cached per volume. Every operation that changes a volume's
// map passes through the composer (MAPW copy-ups, and SNAPSHOT, CLOSE,
// DELETE, TRUNCATE, RENAME, DISCARD, which it forwards to mapperd after the
// volume's in-flight I/O drained, dropping the cache when they complete),
// and one host writes a volume at a time (the mapper's volume lock), so a
// cached mapping is never stale. Never-written blocks read as zeros
// without touching storage.
//
// FLUSH (and a zero-size WRITE with FLUSH or FUA) is a barrier: it holds
// new I/O of the volume, waits for the I/O in flight, makes the blocker
// sync, then lets the held I/O go. FUA on a write passes down to its
// sub-requests.
//
// With a data store (SetData: the directory of the host's filed, opened by
// vlmcd itself), object READ and WRITE are done in the event loop with
// pread and pwrite into the volume request's buffer instead of going to the
// blocker: one process less on the data path, which on a host with fewer
// cores than busy peers is most of a small request's latency. Where the
// store's queue takes them (drivers.AsyncStore: io_uring, on a file system
// that reads without blocking), the reads and writes of one turn of the
// loop go to the kernel in one system call instead, and their requests are
// answered as they complete. Everything
// else (copy-ups, maps, locks) still goes through mapperd and the blocker;
// a barrier syncs the composer's own writes; after an op that may delete
// objects (DISCARD, DELETE, TRUNCATE) the composer closes the files it
// keeps open, so their space comes back.
package composer

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Composer is vlmcd's state. It belongs to the goroutine running Serve.
type Composer struct {
	port    *xseg.Port
	mapper  int
	blocker int
	log     *logrus.Entry

	volumes map[string]*volume
	pending map[uint32]*pending // by slot index of what we wait for

	data drivers.Store // object I/O done here, if set (SetData)
	// queue, when data is a drivers.AsyncStore whose queue works here,
	// takes the data store's reads and writes that it can (io_uring);
	// slow runs the data store's syncs. queued counts the operations of
	// both in flight.
	queue  drivers.Queue
	sleep  func(time.Duration) bool
	slow   slowCalls
	queued int

	// Reused so that a READ or WRITE served from the cache allocates
	// nothing: the pendings of finished volume I/O, and the segments of
	// the request being issued.
	spare []*pending
	segs  []protocol.Segment
}

// largeReads is a queue that can take reads of any size
// (drivers/file's): the loop would otherwise make them itself, and wait
// there for the disk when the page cache misses.
type largeReads interface {
	TakeLargeReads()
}

// Forgetter is a data store that can close the files it keeps open
// (drivers/file.Store.Forget).
type Forgetter interface {
	Forget()
}

// SetData makes the composer read and write objects itself through st,
// which must hold the same objects the data blocker serves (the blocker's
// directory, opened by this process), instead of sending object I/O to the
// blocker. Call it before Serve.
func (c *Composer) SetData(st drivers.Store) { c.data = st }

// New makes a composer serving on port, asking mapperd on port mapper and
// storing through the data blocker on port blocker.
func New(port *xseg.Port, mapper, blocker int, log *logrus.Entry) *Composer {
	if log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		log = logrus.NewEntry(l)
	}
	return &Composer{
		port: port, mapper: mapper, blocker: blocker, log: log,
		volumes: make(map[string]*volume),
		pending: make(map[uint32]*pending),
		slow:    slowCalls{wake: port.WakeWord()},
	}
}

type volume struct {
	name string
	// size and blockSize are learned with INFO before the first I/O;
	// blockSize 0 means mapperd did not say, and nothing is cached.
	size, blockSize uint64
	known           bool
	learning        bool
	blocks          map[uint64]block

	inflight int            // volume requests being served
	frozen   *pending       // the barrier or map-changing op waiting to run
	held     []xseg.Request // accepted while frozen or learning
}

type block struct {
	object   string
	writable bool
	zero     bool
}

type kind int

const (
	kindIO      kind = iota // a volume READ/WRITE: children count down
	kindMap                 // our MAPR/MAPW for a volume request
	kindInfo                // our INFO learning a volume's geometry
	kindChild               // an object I/O of a volume request
	kindBarrier             // our flush to the blocker for a volume FLUSH
	kindForward             // a volume request we submitted to mapperd and wait for
)

type pending struct {
	kind   kind
	req    xseg.Request // the volume request (kindIO, kindBarrier, kindForward) or ours
	vol    *volume
	parent *pending // kindMap, kindChild: the volume request
	count  int      // kindIO: children outstanding
	err    error
	// dataDone (kindIO) ends one of its queued data store operations;
	// made once per pending, which is reused.
	dataDone func(error)
}

// Serve runs the event loop until ctx ends, then stops accepting and
// returns once every accepted request is answered.
func (c *Composer) Serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, c.port.Interrupt)
	defer stop()
	var ready func() bool
	if c.data != nil {
		ready = c.slow.ready
	}
	if async, ok := c.data.(drivers.AsyncStore); ok {
		if q, err := async.NewQueue(c.port.WakeWord()); err != nil {
			c.log.WithError(err).Debug("no asynchronous queue for the data store: a system call per object I/O")
		} else {
			c.queue = q
			if l, ok := q.(largeReads); ok {
				l.TakeLargeReads()
			}
			ready = func() bool { return c.slow.ready() || q.Ready() }
			if s, ok := q.(drivers.Sleeper); ok {
				c.sleep = s.Sleep
			}
			defer func() { q.Close(); c.queue, c.sleep = nil, nil }()
		}
	}
	for {
		c.port.WaitWith(0, ready, c.sleep)
		draining := c.port.Interrupted()
		if !draining {
			for {
				r, ok := c.port.Accept()
				if !ok {
					break
				}
				c.accept(r)
			}
		}
		for {
			r, ok := c.port.Receive()
			if !ok {
				break
			}
			c.reply(r)
		}
		if c.queue != nil {
			c.queue.Poll() // submits the batch just issued, answers what completed
		}
		c.slow.poll()
		if draining {
			if len(c.pending) == 0 && c.queued == 0 && !c.anyHeld() {
				return
			}
			time.Sleep(10 * time.Microsecond) // Wait returns at once while interrupted
		}
	}
}

func (c *Composer) anyHeld() bool {
	for _, v := range c.volumes {
		if len(v.held) > 0 {
			return true
		}
	}
	return false
}

// volume returns the state of volume name, made on first use. Looking up a
// known volume makes no string.
func (c *Composer) volume(name []byte) *volume {
	v := c.volumes[string(name)]
	if v == nil {
		v = &volume{name: string(name), blocks: make(map[uint64]block)}
		c.volumes[v.name] = v
	}
	return v
}

// accept starts a request from a client.
func (c *Composer) accept(r xseg.Request) {
	switch op := r.Op(); op {
	case xseg.OpPing:
		c.port.Respond(r, nil)
	case xseg.OpRead, xseg.OpWrite, xseg.OpFlush,
		xseg.OpSnapshot, xseg.OpClose, xseg.OpDelete, xseg.OpTruncate, xseg.OpRename, xseg.OpDiscard:
		c.start(c.volume(r.Target()), r)
	default: // INFO, OPEN, CLONE, HASH, MAPR, ...: mapperd answers directly
		if err := c.port.Forward(r, c.mapper); err != nil {
			c.fail(r, err)
		}
	}
}

// start runs a volume request now, or holds it.
func (c *Composer) start(v *volume, r xseg.Request) {
	if v.frozen != nil || v.learning {
		v.held = append(v.held, r)
		return
	}
	op := r.Op()
	isIO := op == xseg.OpRead || (op == xseg.OpWrite && !(r.Size() == 0 && r.Flags()&(xseg.FlagFlush|xseg.FlagFUA) != 0))
	if !isIO {
		c.freeze(v, r)
		return
	}
	if !v.known {
		c.learn(v, r)
		return
	}
	if r.Size() == 0 {
		r.SetServiced(0)
		c.port.Respond(r, nil)
		return
	}
	if end := r.Offset() + r.Size(); end < r.Offset() || end > v.size {
		c.fail(r, syscall.EINVAL)
		return
	}
	if uint64(len(r.Data())) < r.Size() {
		c.fail(r, syscall.EINVAL)
		return
	}
	v.inflight++
	io := c.newIO(r, v)
	if segs, ok := c.cached(v, r); ok {
		c.issue(io, segs)
		return
	}
	c.askMapper(io)
}

// learn asks mapperd for the volume's size and block size, holding r.
func (c *Composer) learn(v *volume, r xseg.Request) {
	v.held = append(v.held, r)
	q, err := c.port.Get()
	if err == nil {
		err = q.Prepare(xseg.OpInfo, v.name, protocol.VolumeInfoLen)
	}
	if err == nil {
		c.pending[q.Index()] = &pending{kind: kindInfo, req: q, vol: v}
		if err = c.port.Submit(q, c.mapper); err != nil {
			delete(c.pending, q.Index())
		}
	}
	if err != nil {
		if q.Valid() {
			c.port.Put(q)
		}
		c.failHeld(v, err)
		return
	}
	v.learning = true
}

func (c *Composer) failHeld(v *volume, err error) {
	held := v.held
	v.held = nil
	for _, r := range held {
		c.fail(r, err)
	}
	delete(c.volumes, v.name)
}

// cached maps r from the volume's cache, if every block it touches is there
// (and writable, for a write).
func (c *Composer) cached(v *volume, r xseg.Request) ([]protocol.Segment, bool) {
	bs := v.blockSize
	if bs == 0 {
		return nil, false
	}
	write := r.Op() == xseg.OpWrite
	off, left := r.Offset(), r.Size()
	segs := c.segs[:0] // used up by issue before cached runs again
	for left > 0 {
		i, in := off/bs, off%bs
		n := min(left, bs-in)
		b, ok := v.blocks[i]
		if !ok || (write && !b.writable) {
			return nil, false
		}
		s := protocol.Segment{Object: b.object, Offset: in, Size: n}
		if b.zero {
			s.Flags = protocol.SegmentZero
		}
		segs = append(segs, s)
		off += n
		left -= n
	}
	c.segs = segs
	return segs, true
}

// askMapper sends MAPR or MAPW for io's range.
func (c *Composer) askMapper(io *pending) {
	r := io.req
	op := xseg.OpMapRead
	if r.Op() == xseg.OpWrite {
		op = xseg.OpMapWrite
	}
	bs := io.vol.blockSize
	if bs == 0 {
		bs = 4 << 20
	}
	q, err := c.port.Get()
	if err == nil {
		err = q.Prepare(op, io.vol.name, uint64(protocol.MapLen(int(r.Size()/bs)+2)))
	}
	if err == nil {
		q.SetOffset(r.Offset())
		q.SetSize(r.Size())
		q.SetFlags(r.Flags() & xseg.FlagAssumeV0)
		c.pending[q.Index()] = &pending{kind: kindMap, req: q, vol: io.vol, parent: io}
		if err = c.port.Submit(q, c.mapper); err != nil {
			delete(c.pending, q.Index())
		}
	}
	if err != nil {
		if q.Valid() {
			c.port.Put(q)
		}
		c.finishIO(io, err)
	}
}

// issue sends one sub-request per non-zero segment; zero segments of a
// read are filled here.
func (c *Composer) issue(io *pending, segs []protocol.Segment) {
	r := io.req
	op := r.Op()
	flags := r.Flags() & (xseg.FlagFUA | xseg.FlagFlush)
	pos := uint64(0)
	for _, s := range segs {
		switch {
		case s.Flags&protocol.SegmentZero != 0 && op == xseg.OpRead:
			clear(r.Data()[pos : pos+s.Size])
		case s.Flags&protocol.SegmentZero != 0:
			io.err = syscall.EIO // mapperd never maps a write to the zero block
		case c.data != nil:
			if err := c.dataIO(io, op, s, r.Data()[pos:pos+s.Size], flags); err != nil && io.err == nil {
				io.err = err
			}
		default:
			k, err := c.port.Get()
			if err == nil {
				err = k.PrepareChild(op, s.Object, r, pos, s.Size)
			}
			if err == nil {
				k.SetOffset(s.Offset)
				k.SetSize(s.Size)
				k.SetFlags(flags)
				c.pending[k.Index()] = &pending{kind: kindChild, req: k, parent: io}
				if err = c.port.Submit(k, c.blocker); err != nil {
					delete(c.pending, k.Index())
				} else {
					io.count++
				}
			}
			if err != nil {
				if k.Valid() {
					c.port.Put(k)
				}
				io.err = err
			}
		}
		pos += s.Size
	}
	if io.count == 0 {
		c.finishIO(io, io.err)
	}
}

// dataIO reads or writes one segment of io through the data store: on
// the queue when it takes it, on a goroutine when it syncs (a FUA or
// FLUSH write), io then counting it as a child until its done runs; else
// at once.
func (c *Composer) dataIO(io *pending, op xseg.Op, s protocol.Segment, p []byte, flags xseg.Flags) error {
	ctx := context.Background()
	var wf drivers.WriteFlags
	if flags&xseg.FlagFUA != 0 {
		wf |= drivers.WriteFUA
	}
	if flags&xseg.FlagFlush != 0 {
		wf |= drivers.WriteFlush
	}
	if c.queue != nil {
		var err error
		if op == xseg.OpRead {
			err = c.queue.StartRead(ctx, s.Object, p, int64(s.Offset), io.dataDone)
		} else {
			err = c.queue.StartWrite(ctx, s.Object, p, int64(s.Offset), wf, io.dataDone)
		}
		if err == nil {
			c.queued++
			io.count++
			return nil
		}
		if !errors.Is(err, drivers.ErrNotQueued) {
			return dataErr(err)
		}
	}
	if op == xseg.OpWrite && wf != 0 {
		c.queued++
		io.count++
		c.slow.run(func() error { return c.data.Write(ctx, s.Object, p, int64(s.Offset), wf) }, io.dataDone)
		return nil
	}
	if op == xseg.OpRead {
		return dataErr(c.data.Read(ctx, s.Object, p, int64(s.Offset)))
	}
	return dataErr(c.data.Write(ctx, s.Object, p, int64(s.Offset), wf))
}

// dataDone ends a queued or slow data store operation of io.
func (c *Composer) dataDone(io *pending, err error) {
	c.queued--
	if err != nil && io.err == nil {
		io.err = dataErr(err)
	}
	if io.count--; io.count == 0 {
		c.finishIO(io, io.err)
	}
}

// dataErr turns a store's error into the errno the blocker would reply
// (blocker.Errno).
func dataErr(err error) error {
	if errno := blocker.Errno(err); errno != 0 {
		return errno
	}
	return nil
}

// reply continues whatever waited for r.
func (c *Composer) reply(r xseg.Request) {
	p := c.pending[r.Index()]
	if p == nil {
		c.log.WithField("op", r.Op().String()).Warn("reply to nothing we wait for; put back")
		c.port.Put(r)
		return
	}
	delete(c.pending, r.Index())
	err := r.Err()
	switch p.kind {
	case kindChild:
		io := p.parent
		if err != nil && io.err == nil {
			io.err = err
		}
		c.port.Put(r)
		if io.count--; io.count == 0 {
			c.finishIO(io, io.err)
		}
	case kindMap:
		io := p.parent
		var segs []protocol.Segment
		if err == nil {
			segs, err = protocol.DecodeMap(r.Data())
		}
		c.port.Put(r)
		if err == nil {
			err = c.remember(p.vol, io.req, segs)
		}
		if err != nil {
			c.finishIO(io, err)
			return
		}
		c.issue(io, segs)
	case kindInfo:
		v := p.vol
		v.learning = false
		if err == nil {
			var info protocol.VolumeInfo
			info, err = protocol.DecodeVolumeInfo(r.Data())
			v.size, v.blockSize = info.Size, info.BlockSize
		}
		c.port.Put(r)
		if err != nil {
			c.failHeld(v, err)
			return
		}
		v.known = true
		c.replay(v)
	case kindBarrier:
		c.port.Put(r)
		c.thaw(p.vol, p.req, err)
	case kindForward:
		// The volume request itself, back from mapperd: its map changed.
		v := p.vol
		delete(c.volumes, v.name)
		if f, ok := c.data.(Forgetter); ok {
			switch r.Op() {
			case xseg.OpDiscard, xseg.OpDelete, xseg.OpTruncate:
				f.Forget()
			}
		}
		c.thaw(v, r, err)
	}
}

// remember caches the mapping a MAPR/MAPW reply gave for r's range.
func (c *Composer) remember(v *volume, r xseg.Request, segs []protocol.Segment) error {
	var total uint64
	for _, s := range segs {
		total += s.Size
	}
	if total != r.Size() {
		return syscall.EIO // a map reply that does not cover the range
	}
	bs := v.blockSize
	if bs == 0 {
		return nil
	}
	write := r.Op() == xseg.OpWrite
	off := r.Offset()
	for _, s := range segs {
		v.blocks[off/bs] = block{
			object:   s.Object,
			writable: write && s.Flags&(protocol.SegmentReadOnly|protocol.SegmentZero) == 0,
			zero:     s.Flags&protocol.SegmentZero != 0,
		}
		off += s.Size
	}
	return nil
}

// newIO returns the pending of volume I/O r of v.
func (c *Composer) newIO(r xseg.Request, v *volume) *pending {
	if n := len(c.spare); n > 0 {
		io := c.spare[n-1]
		c.spare = c.spare[:n-1]
		*io = pending{kind: kindIO, req: r, vol: v, dataDone: io.dataDone}
		return io
	}
	io := &pending{kind: kindIO, req: r, vol: v}
	io.dataDone = func(err error) { c.dataDone(io, err) }
	return io
}

// finishIO answers a volume READ/WRITE; io is spare afterwards.
func (c *Composer) finishIO(io *pending, err error) {
	r := io.req
	if err == nil {
		r.SetServiced(r.Size())
	}
	c.respond(r, err)
	v := io.vol
	*io = pending{dataDone: io.dataDone}
	c.spare = append(c.spare, io)
	v.inflight--
	if v.frozen != nil && v.inflight == 0 {
		c.runFrozen(v)
	}
}

// freeze holds new I/O of v and runs r (a barrier or a map-changing op)
// once v's in-flight I/O drained.
func (c *Composer) freeze(v *volume, r xseg.Request) {
	kind := kindForward
	if r.Op() == xseg.OpFlush || r.Op() == xseg.OpWrite {
		kind = kindBarrier
	}
	v.frozen = &pending{kind: kind, req: r, vol: v}
	if v.inflight == 0 {
		c.runFrozen(v)
	}
}

func (c *Composer) runFrozen(v *volume) {
	p := v.frozen
	if p.kind == kindForward {
		c.pending[p.req.Index()] = p
		if err := c.port.Submit(p.req, c.mapper); err != nil {
			delete(c.pending, p.req.Index())
			c.thaw(v, p.req, err)
		}
		return
	}
	// A barrier: the blocker makes every acknowledged write durable.
	if c.data != nil {
		c.queued++
		c.slow.run(func() error { return c.data.Flush(context.Background()) }, func(err error) {
			c.queued--
			c.thaw(v, p.req, dataErr(err))
		})
		return
	}
	q, err := c.port.Get()
	if err == nil {
		err = q.Prepare(xseg.OpWrite, v.name, 0)
	}
	if err == nil {
		q.SetFlags(xseg.FlagFlush)
		c.pending[q.Index()] = &pending{kind: kindBarrier, req: p.req, vol: v}
		if err = c.port.Submit(q, c.blocker); err != nil {
			delete(c.pending, q.Index())
		}
	}
	if err != nil {
		if q.Valid() {
			c.port.Put(q)
		}
		c.thaw(v, p.req, err)
	}
}

// thaw answers the frozen request and lets held I/O go.
func (c *Composer) thaw(v *volume, r xseg.Request, err error) {
	c.respond(r, err)
	v.frozen = nil
	c.replay(v)
}

// replay starts the requests held for v, in order, until one freezes it
// again.
func (c *Composer) replay(v *volume) {
	for len(v.held) > 0 && v.frozen == nil && !v.learning {
		r := v.held[0]
		v.held = v.held[1:]
		if cur := c.volumes[v.name]; cur != v { // v was dropped: start afresh
			cur = c.volume([]byte(v.name))
			cur.held = append(append(cur.held, r), v.held...)
			v.held = nil
			c.replay(cur)
			return
		}
		c.start(v, r)
	}
}

func (c *Composer) respond(r xseg.Request, err error) {
	if rerr := c.port.Respond(r, err); rerr != nil {
		c.log.WithError(rerr).WithField("op", r.Op().String()).Error("reply not sent")
	}
}

func (c *Composer) fail(r xseg.Request, err error) {
	c.log.WithError(err).WithFields(logrus.Fields{"op": r.Op().String(), "volume": r.TargetString()}).Debug("request failed")
	c.respond(r, err)
}
