package mapserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Ports of a test host.
const (
	dataPort   = 1
	mapPort    = 2
	mapperPort = 3
)

// counter counts the requests a handler serves, by op.
type counter struct {
	h   peers.Handler
	ops [32]atomic.Uint64
}

func (c *counter) Serve(ctx context.Context, r xseg.Request) error {
	c.ops[r.Op()%32].Add(1)
	return c.h.Serve(ctx, r)
}

func (c *counter) count(op xseg.Op) uint64 { return c.ops[op%32].Load() }

// host is a segment with a data blocker, a map blocker and a mapperd
// served in this process, as the peers would run on one host.
type host struct {
	t          testing.TB
	seg        *xseg.Segment
	data, maps *counter
	srv        *Server
	client     *peers.Client
	stopMapper func()
}

// dirs makes a data and a map directory for hosts to share.
func dirs(t testing.TB) (dataDir, mapDir string) {
	base := t.TempDir()
	dataDir, mapDir = filepath.Join(base, "data"), filepath.Join(base, "maps")
	for _, d := range []string{dataDir, mapDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, mapDir
}

// newHost starts the peers of a host over dataDir and mapDir; owner is
// the lock owner of its blockers and its mapperd.
func newHost(t testing.TB, dataDir, mapDir, owner string) *host {
	t.Helper()
	seg, _ := peertest.Segment(t)
	h := &host{t: t, seg: seg}
	h.data = &counter{h: h.blocker(dataDir, owner)}
	h.maps = &counter{h: h.blocker(mapDir, owner)}
	h.serve(dataPort, h.data, nil)
	h.serve(mapPort, h.maps, nil)
	h.startMapper(owner)
	c, err := peers.NewClient(seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.client = c
	return h
}

func (h *host) blocker(dir, owner string) *blocker.Blocker {
	store, err := file.Open(dir, file.Options{Owner: owner})
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := blocker.New(store, blocker.Options{Owner: owner})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { b.Close() })
	return b
}

// serve serves port with handler until the test ends or the returned
// function is called; then closer runs.
func (h *host) serve(port int, handler peers.Handler, closer func()) (stop func()) {
	p, err := h.seg.Bind(port)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&peers.Server{Handler: handler, Inflight: 16}).Serve(ctx, p)
		if closer != nil {
			closer()
		}
		p.Release()
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

// startMapper starts a mapserver on mapperPort.
func (h *host) startMapper(owner string) {
	srv, err := New(h.seg, Options{DataPort: dataPort, MapPort: mapPort, Owner: owner})
	if err != nil {
		h.t.Fatal(err)
	}
	h.srv = srv
	h.stopMapper = h.serve(mapperPort, srv, func() {
		if err := srv.Close(); err != nil {
			h.t.Errorf("close mapserver: %v", err)
		}
	})
}

// req is a request for call.
type req struct {
	op      xseg.Op
	port    int
	target  string
	offset  uint64
	size    uint64
	flags   xseg.Flags
	data    []byte
	dataLen uint64
}

// reply is what came back.
type reply struct {
	err      error
	serviced uint64
	data     []byte
}

// call sends q (to mapperd unless q.port is set) and waits for its reply.
func (h *host) call(q req) reply {
	return call(h.t, h.client, q)
}

func call(t testing.TB, c *peers.Client, q req) reply {
	t.Helper()
	rep, err := tryCall(c, q)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// tryCall is call for goroutines and for peers that may be dead: a
// request that could not be sent is an error, one failed back is a reply.
func tryCall(c *peers.Client, q req) (reply, error) {
	if q.port == 0 {
		q.port = mapperPort
	}
	r, err := c.Get()
	if err != nil {
		return reply{}, err
	}
	if err := r.Prepare(q.op, q.target, max(uint64(len(q.data)), q.dataLen)); err != nil {
		c.Put(r)
		return reply{}, err
	}
	copy(r.Data(), q.data)
	r.SetOffset(q.offset)
	r.SetSize(q.size)
	r.SetFlags(q.flags)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, r, q.port)
	if err != nil {
		c.Put(r)
		return reply{}, fmt.Errorf("%s %q: %w", q.op, q.target, err)
	}
	out := reply{err: rep.Err(), serviced: rep.Serviced(), data: bytes.Clone(rep.Data())}
	c.Put(rep)
	return out, nil
}

// must fails the test unless rep succeeded.
func must(t testing.TB, what string, rep reply) reply {
	t.Helper()
	if rep.err != nil {
		t.Fatalf("%s: %v", what, rep.err)
	}
	return rep
}

// wantErrno fails the test unless rep failed with errno.
func wantErrno(t testing.TB, what string, rep reply, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(rep.err, errno) {
		t.Errorf("%s: reply %v, want %v (%d)", what, rep.err, errno, int(errno))
	}
}

func (h *host) create(name string, size, blockSize uint64) reply {
	return h.call(req{op: xseg.OpClone, target: name, size: blockSize, data: peertest.CloneData(h.t, "", size)})
}

func (h *host) clone(parent, name string, size uint64) reply {
	return h.call(req{op: xseg.OpClone, target: name, data: peertest.CloneData(h.t, parent, size)})
}

func (h *host) snapshot(vol, snap string) reply {
	return h.call(req{op: xseg.OpSnapshot, target: vol, data: peertest.NameData(h.t, snap)})
}

func (h *host) rename(vol, to string) reply {
	return h.call(req{op: xseg.OpRename, target: vol, data: peertest.NameData(h.t, to)})
}

func (h *host) simple(op xseg.Op, vol string, flags xseg.Flags) reply {
	return h.call(req{op: op, target: vol, flags: flags, dataLen: protocol.NameLen})
}

func (h *host) info(vol string) (uint64, error) {
	rep := h.call(req{op: xseg.OpInfo, target: vol, dataLen: protocol.InfoLen})
	if rep.err != nil {
		return 0, rep.err
	}
	return protocol.DecodeInfo(rep.data)
}

// mapIO sends MAPR or MAPW with room for the segments of 4 KiB blocks.
func (h *host) mapIO(op xseg.Op, vol string, off, size uint64) ([]protocol.Segment, error) {
	return mapIO(h.t, h.client, op, vol, off, size)
}

func mapIO(t testing.TB, c *peers.Client, op xseg.Op, vol string, off, size uint64) ([]protocol.Segment, error) {
	rep := call(t, c, req{op: op, target: vol, offset: off, size: size, dataLen: uint64(protocol.MapLen(int(min(size/4096, 1024)) + 2))})
	if rep.err != nil {
		return nil, rep.err
	}
	if rep.serviced > uint64(len(rep.data)) {
		t.Fatalf("%s: serviced %d of a %d-byte buffer", op, rep.serviced, len(rep.data))
	}
	return protocol.DecodeMap(rep.data[:rep.serviced])
}

// write writes p at off of volume vol as vlmcd does: MAPW, then the
// object writes, durable.
func (h *host) write(vol string, off uint64, p []byte) error {
	return writeVolume(h.t, h.client, vol, off, p)
}

func writeVolume(t testing.TB, c *peers.Client, vol string, off uint64, p []byte) error {
	segs, err := mapIO(t, c, xseg.OpMapWrite, vol, off, uint64(len(p)))
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s.Flags != 0 {
			t.Fatalf("MAPW %q: segment %+v has flags", vol, s)
		}
		rep := call(t, c, req{op: xseg.OpWrite, port: dataPort, target: s.Object, offset: s.Offset, size: s.Size, flags: xseg.FlagFUA, data: p[:s.Size]})
		if rep.err != nil {
			return fmt.Errorf("write %s: %w", s.Object, rep.err)
		}
		p = p[s.Size:]
	}
	return nil
}

