package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/kernel-bridge/nbd"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// volumes is the nbd.Backend of nbdd: every export is a volume, served
// through vlmcd. One dynamic port carries the requests of every
// connection; one goroutine receives the replies and completes each
// command on the spot (the NBD reply is written from the segment buffer
// the volume request used), so a reply costs no goroutine hand-off.
// There is one such lane (a port and its receiver) per core, connections
// spread over them, so that replies to several connections are written to
// their sockets in parallel; an idle lane's receiver sleeps.
type volumes struct {
	lanes []*lane
	next  atomic.Uint32 // the lane of the next connection
	vlmcd int
	// exports, if set, is the export table: a directory holding one empty
	// file per mapped volume (vlmc map writes them); only those are
	// served. Empty: every volume is.
	exports string
	// waiting holds, by slot index, what a submitted request completes.
	waiting []atomic.Pointer[waiter]
	// wait bounds how long a command waits for a free slot or buffer.
	wait time.Duration
}

// lane is a port of nbdd's and the goroutine receiving its replies.
type lane struct {
	*volumes
	port *xseg.Port
	done chan struct{}
}

// waiter is what a reply completes: an NBD command, or a synchronous call.
type waiter struct {
	cmd *nbd.Command
	// put: the slot is the waiter's own (a command without data), put
	// back once the command is done.
	put bool
	ch  chan xseg.Request
}

// newVolumes serves volumes through vlmcd on port vlmcd, with one lane per
// port of ports (ports of the same segment).
func newVolumes(ports []*xseg.Port, vlmcd int, exports string) *volumes {
	v := &volumes{
		vlmcd: vlmcd, exports: exports,
		waiting: make([]atomic.Pointer[waiter], ports[0].Segment().Geometry().Requests),
		wait:    5 * time.Second,
	}
	for _, p := range ports {
		l := &lane{volumes: v, port: p, done: make(chan struct{})}
		v.lanes = append(v.lanes, l)
		go l.receive()
	}
	return v
}

// lane picks the lane of a new connection.
func (v *volumes) lane() *lane {
	return v.lanes[int(v.next.Add(1))%len(v.lanes)]
}

// close stops the lanes' receivers; call it once no command is in flight.
func (v *volumes) close() {
	for _, l := range v.lanes {
		l.port.Interrupt()
		<-l.done
	}
}

// receive completes replies until the port is interrupted.
func (l *lane) receive() {
	defer close(l.done)
	for !l.port.Interrupted() {
		l.port.Wait(0)
		for {
			r, ok := l.port.Receive()
			if !ok {
				break
			}
			l.complete(r)
		}
	}
}

// complete hands a reply to what waits for it.
func (l *lane) complete(r xseg.Request) {
	w := l.waiting[r.Index()].Swap(nil)
	switch {
	case w == nil: // not ours: nothing waits for it
		l.port.Put(r)
	case w.ch != nil:
		w.ch <- r
	default:
		w.cmd.Done(replyErr(r))
		if w.put {
			l.port.Put(r)
		}
	}
}

// replyErr is the error a reply carries, as an errno the NBD layer maps.
func replyErr(r xseg.Request) error {
	err := r.Err()
	if errors.Is(err, xseg.ErrPeerDied) {
		return syscall.EIO
	}
	return err
}

