package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// client sends requests to one port (vlmcd's) over a peers.Client.
type client struct {
	c   *peers.Client
	dst int
}

type req struct {
	op      xseg.Op
	target  string
	offset  uint64
	size    uint64
	flags   xseg.Flags
	data    []byte // copied into the buffer
	dataLen uint64 // buffer length; max(len(data), size) when 0
}

type reply struct {
	err      error // the errno, xseg.ErrPeerDied, or nil
	serviced uint64
	data     []byte
}

// callTimeout bounds one request.
const callTimeout = 20 * time.Second

// try sends q and waits for its reply: a request that could not be sent
// (or got no reply) is an error, one failed back is a reply.
func (c *client) try(q req) (reply, error) {
	r, err := c.c.Get()
	if err != nil {
		return reply{}, err
	}
	n := max(uint64(len(q.data)), q.size, q.dataLen)
	if err := r.Prepare(q.op, q.target, n); err != nil {
		c.c.Put(r)
		return reply{}, err
	}
	copy(r.Data(), q.data)
	r.SetOffset(q.offset)
	r.SetSize(q.size)
	r.SetFlags(q.flags)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	rep, err := c.c.Call(ctx, r, c.dst)
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			c.c.Put(r) // not submitted; a timed-out one is put back by the client
		}
		return reply{}, fmt.Errorf("%s %q: %w", q.op, q.target, err)
	}
	out := reply{err: rep.Err(), serviced: rep.Serviced(), data: bytes.Clone(rep.Data())}
	c.c.Put(rep)
	return out, nil
}

func (c *client) call(t testing.TB, q req) reply {
	t.Helper()
	rep, err := c.try(q)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// must fails the test unless q succeeds.
func (c *client) must(t testing.TB, q req) reply {
	t.Helper()
	rep := c.call(t, q)
	if rep.err != nil {
		t.Fatalf("%s %q [%d+%d]: %v", q.op, q.target, q.offset, q.size, rep.err)
	}
	return rep
}

func (c *client) create(t testing.TB, name string, size uint64) {
	t.Helper()
	c.must(t, req{op: xseg.OpClone, target: name, data: peertest.CloneData(t, "", size)})
}

func (c *client) clone(t testing.TB, parent, name string, size uint64) reply {
	t.Helper()
	return c.call(t, req{op: xseg.OpClone, target: name, data: peertest.CloneData(t, parent, size)})
}

func (c *client) snapshot(t testing.TB, vol, snap string) {
	t.Helper()
	c.must(t, req{op: xseg.OpSnapshot, target: vol, data: peertest.NameData(t, snap)})
}

func (c *client) info(t testing.TB, vol string) protocol.VolumeInfo {
	t.Helper()
	rep := c.must(t, req{op: xseg.OpInfo, target: vol, dataLen: protocol.VolumeInfoLen})
	v, err := protocol.DecodeVolumeInfo(rep.data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (c *client) write(t testing.TB, vol string, off uint64, data []byte, flags xseg.Flags) {
	t.Helper()
	rep := c.must(t, req{op: xseg.OpWrite, target: vol, offset: off, size: uint64(len(data)), flags: flags, data: data})
	if rep.serviced != uint64(len(data)) {
		t.Fatalf("WRITE %q [%d+%d]: serviced %d", vol, off, len(data), rep.serviced)
	}
}

func (c *client) read(t testing.TB, vol string, off, n uint64) []byte {
	t.Helper()
	rep := c.must(t, req{op: xseg.OpRead, target: vol, offset: off, size: n})
	if rep.serviced != n {
		t.Fatalf("READ %q [%d+%d]: serviced %d", vol, off, n, rep.serviced)
	}
	return rep.data[:n]
}

// expect reads [off, off+len(want)) of vol and compares it byte for byte.
func (c *client) expect(t testing.TB, what, vol string, off uint64, want []byte) {
	t.Helper()
	got := c.read(t, vol, off, uint64(len(want)))
	if i := firstDiff(got, want); i >= 0 {
		t.Errorf("%s: %q [%d+%d] differs at byte %d (volume offset %d): got %#02x, want %#02x",
			what, vol, off, len(want), i, off+uint64(i), got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func wantErrno(t testing.TB, what string, rep reply, errnos ...syscall.Errno) {
	t.Helper()
	for _, e := range errnos {
		if errors.Is(rep.err, e) {
			return
		}
	}
	t.Errorf("%s: reply %v, want one of %v", what, rep.err, errnos)
}

// pattern is n bytes that differ with seed and position, never zero: a
// pseudo-random tile of patternTile bytes (odd, so that data misplaced by
// pages or sectors shows), repeated.
func pattern(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range min(n, patternTile) {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x) | 1
	}
	for i := patternTile; i < n; i *= 2 {
		copy(b[i:], b[:i])
	}
	return b
}

const patternTile = 4099

// image is the expected content of a volume, kept beside it.
type image []byte

func (m image) put(off uint64, data []byte) { copy(m[off:], data) }