// read reads n bytes at off of volume vol as vlmcd does.
func (h *host) read(vol string, off, n uint64) ([]byte, error) {
	return readVolume(h.t, h.client, vol, off, n)
}

func readVolume(t testing.TB, c *peers.Client, vol string, off, n uint64) ([]byte, error) {
	segs, err := mapIO(t, c, xseg.OpMapRead, vol, off, n)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, n)
	for _, s := range segs {
		if s.Flags&protocol.SegmentZero != 0 {
			out = append(out, make([]byte, s.Size)...)
			continue
		}
		rep := call(t, c, req{op: xseg.OpRead, port: dataPort, target: s.Object, offset: s.Offset, size: s.Size, dataLen: s.Size})
		if rep.err != nil {
			return nil, fmt.Errorf("read %s: %w", s.Object, rep.err)
		}
		out = append(out, rep.data[:s.Size]...)
	}
	return out, nil
}

// mustRead reads and compares with want.
func (h *host) mustRead(vol string, off uint64, want []byte) {
	h.t.Helper()
	got, err := h.read(vol, off, uint64(len(want)))
	if err != nil {
		h.t.Fatalf("read %q: %v", vol, err)
	}
	if !bytes.Equal(got, want) {
		h.t.Fatalf("read %q at %d: %s, want %s", vol, off, summary(got), summary(want))
	}
}

// summary describes b in runs of equal bytes.
func summary(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && b[j] == b[i] {
			j++
		}
		fmt.Fprintf(&out, "%d×%#x ", j-i, b[i])
		i = j
		if out.Len() > 200 {
			out.WriteString("...")
			break
		}
	}
	return out.String()
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// storedMap loads volume name's map straight from the map blocker.
func (h *host) storedMap(name string) *mapper.Map {
	h.t.Helper()
	m, err := h.srv.st.lookup(name, false)
	if err != nil {
		h.t.Fatalf("load %q: %v", name, err)
	}
	return m
}
