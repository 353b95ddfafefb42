// Package xseg owns the shared-memory segment through which the peers of
// one host exchange requests: its layout, ports, request slots, data
// buffers, lock-free rings, wake-ups, liveness and recovery, and counters.
//
// A segment is a file in /dev/shm mapped by every process that joins it.
// A client binds a port, gets a request slot, prepares it (target name and
// a data buffer inside the segment), submits it to a server's port and
// waits on its own port for the reply. Data never moves between ports:
// only slot indices travel through the rings.
//
// Nothing in the segment is guarded by a lock, so no process can die
// holding one. Each port records its owner's pid and start time; when an
// owner dies, any joined process notices within MonitorInterval and
// recovers the port: requests queued to it or being served by it fail back
// to their submitters with ErrPeerDied (they are not handed to the next
// owner, since the dead peer may have half-executed them: the submitter
// decides whether to retry), slots it held as a client return to the pool,
// and the port is freed for a restarted peer to bind.
//
// Hazard: slices returned by Request.Data and Request.Target point into
// shared memory that other processes read and write; they are valid only
// while the calling port holds the request.
package xseg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/xseg/ring"
)

// DefaultDir is where segments live unless Options.Dir says otherwise.
const DefaultDir = "/dev/shm"

// MonitorInterval is how often a joined process checks that port owners
// are alive; a dead owner's port is recovered within about this time.
const MonitorInterval = 200 * time.Millisecond

// Options tune Create and Join.
type Options struct {
	// Dir holds the segment file; DefaultDir when empty.
	Dir string
	// Expect, when set, makes Join fail with ErrGeometryMismatch unless the
	// segment has exactly this geometry.
	Expect *Geometry
	// NoMonitor turns off the liveness monitor of this process (tools
	// that only read the segment).
	NoMonitor bool
}

func (o Options) path(name string) (string, error) {
	if err := validateName(name); err != nil {
		return "", err
	}
	dir := o.Dir
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, name), nil
}

func validateName(name string) error {
	if name == "" || len(name) > 200 || name[0] == '.' {
		return fmt.Errorf("%w: %q (1 to 200 characters, not starting with '.')", ErrBadName, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q (use letters, digits, '.', '_', '-')", ErrBadName, name)
		}
	}
	return nil
}

// Create makes a new segment with geometry g (zero fields take
// DefaultGeometry's values), file mode 0660. The file appears under its
// name only once fully laid out, so a concurrent Join never sees half of it.
func Create(name string, g Geometry, opts Options) error {
	path, err := opts.path(name)
	if err != nil {
		return err
	}
	g = g.withDefaults()
	if err := g.validate(); err != nil {
		return err
	}
	l := computeLayout(g)
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.creating.%d", name, os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		return fmt.Errorf("create segment %q: %w", name, err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	if err := f.Chmod(0o660); err != nil { // umask may have narrowed it
		return fmt.Errorf("create segment %q: %w", name, err)
	}
	if err := f.Truncate(int64(l.size)); err != nil {
		return fmt.Errorf("create segment %q of %d bytes: %w", name, l.size, err)
	}
	m, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		return fmt.Errorf("map new segment %q: %w", name, err)
	}
	free, err := ring.Init(m[l.freeRing:l.freeRing+l.ringBytes], g.RingCapacity())
	if err == nil {
		for i := uint32(0); i < g.Requests; i++ {
			free.Push(i)
		}
		// The header goes in last: until then the file is no segment.
		encodeHeader(m, header{Version: LayoutVersion, Geometry: g, Layout: l, Created: time.Now().UnixNano()})
	}
	if uerr := m.Unmap(); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("lay out segment %q: %w", name, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create segment %q: %w", name, ErrExists)
		}
		return fmt.Errorf("create segment %q: %w", name, err)
	}
	return nil
}

// Destroy removes the segment's name. Processes that joined it keep their
// mapping until they leave; new joins fail.
func Destroy(name string, opts Options) error {
	path, err := opts.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("destroy segment %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("destroy segment %q: %w", name, err)
	}
	return nil
}

