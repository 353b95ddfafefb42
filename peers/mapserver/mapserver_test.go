package mapserver

import (
	"bytes"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

func TestLifecycle(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")

	must(t, "create", h.create("vol", 64*mib, 0))
	if size, err := h.info("vol"); err != nil || size != 64*mib {
		t.Fatalf("info = %d, %v", size, err)
	}
	must(t, "create with 64 KiB objects", h.create("small", 10*mib, 64*kib))
	for _, vol := range []string{"vol", "small"} {
		rep := must(t, "info", h.call(req{op: xseg.OpInfo, target: vol, dataLen: protocol.VolumeInfoLen}))
		vi, err := protocol.DecodeVolumeInfo(rep.data)
		if want := map[string]uint64{"vol": 4 * mib, "small": 64 * kib}[vol]; err != nil || vi.BlockSize != want || rep.serviced != protocol.VolumeInfoLen {
			t.Errorf("INFO %s of 16 bytes: %+v, %v, serviced %d", vol, vi, err, rep.serviced)
		}
	}
	h.mustRead("vol", 0, make([]byte, 8*mib)) // never written: zeros
	a := fill('A', 6*mib)
	if err := h.write("vol", 1*mib, a); err != nil {
		t.Fatal(err)
	}
	h.mustRead("vol", 1*mib, a)

	must(t, "snapshot", h.snapshot("vol", "snap1"))
	if err := h.write("vol", 2*mib, fill('B', mib)); err != nil {
		t.Fatal(err)
	}
	h.mustRead("snap1", 1*mib, a)
	want := bytes.Clone(a)
	copy(want[mib:], fill('B', mib))
	h.mustRead("vol", 1*mib, want)

	must(t, "clone", h.clone("snap1", "clone1", 128*mib))
	if size, _ := h.info("clone1"); size != 128*mib {
		t.Fatalf("clone size %d", size)
	}
	h.mustRead("clone1", 1*mib, a)
	h.mustRead("clone1", 64*mib, make([]byte, mib))
	if err := h.write("clone1", 5*mib, fill('C', 2*mib)); err != nil {
		t.Fatal(err)
	}
	h.mustRead("snap1", 5*mib, a[4*mib:])

	must(t, "rename", h.rename("clone1", "clone2"))
	wantErrno(t, "info of the old name", reply{err: errOf(h.info("clone1"))}, syscall.ENOENT)
	h.mustRead("clone2", 5*mib, fill('C', 2*mib))
	if err := h.write("clone2", 0, fill('D', 4*kib)); err != nil {
		t.Fatal(err)
	}
	h.mustRead("clone2", 0, fill('D', 4*kib))

	// Grow, then shrink (with force only).
	must(t, "grow", h.call(req{op: xseg.OpTruncate, target: "vol", offset: 100 * mib}))
	if size, _ := h.info("vol"); size != 100*mib {
		t.Fatalf("grown size %d", size)
	}
	h.mustRead("vol", 90*mib, make([]byte, mib))
	wantErrno(t, "shrink without force", h.call(req{op: xseg.OpTruncate, target: "vol", offset: 3 * mib}), syscall.EPERM)
	must(t, "shrink", h.call(req{op: xseg.OpTruncate, target: "vol", offset: 3*mib + 4*kib, flags: xseg.FlagForce}))
	if size, _ := h.info("vol"); size != 3*mib+4*kib {
		t.Fatalf("shrunk size %d", size)
	}
	_, err := h.mapIO(xseg.OpMapRead, "vol", 3*mib, 8*kib)
	wantErrno(t, "read past the new end", reply{err: err}, syscall.ERANGE)

	must(t, "delete clone", h.simple(xseg.OpDelete, "clone2", 0))
	wantErrno(t, "info of a removed volume", reply{err: errOf(h.info("clone2"))}, syscall.ENOENT)
	wantErrno(t, "delete again", h.simple(xseg.OpDelete, "clone2", 0), syscall.ENOENT)
	// The snapshot outlives its clone and keeps its data.
	h.mustRead("snap1", 1*mib, a)
	// A new volume of a removed name starts from the old epoch.
	must(t, "create again", h.create("clone2", 8*mib, 0))
	if m := h.storedMap("clone2"); m.Epoch < 2 {
		t.Errorf("re-created volume has epoch %d, want above its predecessor's", m.Epoch)
	}
	h.mustRead("clone2", 0, make([]byte, 8*mib))
}

func errOf(_ uint64, err error) error { return err }

func TestCopyUp(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	must(t, "create", h.create("base", 16*mib, 0))
	if err := h.write("base", 0, fill('x', 8*mib)); err != nil {
		t.Fatal(err)
	}
	must(t, "snapshot", h.snapshot("base", "base-snap"))
	must(t, "clone", h.clone("base-snap", "vm1", 0))

	segs, err := h.mapIO(xseg.OpMapRead, "vm1", 4*mib+100, 4*mib+200)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 {
		t.Fatalf("MAPR segments %+v", segs)
	}
	if segs[0].Flags != protocol.SegmentReadOnly || segs[0].Offset != 100 || segs[0].Size != 4*mib-100 {
		t.Errorf("segment 0 %+v: want the snapshot's object, read-only, from 100", segs[0])
	}
	if segs[1].Flags != protocol.SegmentZero|protocol.SegmentReadOnly || segs[1].Object != mapper.ZeroObject || segs[1].Size != 300 {
		t.Errorf("segment 1 %+v: want a zero segment of 300 bytes", segs[1])
	}
	shared := segs[0].Object

	copies := h.data.count(xseg.OpCopy)
	epoch := h.storedMap("vm1").Epoch
	segs, err = h.mapIO(xseg.OpMapWrite, "vm1", 4*mib+4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	wantObj := mapper.CopyUpName("vm1", epoch, 1)
	if len(segs) != 1 || segs[0].Object != wantObj || segs[0].Flags != 0 || segs[0].Offset != 4096 {
		t.Fatalf("MAPW segments %+v, want %s", segs, wantObj)
	}
	if got := h.data.count(xseg.OpCopy) - copies; got != 1 {
		t.Errorf("the data blocker got %d COPY requests, want 1", got)
	}
	if e := h.storedMap("vm1").Entry(1); e.Name != wantObj || !e.Writable() {
		t.Errorf("stored entry 1 = %v, want %s writable", e, wantObj)
	}
	if e := h.storedMap("base-snap").Entry(1); e.Name != shared {
		t.Errorf("the snapshot's entry changed to %v", e)
	}
	// The copy holds the snapshot's data; a second MAPW copies nothing.
	h.mustRead("vm1", 4*mib, fill('x', 4*mib))
	if _, err := h.mapIO(xseg.OpMapWrite, "vm1", 4*mib, 4*mib); err != nil {
		t.Fatal(err)
	}
	if got := h.data.count(xseg.OpCopy) - copies; got != 1 {
		t.Errorf("after a second MAPW: %d COPY requests, want 1", got)
	}
	// A never-written block is created, not copied.
	if _, err := h.mapIO(xseg.OpMapWrite, "vm1", 12*mib, 10); err != nil {
		t.Fatal(err)
	}
	if got := h.data.count(xseg.OpCopy) - copies; got != 1 {
		t.Errorf("MAPW of a zero block sent COPY")
	}
	h.mustRead("vm1", 12*mib, make([]byte, 4*mib))
	// MAPR on the cached map costs the blockers nothing.
	reads := h.maps.count(xseg.OpRead) + h.data.count(xseg.OpRead)
	for range 100 {
		if _, err := h.mapIO(xseg.OpMapRead, "vm1", 0, 16*mib); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.maps.count(xseg.OpRead) + h.data.count(xseg.OpRead) - reads; got != 0 {
		t.Errorf("100 MAPR of an open volume sent %d READs to the blockers", got)
	}
}

func TestBadInput(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	must(t, "create", h.create("vol", 8*mib, 0))
	must(t, "snapshot", h.snapshot("vol", "snap"))

	wantErrno(t, "info of an unknown volume", reply{err: errOf(h.info("nope"))}, syscall.ENOENT)
	for _, op := range []xseg.Op{xseg.OpOpen, xseg.OpClose, xseg.OpDelete, xseg.OpUpdate, xseg.OpMapRead, xseg.OpMapWrite} {
		wantErrno(t, op.String()+" of an unknown volume", h.call(req{op: op, target: "nope", size: 1, dataLen: 4096}), syscall.ENOENT)
	}
	wantErrno(t, "snapshot of a missing volume", h.snapshot("nope", "nope-snap"), syscall.ENOENT)
	wantErrno(t, "clone of a missing snapshot", h.clone("nope", "c", 0), syscall.ENOENT)
	wantErrno(t, "rename of a missing volume", h.rename("nope", "nope2"), syscall.ENOENT)
	wantErrno(t, "create over a volume", h.create("vol", mib, 0), syscall.EEXIST)
	wantErrno(t, "clone to an existing name", h.clone("snap", "vol", 0), syscall.EEXIST)
	wantErrno(t, "snapshot to an existing name", h.snapshot("vol", "snap"), syscall.EEXIST)
	wantErrno(t, "rename to an existing name", h.rename("vol", "snap"), syscall.EEXIST)
	wantErrno(t, "clone of a volume", h.clone("vol", "c", 0), syscall.EINVAL)
	wantErrno(t, "clone smaller than its parent", h.clone("snap", "c", mib), syscall.EINVAL)
	wantErrno(t, "create of size 0", h.create("c", 0, 0), syscall.EINVAL)
	wantErrno(t, "create with a block size of 1000", h.create("c", mib, 1000), syscall.EINVAL)
	wantErrno(t, "create of 1 EiB", h.create("c", 1<<60, 0), syscall.EFBIG)

	_, err := h.mapIO(xseg.OpMapRead, "vol", 8*mib-10, 11)
	wantErrno(t, "MAPR past the end", reply{err: err}, syscall.ERANGE)
	_, err = h.mapIO(xseg.OpMapWrite, "vol", 1<<63, 1<<63)
	wantErrno(t, "MAPW overflowing", reply{err: err}, syscall.ERANGE)
	_, err = h.mapIO(xseg.OpMapWrite, "snap", 0, 10)
	wantErrno(t, "MAPW of a snapshot", reply{err: err}, syscall.EROFS)
	wantErrno(t, "resize of a snapshot", h.call(req{op: xseg.OpTruncate, target: "snap", offset: 16 * mib}), syscall.EROFS)
	wantErrno(t, "snapshot of a snapshot", h.snapshot("snap", "snap2"), syscall.EROFS)
	rep := h.call(req{op: xseg.OpMapRead, target: "vol", size: 8 * mib, dataLen: 100})
	wantErrno(t, "MAPR into a small buffer", rep, syscall.ENOBUFS)
	if rep.serviced != uint64(protocol.MapLen(2)) {
		t.Errorf("ENOBUFS serviced %d, want %d", rep.serviced, protocol.MapLen(2))
	}
	wantErrno(t, "INFO into a small buffer", h.call(req{op: xseg.OpInfo, target: "vol", dataLen: 4}), syscall.EINVAL)
	wantErrno(t, "clone with a short payload", h.call(req{op: xseg.OpClone, target: "c", dataLen: 100}), syscall.EINVAL)
	wantErrno(t, "CREATE", h.call(req{op: xseg.OpCreate, target: "c"}), syscall.EOPNOTSUPP)
	wantErrno(t, "READ", h.call(req{op: xseg.OpRead, target: "vol", size: 10}), syscall.EOPNOTSUPP)

	hostile := []string{"", ".", "..", "a/b", "../../etc/passwd", "x\x00y", strings.Repeat("n", 83)}
	for _, name := range hostile {
		wantErrno(t, "INFO of "+quote(name), h.call(req{op: xseg.OpInfo, target: name, dataLen: 8}), syscall.EINVAL)
		wantErrno(t, "MAPW of "+quote(name), h.call(req{op: xseg.OpMapWrite, target: name, size: 1, dataLen: 4096}), syscall.EINVAL)
	}
	for _, name := range append(hostile, "x_lock", "x_hash", "vol_0000000000000001", "a b", "é", strings.Repeat("ab", 32)) {
		wantErrno(t, "create "+quote(name), h.create(name, mib, 0), syscall.EINVAL)
		wantErrno(t, "snapshot as "+quote(name), h.snapshot("vol", name), syscall.EINVAL)
		wantErrno(t, "rename to "+quote(name), h.rename("vol", name), syscall.EINVAL)
	}
	// The volume survived all of it.
	if err := h.write("vol", 0, fill('z', 100)); err != nil {
		t.Fatal(err)
	}
	h.mustRead("vol", 0, fill('z', 100))
}

func quote(s string) string {
	return strings.ReplaceAll(string([]rune(s)[:min(len([]rune(s)), 20)]), "\x00", `\0`)
}

func TestLocks(t *testing.T) {
	dataDir, mapDir := dirs(t)
	a := newHost(t, dataDir, mapDir, "hostA")
	b := newHost(t, dataDir, mapDir, "hostB")
	must(t, "create", a.create("vol", 16*mib, 0))
	must(t, "open on A", a.simple(xseg.OpOpen, "vol", xseg.FlagNoSync))
	must(t, "open on A again", a.simple(xseg.OpOpen, "vol", xseg.FlagNoSync))

	rep := b.simple(xseg.OpOpen, "vol", xseg.FlagNoSync)
	wantErrno(t, "open on B", rep, syscall.EAGAIN)
	if owner, err := protocol.DecodeName(rep.data); err != nil || owner != "hostA" || rep.serviced != protocol.NameLen {
		t.Errorf("the lock error names %q (%v, serviced %d), want hostA", owner, err, rep.serviced)
	}
	_, err := b.mapIO(xseg.OpMapWrite, "vol", 0, 10)
	wantErrno(t, "MAPW on B", reply{err: err}, syscall.EAGAIN)
	wantErrno(t, "snapshot on B", b.snapshot("vol", "s"), syscall.EAGAIN)
	wantErrno(t, "close on B", b.simple(xseg.OpClose, "vol", 0), syscall.EPERM)
	// B may read the volume A holds, uncached.
	if err := a.write("vol", 0, fill('a', 4096)); err != nil {
		t.Fatal(err)
	}
	b.mustRead("vol", 0, fill('a', 4096))

	must(t, "close on A", a.simple(xseg.OpClose, "vol", 0))
	must(t, "open on B after A closed", b.simple(xseg.OpOpen, "vol", xseg.FlagNoSync))
	if err := b.write("vol", 4096, fill('b', 4096)); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "open on A while B holds it", a.simple(xseg.OpOpen, "vol", 0), syscall.EAGAIN)
	must(t, "forced open on A", a.simple(xseg.OpOpen, "vol", xseg.FlagForce))
	a.mustRead("vol", 0, append(fill('a', 4096), fill('b', 4096)...))
	must(t, "close on A", a.simple(xseg.OpClose, "vol", 0))

	// A snapshot opens on both hosts: no lock.
	must(t, "snapshot", a.snapshot("vol", "vol-snap"))
	must(t, "open snapshot on A", a.simple(xseg.OpOpen, "vol-snap", 0))
	must(t, "open snapshot on B", b.simple(xseg.OpOpen, "vol-snap", 0))
	b.mustRead("vol-snap", 0, append(fill('a', 4096), fill('b', 4096)...))
}

// TestConcurrentWrites sends many MAPW of the same blocks of a clone at
// once, with snapshots in between: one copy-up per block, and every write
// lands in the volume.
func TestConcurrentWrites(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	const bs = 64 * kib
	must(t, "create", h.create("base", 16*bs, bs))
	if err := h.write("base", 0, fill('.', 16*bs)); err != nil {
		t.Fatal(err)
	}
	must(t, "snapshot", h.snapshot("base", "base-snap"))
	must(t, "clone", h.clone("base-snap", "vol", 0))
	copies := h.data.count(xseg.OpCopy)

	// Writer g owns bytes [g·512, g·512+512) of every block.
	const writers = 16
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for blk := range uint64(16) {
				if err := h.write("vol", blk*bs+uint64(g)*512, fill(byte('a'+g), 512)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 3 {
			if rep := h.snapshot("vol", "vol-snap"+string(rune('0'+i))); rep.err != nil {
				t.Error(rep.err)
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	want := fill('.', 16*bs)
	for blk := range 16 {
		for g := range writers {
			copy(want[blk*bs+g*512:], fill(byte('a'+g), 512))
		}
	}
	h.mustRead("vol", 0, want)
	h.mustRead("base-snap", 0, fill('.', 16*bs))
	// Each block was copied up once, plus once again after each snapshot
	// that came while writes were going on: at most 16 blocks × 4.
	if got := h.data.count(xseg.OpCopy) - copies; got < 16 || got > 64 {
		t.Errorf("%d COPY requests, want 16 to 64", got)
	}
	// Every snapshot holds, per block, a prefix of the writes: what each
	// writer wrote there, or the base.
	for i := range 3 {
		got, err := h.read("vol-snap"+string(rune('0'+i)), 0, 16*bs)
		if err != nil {
			t.Fatal(err)
		}
		for blk := range 16 {
			for g := range writers {
				p := got[blk*bs+g*512:][:512]
				if !bytes.Equal(p, fill('.', 512)) && !bytes.Equal(p, fill(byte('a'+g), 512)) {
					t.Fatalf("snapshot %d block %d writer %d: %s", i, blk, g, summary(p))
				}
			}
		}
	}
	h.mustRead("vol", 0, want)
}
