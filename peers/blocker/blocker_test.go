package blocker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// host is a segment with blockers over one data directory.
type host struct {
	seg     *xseg.Segment
	dataDir string
	// loop serves through Blocker.Loop over a store with an asynchronous
	// path (asyncStore), not through peers.Server.
	loop *asyncStats
}

// serveWithLoop makes newHost's hosts serve through Blocker.Loop; TestLoop
// sets it to run the tests of this file that way too.
var serveWithLoop *asyncStats

func newHost(t *testing.T) *host {
	s, _ := peertest.Segment(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &host{seg: s, dataDir: dataDir, loop: serveWithLoop}
}

// blocker starts a blocker on port over the host's data directory and
// returns a client of it and a function that stops it (draining).
func (h *host) blocker(t *testing.T, port int, opts blocker.Options) (*peertest.Client, func()) {
	t.Helper()
	store, err := file.Open(h.dataDir, file.Options{Owner: opts.Owner})
	if err != nil {
		t.Fatal(err)
	}
	var served drivers.Store = store
	if h.loop != nil {
		served = &asyncStore{Store: store, stats: h.loop}
	}
	b, err := blocker.New(served, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.seg.Bind(port)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if h.loop != nil {
			b.Loop(8, nil)(ctx, []*xseg.Port{p})
		} else {
			(&peers.Server{Handler: b, Inflight: 8}).Serve(ctx, p)
		}
		b.Close()
		p.Release()
		close(done)
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return peertest.NewClient(t, h.seg, port), stop
}

func wantErr(t *testing.T, what string, rep peertest.Reply, want error) {
	t.Helper()
	if want == nil {
		if rep.Err != nil {
			t.Fatalf("%s: %v", what, rep.Err)
		}
		return
	}
	if !errors.Is(rep.Err, want) {
		t.Fatalf("%s: reply %v, want %v", what, rep.Err, want)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestReadWrite(t *testing.T) {
	h := newHost(t)
	c, _ := h.blocker(t, 1, blocker.Options{Owner: "host_1"})
	data := pattern(10000, 1)
	rep := c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Offset: 4093, Size: uint64(len(data)), Data: data})
	wantErr(t, "write", rep, nil)
	if rep.Serviced != uint64(len(data)) {
		t.Errorf("write serviced %d", rep.Serviced)
	}
	// Read across the start, the written range and past the end.
	rep = c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "obj", Offset: 4000, Size: 20000})
	wantErr(t, "read", rep, nil)
	want := make([]byte, 20000)
	copy(want[93:], data)
	if rep.Serviced != 20000 || !bytes.Equal(rep.Data, want) {
		t.Errorf("read back differs (serviced %d)", rep.Serviced)
	}
	// A missing object reads as zeros, in a buffer that held other bytes.
	rep = c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "missing", Size: 4096, Data: pattern(4096, 9)})
	wantErr(t, "read missing", rep, nil)
	if !bytes.Equal(rep.Data, make([]byte, 4096)) || rep.Serviced != 4096 {
		t.Error("missing object did not read as zeros")
	}
	// FUA and FLUSH writes, and the flush barriers.
	wantErr(t, "fua", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Size: 512, Data: pattern(512, 3), Flags: xseg.FlagFUA}), nil)
	wantErr(t, "flush write", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Size: 512, Data: pattern(512, 3), Flags: xseg.FlagFlush}), nil)
	wantErr(t, "barrier", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Flags: xseg.FlagFlush | xseg.FlagFUA}), nil)
	wantErr(t, "empty write", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj"}), nil)
	wantErr(t, "flush op", c.MustDo(t, peertest.Req{Op: xseg.OpFlush}), nil)
	wantErr(t, "ping", c.MustDo(t, peertest.Req{Op: xseg.OpPing}), nil)
}