// Segment is one process's view of a joined segment. Its methods are safe
// for concurrent use.
type Segment struct {
	name  string
	mem   mmap.MMap
	base  unsafe.Pointer
	hdr   header
	free  *ring.Ring
	rings []atomic.Pointer[portRings]
	pool  bufferPool

	self procID

	mu    sync.Mutex
	bound map[uint32]*Port
	left  bool
	stop  chan struct{}
	done  chan struct{}
}

type portRings struct{ requests, replies *ring.Ring }

// Join maps an existing segment and, unless opts.NoMonitor, starts the
// liveness monitor. Call Leave when done.
func Join(name string, opts Options) (*Segment, error) {
	path, err := opts.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("join segment %q: %w (create it with `xseg create %s`)", name, ErrNotFound, name)
		}
		return nil, fmt.Errorf("join segment %q: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("join segment %q: %w", name, err)
	}
	first := make([]byte, headerSize)
	if n, _ := f.ReadAt(first, 0); n < headerSize {
		first = first[:n]
	}
	hdr, err := decodeHeader(first, st.Size())
	if err != nil {
		return nil, fmt.Errorf("join segment %q: %w", name, err)
	}
	if opts.Expect != nil && opts.Expect.withDefaults() != hdr.Geometry {
		return nil, fmt.Errorf("join segment %q: %w: it has %+v, asked for %+v", name, ErrGeometryMismatch, hdr.Geometry, opts.Expect.withDefaults())
	}
	m, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("map segment %q: %w", name, err)
	}
	if uint64(len(m)) != hdr.Layout.size {
		m.Unmap()
		return nil, fmt.Errorf("join segment %q: %w: file changed size while joining", name, ErrCorrupt)
	}
	l := hdr.Layout
	free, err := ring.Attach(m[l.freeRing:l.freeRing+l.ringBytes], hdr.Geometry.RingCapacity())
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("join segment %q: %w: free ring: %v", name, ErrCorrupt, err)
	}
	self, err := currentProc()
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("join segment %q: %w", name, err)
	}
	s := &Segment{
		name:  name,
		mem:   m,
		base:  unsafe.Pointer(&m[0]),
		hdr:   hdr,
		free:  free,
		rings: make([]atomic.Pointer[portRings], hdr.Geometry.Ports),
		self:  self,
		bound: make(map[uint32]*Port),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	s.pool = bufferPool{
		bitmap: unsafe.Add(s.base, l.bitmap),
		words:  hdr.Geometry.BufferBytes / BufferUnit / bitmapWordUnits,
	}
	if opts.NoMonitor {
		close(s.done)
	} else {
		go s.monitor()
	}
	return s, nil
}

// Name returns the segment's name.
func (s *Segment) Name() string { return s.name }

// Geometry returns the segment's geometry.
func (s *Segment) Geometry() Geometry { return s.hdr.Geometry }

// Created returns when the segment was created.
func (s *Segment) Created() time.Time { return time.Unix(0, s.hdr.Created) }

// Leave releases every port this process bound through s, stops the
// monitor and unmaps the segment. Requests still held become invalid.
// Hazard: call it only once no goroutine uses the segment's ports or
// requests; their memory is gone afterwards.
func (s *Segment) Leave() error {
	s.mu.Lock()
	if s.left {
		s.mu.Unlock()
		return nil
	}
	s.left = true
	ports := make([]*Port, 0, len(s.bound))
	for _, p := range s.bound {
		ports = append(ports, p)
	}
	s.mu.Unlock()
	for _, p := range ports {
		p.Release()
	}
	select {
	case <-s.done:
	default:
		close(s.stop)
		<-s.done
	}
	return s.mem.Unmap()
}

func (s *Segment) port(i uint32) *portEntry {
	return (*portEntry)(unsafe.Add(s.base, s.hdr.Layout.ports+uint64(i)*portEntrySize))
}