// get takes a slot with a data buffer of n bytes, waiting up to v.wait
// while the segment has none free.
func (l *lane) get(op xseg.Op, target string, n uint64) (xseg.Request, error) {
	var deadline time.Time
	for {
		r, err := l.port.Get()
		if err == nil {
			if err = r.Prepare(op, target, n); err == nil {
				return r, nil
			}
			l.port.Put(r)
		}
		if !errors.Is(err, xseg.ErrNoFreeRequests) && !errors.Is(err, xseg.ErrNoBufferSpace) {
			return xseg.Request{}, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(l.wait)
		} else if time.Now().After(deadline) {
			return xseg.Request{}, fmt.Errorf("%w: %v", syscall.ENOMEM, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// submit sends r to vlmcd; w gets the reply.
func (l *lane) submit(r xseg.Request, w *waiter) error {
	l.waiting[r.Index()].Store(w)
	if err := l.port.Submit(r, l.vlmcd); err != nil {
		l.waiting[r.Index()].Store(nil)
		return err
	}
	return nil
}

// call submits r and waits for its reply, which the caller puts back.
func (l *lane) call(r xseg.Request) (xseg.Request, error) {
	w := &waiter{ch: make(chan xseg.Request, 1)}
	if err := l.submit(r, w); err != nil {
		return r, err
	}
	rep := <-w.ch
	return rep, replyErr(rep)
}

// List names the mapped volumes; with no export table, none (the
// blockers cannot list their objects).
func (v *volumes) List() ([]string, error) {
	if v.exports == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(v.exports)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, err
}

// mapped reports whether the export table lets name be served.
func (v *volumes) mapped(name string) bool {
	if v.exports == "" {
		return true
	}
	if drivers.ValidateName(name) != nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(v.exports, name))
	return err == nil && fi.Mode().IsRegular()
}

// Open asks vlmcd (mapperd) for the volume's size, block size and flags.
func (v *volumes) Open(name string) (nbd.Export, error) {
	if !v.mapped(name) {
		return nil, fmt.Errorf("%w: volume %q is not mapped (vlmc map %s)", nbd.ErrUnknownExport, name, name)
	}
	l := v.lane()
	r, err := l.get(xseg.OpInfo, name, protocol.VolumeInfoLen)
	if err != nil {
		return nil, err
	}
	defer l.port.Put(r)
	rep, err := l.call(r)
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("%w: no volume %q", nbd.ErrUnknownExport, name)
	}
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	info, err := protocol.DecodeVolumeInfo(rep.Data()[:min(uint64(len(rep.Data())), rep.Serviced())])
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	if info.BlockSize == 0 {
		info.BlockSize = 4 << 20
	}
	return &volume{l: l, name: name, info: info}, nil
}

// volume is one export: a volume opened by one connection.
type volume struct {
	l    *lane
	name string
	info protocol.VolumeInfo
}

// maxRequest is the largest READ or WRITE a client may send: 32 MiB,
// what the NBD spec says clients may assume servers take.
const maxRequest = 32 << 20

func (e *volume) Size() uint64 { return e.info.Size }

func (e *volume) Flags() nbd.ExportFlags {
	if e.info.ReadOnly() {
		return nbd.ReadOnly | nbd.CanFlush | nbd.CanCache | nbd.CanMultiConn
	}
	// FLUSH is a barrier in vlmcd over every write of the volume, whichever
	// connection sent it: multi-conn holds.
	return nbd.CanFlush | nbd.CanFUA | nbd.CanTrim | nbd.CanZero | nbd.CanFastZero | nbd.CanCache | nbd.CanMultiConn
}

func (e *volume) BlockSizes() (min, preferred, max uint32) {
	return 1, 4096, maxRequest
}

func (e *volume) Close() error { return nil }

// segBuffer is a request slot whose data buffer an NBD command uses.
type segBuffer struct {
	l *lane
	r xseg.Request
}

func (b *segBuffer) Bytes() []byte { return b.r.Data() }
func (b *segBuffer) Release()      { b.l.port.Put(b.r) }

// Buffer takes a request slot with n bytes of segment buffer: the socket
// reads a WRITE's payload into it, a READ's reply is written from it.
func (e *volume) Buffer(n int) (nbd.Buffer, error) {
	r, err := e.l.get(xseg.OpRead, e.name, uint64(n))
	if err != nil {
		return nil, err
	}
	return &segBuffer{l: e.l, r: r}, nil
}

// Start sends cmd to vlmcd. READ, WRITE and FLUSH go as one volume
// request (READ and WRITE in the slot of the command's buffer); TRIM and
// WRITE_ZEROES are map operations for whole blocks, and run on a goroutine
// of their own.
func (e *volume) Start(cmd *nbd.Command) {
	var op xseg.Op
	var flags xseg.Flags
	switch cmd.Type {
	case nbd.CmdRead:
		op = xseg.OpRead
	case nbd.CmdWrite:
		op = xseg.OpWrite
		if cmd.Flags&nbd.CmdFlagFUA != 0 {
			flags |= xseg.FlagFUA
		}
	case nbd.CmdFlush:
		op = xseg.OpFlush
	case nbd.CmdCache:
		cmd.Done(nil) // the blockers' caches are the kernel's
		return
	case nbd.CmdTrim, nbd.CmdWriteZeroes:
		go func() { cmd.Done(e.zero(cmd)) }()
		return
	default:
		cmd.Done(syscall.EINVAL)
		return
	}
	var r xseg.Request
	var n uint64
	w := &waiter{cmd: cmd}
	if b, ok := cmd.Buf.(*segBuffer); ok {
		r, n = b.r, uint64(cmd.Length)
		if err := r.Prepare(op, e.name, n); err != nil {
			cmd.Done(err)
			return
		}
	} else {
		var err error
		if r, err = e.l.get(op, e.name, 0); err != nil {
			cmd.Done(err)
			return
		}
		w.put = true
	}
	r.SetOffset(cmd.Offset)
	r.SetSize(n)
	r.SetFlags(flags)
	if err := e.l.submit(r, w); err != nil {
		if w.put {
			e.l.port.Put(r)
		}
		cmd.Done(err)
	}
}

// zero serves TRIM and WRITE_ZEROES: the whole blocks of the range become
// zero blocks with one DISCARD (a map operation: no data written, the
// objects' space given back); WRITE_ZEROES writes zeros over the parts of
// blocks at either end, and over everything with NO_HOLE. TRIM leaves the
// partial blocks alone (a trimmed range may read anything). FAST_ZERO
// fails with ENOTSUP when zeros would have to be written.
func (e *volume) zero(cmd *nbd.Command) error {
	off, end := cmd.Offset, cmd.Offset+uint64(cmd.Length)
	bs := e.info.BlockSize
	first, last := (off+bs-1)/bs*bs, end/bs*bs
	if end == e.info.Size {
		last = end // the short last block is whole too
	}
	write := cmd.Type == nbd.CmdWriteZeroes
	if cmd.Flags&nbd.CmdFlagNoHole != 0 || first >= last {
		first, last = end, end // nothing to discard
	}
	if write && (first > off || last < end) && cmd.Flags&nbd.CmdFlagFastZero != 0 {
		return syscall.ENOTSUP
	}
	if first < last {
		if err := e.simple(xseg.OpDiscard, first, last-first); err != nil {
			return err
		}
	}
	if !write {
		return nil
	}
	if err := e.writeZeros(off, min(first, end)); err != nil {
		return err
	}
	return e.writeZeros(max(last, off), end)
}

// simple sends a request without data and waits for its reply.
func (e *volume) simple(op xseg.Op, off, size uint64) error {
	r, err := e.l.get(op, e.name, 0)
	if err != nil {
		return err
	}
	defer e.l.port.Put(r)
	r.SetOffset(off)
	r.SetSize(size)
	_, err = e.l.call(r)
	return err
}

// zeroChunk bounds one write of zeros.
const zeroChunk = 4 << 20

// writeZeros writes zeros over [off, end), a chunk at a time.
func (e *volume) writeZeros(off, end uint64) error {
	if off >= end {
		return nil
	}
	r, err := e.l.get(xseg.OpWrite, e.name, min(end-off, zeroChunk))
	if err != nil {
		return err
	}
	defer e.l.port.Put(r)
	clear(r.Data())
	for off < end {
		n := min(end-off, zeroChunk)
		if err := r.Prepare(xseg.OpWrite, e.name, n); err != nil {
			return err
		}
		r.SetOffset(off)
		r.SetSize(n)
		r.SetFlags(0)
		if _, err := e.l.call(r); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// blockStatusBlocks bounds the blocks one BLOCK_STATUS reply covers.
const blockStatusBlocks = 256

// BlockStatus maps [off, off+length) with MAPR: never-written and
// discarded blocks are holes that read as zeros.
func (e *volume) BlockStatus(off, length uint64) ([]nbd.Extent, error) {
	bs := e.info.BlockSize
	length = min(length, (off/bs+blockStatusBlocks)*bs-off, e.info.Size-off)
	n := int((off%bs+length+bs-1)/bs) + 1
	r, err := e.l.get(xseg.OpMapRead, e.name, uint64(protocol.MapLen(n)))
	if err != nil {
		return nil, err
	}
	defer e.l.port.Put(r)
	r.SetOffset(off)
	r.SetSize(length)
	r.SetFlags(0)
	rep, err := e.l.call(r)
	if err != nil {
		return nil, err
	}
	segs, err := protocol.DecodeMap(rep.Data())
	if err != nil {
		return nil, err
	}
	var out []nbd.Extent
	for _, s := range segs {
		var flags uint32
		if s.Flags&protocol.SegmentZero != 0 {
			flags = nbd.StateHole | nbd.StateZero
		}
		if k := len(out) - 1; k >= 0 && out[k].Flags == flags && uint64(out[k].Length)+s.Size <= 1<<31 {
			out[k].Length += uint32(s.Size)
			continue
		}
		out = append(out, nbd.Extent{Length: uint32(s.Size), Flags: flags})
	}
	if len(out) == 0 {
		return nil, syscall.EIO
	}
	return out, nil
}
