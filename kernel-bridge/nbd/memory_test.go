package nbd

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// memPage is the allocation unit of the in-memory test disk.
const memPage = 4096

// memBackend is an in-memory Backend for the tests: sparse disks that
// track which pages are allocated, so BLOCK_STATUS reports holes where
// nothing was written or a TRIM punched one.
type memBackend struct {
	mu      sync.Mutex
	disks   map[string]*memDisk
	order   []string
	async   bool         // complete commands on other goroutines, out of order
	buffers atomic.Int64 // buffers handed out and not yet released
	opened  atomic.Int64 // exports open
}

type memDisk struct {
	name        string
	size        uint64
	flags       ExportFlags
	min, pref   uint32
	max         uint32
	description string

	mu      sync.Mutex
	pages   map[uint64][]byte
	flushes atomic.Int64
	failOff uint64 // reads touching [failOff, failOff+failLen) fail with EIO
	failLen uint64
}

const memAllFlags = CanFlush | CanFUA | CanTrim | CanZero | CanFastZero | CanCache | CanMultiConn

func newMemBackend() *memBackend {
	return &memBackend{disks: make(map[string]*memDisk)}
}

func (b *memBackend) add(name string, size uint64, flags ExportFlags) *memDisk {
	d := &memDisk{name: name, size: size, flags: flags, pages: make(map[uint64][]byte)}
	b.mu.Lock()
	b.disks[name] = d
	b.order = append(b.order, name)
	b.mu.Unlock()
	return d
}

func (b *memBackend) List() ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...), nil
}

func (b *memBackend) Open(name string) (Export, error) {
	b.mu.Lock()
	d, ok := b.disks[name]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("export %q: %w", name, ErrUnknownExport)
	}
	b.opened.Add(1)
	return &memExport{d: d, b: b}, nil
}

// memExport is one connection's view of a memDisk.
type memExport struct {
	d      *memDisk
	b      *memBackend
	closed atomic.Bool
}

func (e *memExport) Size() uint64                         { return e.d.size }
func (e *memExport) Flags() ExportFlags                   { return e.d.flags }
func (e *memExport) BlockSizes() (uint32, uint32, uint32) { return e.d.min, e.d.pref, e.d.max }
func (e *memExport) Description() string                  { return e.d.description }

func (e *memExport) Close() error {
	if e.closed.Swap(true) {
		panic("memExport closed twice")
	}
	e.b.opened.Add(-1)
	return nil
}

type memBuffer struct {
	b        []byte
	owner    *memBackend
	released atomic.Bool
}

func (m *memBuffer) Bytes() []byte { return m.b }
func (m *memBuffer) Release() {
	if m.released.Swap(true) {
		panic("buffer released twice")
	}
	m.owner.buffers.Add(-1)
}

func (e *memExport) Buffer(n int) (Buffer, error) {
	e.b.buffers.Add(1)
	return &memBuffer{b: make([]byte, n), owner: e.b}, nil
}

func (e *memExport) Start(cmd *Command) {
	if e.closed.Load() {
		panic("Start on a closed export")
	}
	err := e.d.do(cmd)
	if !e.b.async {
		cmd.Done(err)
		return
	}
	go func() {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		cmd.Done(err)
	}()
}

func (d *memDisk) do(cmd *Command) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch cmd.Type {
	case CmdRead:
		if d.failLen > 0 && cmd.Offset < d.failOff+d.failLen && d.failOff < cmd.Offset+uint64(cmd.Length) {
			return &OffsetError{Offset: max(cmd.Offset, d.failOff), Err: syscall.EIO}
		}
		d.readAt(cmd.Buf.Bytes()[:cmd.Length], cmd.Offset)
	case CmdWrite:
		d.writeAt(cmd.Buf.Bytes()[:cmd.Length], cmd.Offset)
	case CmdFlush:
		d.flushes.Add(1)
	case CmdTrim:
		d.zeroRange(cmd.Offset, uint64(cmd.Length), false)
	case CmdWriteZeroes:
		noHole := cmd.Flags&CmdFlagNoHole != 0
		if cmd.Flags&CmdFlagFastZero != 0 && noHole {
			// Allocating zeroes is no faster than writing them.
			return syscall.ENOTSUP
		}
		d.zeroRange(cmd.Offset, uint64(cmd.Length), noHole)
	case CmdCache:
	default:
		return syscall.EINVAL
	}
	return nil
}