func (s *Segment) slot(i uint32) *slot {
	return (*slot)(unsafe.Add(s.base, s.hdr.Layout.slots+uint64(i)*slotSize))
}

// portRings returns the rings of port i, which must have been laid out.
func (s *Segment) portRings(i uint32) *portRings {
	if r := s.rings[i].Load(); r != nil {
		return r
	}
	l := s.hdr.Layout
	off := l.rings + 2*uint64(i)*l.ringBytes
	c := s.hdr.Geometry.RingCapacity()
	req, err1 := ring.Attach(s.mem[off:off+l.ringBytes], c)
	rep, err2 := ring.Attach(s.mem[off+l.ringBytes:off+2*l.ringBytes], c)
	if err1 != nil || err2 != nil {
		return nil
	}
	r := &portRings{req, rep}
	s.rings[i].Store(r)
	return r
}

// layRings lays out port i's rings; only a binder calls it, before the port
// is marked bound, so no other process uses them yet.
func (s *Segment) layRings(i uint32) error {
	e := s.port(i)
	if e.ready.Load() == 1 {
		return nil
	}
	l := s.hdr.Layout
	off := l.rings + 2*uint64(i)*l.ringBytes
	c := s.hdr.Geometry.RingCapacity()
	if _, err := ring.Init(s.mem[off:off+l.ringBytes], c); err != nil {
		return err
	}
	if _, err := ring.Init(s.mem[off+l.ringBytes:off+2*l.ringBytes], c); err != nil {
		return err
	}
	e.ready.Store(1)
	return nil
}

func (s *Segment) checkPort(i int) error {
	if i < 0 || i >= int(s.hdr.Geometry.Ports) {
		return fmt.Errorf("%w: %d (segment %q has ports 0 to %d)", ErrNoSuchPort, i, s.name, s.hdr.Geometry.Ports-1)
	}
	return nil
}

// monitor checks port owners every MonitorInterval and recovers the ports
// of dead ones. Every joined process runs one; the first to notice wins.
func (s *Segment) monitor() {
	defer close(s.done)
	t := time.NewTicker(MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.recoverDead(nil)
		}
	}
}

// procID identifies a process across pid reuse.
type procID struct {
	pid   uint32
	start uint64
}

func currentProc() (procID, error) {
	pid := uint32(os.Getpid())
	start, alive := processStart(pid)
	if !alive {
		return procID{}, fmt.Errorf("read own start time from /proc: not available")
	}
	return procID{pid, start}, nil
}

// alive reports whether the process that recorded (pid, start) still runs.
func alive(pid uint32, start uint64) bool {
	if pid == 0 {
		return false
	}
	got, ok := processStart(pid)
	if !ok {
		return false
	}
	return start == 0 || got == start
}

// processStart reads a process's start time from /proc; ok is false when
// the process is gone or a zombie.
func processStart(pid uint32) (start uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// No /proc entry; if /proc itself is missing, fall back to kill(0).
		if _, serr := os.Stat("/proc/self"); serr != nil {
			return 0, unix.Kill(int(pid), 0) != unix.ESRCH
		}
		return 0, false
	}
	return parseStat(b)
}

// parseStat reads the state (field 3) and start time (field 22) of a
// /proc/PID/stat line. The command name may hold spaces and parentheses,
// so fields are counted from the last ')'.
func parseStat(b []byte) (start uint64, ok bool) {
	i := len(b) - 1
	for i >= 0 && b[i] != ')' {
		i--
	}
	if i < 0 {
		return 0, false
	}
	field := 2
	var state byte
	for j := i + 1; j < len(b); j++ {
		if b[j] == ' ' {
			field++
			continue
		}
		switch field {
		case 3:
			state = b[j]
		case 22:
			start = start*10 + uint64(b[j]-'0')
		}
		if field > 22 {
			break
		}
	}
	if state == 'Z' || state == 'X' || state == 0 {
		return 0, false
	}
	return start, true
}