func TestInfoDeleteCopyHash(t *testing.T) {
	h := newHost(t)
	c, _ := h.blocker(t, 1, blocker.Options{Owner: "host_1"})
	data := pattern(6000, 5)
	wantErr(t, "write", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "src", Size: 6000, Data: data}), nil)

	rep := c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "src", DataLen: protocol.InfoLen})
	wantErr(t, "info", rep, nil)
	if size, err := protocol.DecodeInfo(rep.Data); err != nil || size != 6000 {
		t.Errorf("info size %d %v", size, err)
	}
	wantErr(t, "info missing", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "nothing", DataLen: 8}), syscall.ENOENT)
	wantErr(t, "info without reply room", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "src", DataLen: 4}), syscall.EINVAL)

	payload := make([]byte, protocol.NameLen)
	if err := protocol.EncodeName(payload, "src"); err != nil {
		t.Fatal(err)
	}
	rep = c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Size: 8192, Data: payload})
	wantErr(t, "copy", rep, nil)
	if rep.Serviced != 8192 {
		t.Errorf("copy serviced %d", rep.Serviced)
	}
	rep = c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "dst", Size: 8192})
	want := append(append([]byte(nil), data...), make([]byte, 8192-6000)...)
	if !bytes.Equal(rep.Data, want) {
		t.Error("copy differs from its source")
	}
	wantErr(t, "copy at offset", c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Offset: 4096, Size: 4096, Data: payload}), syscall.EINVAL)

	rep = c.MustDo(t, peertest.Req{Op: xseg.OpHash, Target: "src", DataLen: protocol.NameLen})
	wantErr(t, "hash", rep, nil)
	name, err := protocol.DecodeName(rep.Data)
	sum := sha256.Sum256(data)
	if err != nil || name != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %q %v, want %x", name, err, sum)
	}
	rep = c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: name, Size: 6000})
	if !bytes.Equal(rep.Data, data) {
		t.Error("content-addressed copy differs")
	}
	wantErr(t, "hash without reply room", c.MustDo(t, peertest.Req{Op: xseg.OpHash, Target: "src", DataLen: 64}), syscall.EINVAL)

	wantErr(t, "delete", c.MustDo(t, peertest.Req{Op: xseg.OpDelete, Target: "src"}), nil)
	wantErr(t, "delete again", c.MustDo(t, peertest.Req{Op: xseg.OpDelete, Target: "src"}), syscall.ENOENT)
	wantErr(t, "info deleted", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "src", DataLen: 8}), syscall.ENOENT)
}