func (d *memDisk) readAt(p []byte, off uint64) {
	for len(p) > 0 {
		idx, in := off/memPage, off%memPage
		n := min(uint64(len(p)), memPage-in)
		if pg, ok := d.pages[idx]; ok {
			copy(p[:n], pg[in:])
		} else {
			clear(p[:n])
		}
		p, off = p[n:], off+n
	}
}

func (d *memDisk) writeAt(p []byte, off uint64) {
	for len(p) > 0 {
		idx, in := off/memPage, off%memPage
		n := min(uint64(len(p)), memPage-in)
		pg, ok := d.pages[idx]
		if !ok {
			pg = make([]byte, memPage)
			d.pages[idx] = pg
		}
		copy(pg[in:], p[:n])
		p, off = p[n:], off+n
	}
}

// zeroRange zeroes [off, off+n): whole pages are punched out (or, with
// alloc, allocated as zeroes), partial pages zeroed in place.
func (d *memDisk) zeroRange(off, n uint64, alloc bool) {
	for n > 0 {
		idx, in := off/memPage, off%memPage
		k := min(n, memPage-in)
		pg, ok := d.pages[idx]
		switch {
		case k == memPage && !alloc:
			delete(d.pages, idx)
		case ok:
			clear(pg[in : in+k])
		case alloc:
			d.pages[idx] = make([]byte, memPage)
		}
		off, n = off+k, n-k
	}
}

func (e *memExport) BlockStatus(off, length uint64) ([]Extent, error) {
	d := e.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var ext []Extent
	end := off + length
	for off < end && len(ext) < 4096 {
		idx := off / memPage
		k := min(end-off, memPage-off%memPage)
		var f uint32
		if _, ok := d.pages[idx]; !ok {
			f = StateHole | StateZero
		}
		if n := len(ext); n > 0 && ext[n-1].Flags == f && uint64(ext[n-1].Length)+k < 1<<31 {
			ext[n-1].Length += uint32(k)
		} else {
			ext = append(ext, Extent{Length: uint32(k), Flags: f})
		}
		off += k
	}
	return ext, nil
}

// allocated lists the allocated byte ranges of d as [start, end) pairs.
func (d *memDisk) allocated() [][2]uint64 {
	d.mu.Lock()
	idx := make([]uint64, 0, len(d.pages))
	for i := range d.pages {
		idx = append(idx, i)
	}
	d.mu.Unlock()
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	var r [][2]uint64
	for _, i := range idx {
		s, e := i*memPage, min((i+1)*memPage, d.size)
		if n := len(r); n > 0 && r[n-1][1] == s {
			r[n-1][1] = e
			continue
		}
		r = append(r, [2]uint64{s, e})
	}
	return r
}

// contents returns the whole disk as bytes.
func (d *memDisk) contents() []byte {
	p := make([]byte, d.size)
	d.mu.Lock()
	d.readAt(p, 0)
	d.mu.Unlock()
	return p
}

// testLog is a logger for servers under test: quiet unless NBD_TEST_LOG
// names a level.
func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if lv, err := logrus.ParseLevel(os.Getenv("NBD_TEST_LOG")); err == nil {
		l.SetOutput(os.Stderr)
		l.SetLevel(lv)
	}
	return logrus.NewEntry(l)
}

// checkNoLeaks fails t when the backend still has buffers out or exports
// open once the server is done.
func (b *memBackend) checkNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.buffers.Load() != 0 || b.opened.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leak: %d buffers not released, %d exports not closed", b.buffers.Load(), b.opened.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// set writes p at off, from the test's side.
func (d *memDisk) set(p []byte, off uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeAt(p, off)
}

// punch trims [off, off+n), from the test's side.
func (d *memDisk) punch(off, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.zeroRange(off, n, false)
}