func TestLocks(t *testing.T) {
	h := newHost(t)
	a, _ := h.blocker(t, 1, blocker.Options{Owner: "hostA_1", LockWait: 100 * time.Millisecond})
	b, _ := h.blocker(t, 2, blocker.Options{Owner: "hostB_1", LockWait: 5 * time.Second})

	wantErr(t, "a try", a.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol", Flags: xseg.FlagNoSync}), nil)
	wantErr(t, "a again", a.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol", Flags: xseg.FlagNoSync}), nil)
	wantErr(t, "b try", b.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol", Flags: xseg.FlagNoSync}), syscall.EAGAIN)
	wantErr(t, "b release", b.MustDo(t, peertest.Req{Op: xseg.OpRelease, Target: "vol"}), syscall.EPERM)

	// A blocking acquire waits until the holder releases.
	if _, err := b.Submit(peertest.Req{Op: xseg.OpAcquire, Target: "vol"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	wantErr(t, "a release", a.MustDo(t, peertest.Req{Op: xseg.OpRelease, Target: "vol"}), nil)
	rep, r, err := b.Receive()
	if err != nil {
		t.Fatal(err)
	}
	b.Port.Put(r)
	wantErr(t, "b blocking acquire", rep, nil)

	// A's blocking acquire gives up after its LockWait.
	start := time.Now()
	wantErr(t, "a blocking acquire", a.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol"}), syscall.ETIMEDOUT)
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Errorf("blocking acquire gave up after %v, want about 100ms", d)
	}
	// A forced release breaks B's lock.
	wantErr(t, "a force", a.MustDo(t, peertest.Req{Op: xseg.OpRelease, Target: "vol", Flags: xseg.FlagForce}), nil)
	wantErr(t, "release free", a.MustDo(t, peertest.Req{Op: xseg.OpRelease, Target: "vol"}), syscall.ENOENT)
	wantErr(t, "a takes it", a.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol", Flags: xseg.FlagNoSync}), nil)
}

// TestStopCancelsLockWait: a blocking ACQUIRE does not hold up a drain.
func TestStopCancelsLockWait(t *testing.T) {
	h := newHost(t)
	a, _ := h.blocker(t, 1, blocker.Options{Owner: "hostA_1"})
	b, stopB := h.blocker(t, 2, blocker.Options{Owner: "hostB_1", LockWait: time.Hour})
	wantErr(t, "a", a.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol"}), nil)
	if _, err := b.Submit(peertest.Req{Op: xseg.OpAcquire, Target: "vol"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	stopB()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v", d)
	}
	rep, r, err := b.Receive()
	if err != nil {
		t.Fatal(err)
	}
	b.Port.Put(r)
	wantErr(t, "acquire during stop", rep, syscall.ECANCELED)
}

// TestHostileInput: bad names, sizes and payloads get clear errnos, and
// nothing outside the data directory is touched.
func TestHostileInput(t *testing.T) {
	h := newHost(t)
	c, _ := h.blocker(t, 1, blocker.Options{Owner: "host_1"})
	data := pattern(4096, 1)
	for _, name := range []string{"../x", "", ".", "..", "a/b", "/etc/passwd", "x\x00y"} {
		for _, op := range []xseg.Op{xseg.OpRead, xseg.OpWrite, xseg.OpDelete, xseg.OpInfo, xseg.OpAcquire, xseg.OpRelease, xseg.OpHash} {
			rep := c.MustDo(t, peertest.Req{Op: op, Target: name, Size: 4096, Data: data, DataLen: 4096})
			wantErr(t, fmt.Sprintf("%s %q", op, name), rep, syscall.EINVAL)
		}
	}
	// 257 bytes do not fit a request's target: the client is refused.
	if _, err := c.Submit(peertest.Req{Op: xseg.OpRead, Target: strings.Repeat("a", 257), Size: 8}); !errors.Is(err, xseg.ErrTargetTooLong) {
		t.Errorf("257-byte target: %v", err)
	}
	// 256 bytes fit a request, but not a file name (NAME_MAX is 255).
	long := strings.Repeat("a", drivers.MaxNameLen)
	wantErr(t, "256-byte name", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: long, Size: 4096, Data: data}), syscall.EINVAL)
	wantErr(t, "250-byte name", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: long[:250], Size: 4096, Data: data}), nil)

	// COPY payloads: a name length over 256, a buffer too short, a bad source.
	bad := make([]byte, protocol.NameLen)
	protocol.EncodeName(bad, "src")
	bad[256], bad[257] = 0x01, 0x01 // targetlen 257
	wantErr(t, "copy targetlen 257", c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Size: 4096, Data: bad}), syscall.EINVAL)
	wantErr(t, "copy short payload", c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Size: 4096, DataLen: 100}), syscall.EINVAL)
	protocol.EncodeName(bad, "../../etc/passwd")
	wantErr(t, "copy hostile source", c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Size: 4096, Data: bad}), syscall.EINVAL)

	// Sizes the data buffer cannot hold, offsets that overflow.
	wantErr(t, "read past buffer", c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: "obj", Size: 8192, DataLen: 4096}), syscall.EINVAL)
	wantErr(t, "write overflow", c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "obj", Offset: 1<<63 - 100, Size: 4096, Data: data}), syscall.EINVAL)
	wantErr(t, "info missing", c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "missing", DataLen: 8}), syscall.ENOENT)
	for _, op := range []xseg.Op{xseg.OpSync, xseg.OpMapRead, xseg.OpClone, xseg.Op(99)} {
		wantErr(t, op.String(), c.MustDo(t, peertest.Req{Op: op, Target: "obj"}), syscall.EOPNOTSUPP)
	}
	wantErr(t, "still up", c.MustDo(t, peertest.Req{Op: xseg.OpPing}), nil)

	parent := filepath.Dir(h.dataDir)
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if p := filepath.Join(parent, e.Name()); p != h.dataDir {
			t.Errorf("something appeared beside the data directory: %s", p)
		}
	}
}

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{fmt.Errorf("x: %w", drivers.ErrNotFound), syscall.ENOENT},
		{drivers.ErrInvalidName, syscall.EINVAL},
		{drivers.ErrInvalidRange, syscall.EINVAL},
		{protocol.ErrBadPayload, syscall.EINVAL},
		{drivers.ErrLocked, syscall.EAGAIN},
		{drivers.ErrNotOwner, syscall.EPERM},
		{fmt.Errorf("rados: %w", syscall.ETIMEDOUT), syscall.ETIMEDOUT},
		{context.DeadlineExceeded, syscall.ETIMEDOUT},
		{errors.New("disk on fire"), syscall.EIO},
	} {
		if got := blocker.Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if _, err := blocker.New(nil, blocker.Options{Owner: "a/b"}); err == nil {
		t.Error("owner with '/' accepted")
	}
}
