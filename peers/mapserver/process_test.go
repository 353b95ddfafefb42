package mapserver

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// The process tests run this test binary again as mapperd (through Main,
// what bin/mapperd runs) and as a filed (the blocker over a directory, as
// peers/filed builds it), so that SIGKILL hits real processes.
func TestMain(m *testing.M) {
	var err error
	switch os.Getenv("MAPSERVER_TEST_MAIN") {
	case "":
		os.Exit(m.Run())
	case "mapperd":
		err = Main(os.Args[1:])
	case "filed":
		err = filedMain(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// filedMain is peers/filed's main, cut to the flags the tests use.
func filedMain(args []string) error {
	fs := flag.NewFlagSet("filed", flag.ContinueOnError)
	cfg := peers.Config{Name: "filed"}
	cfg.Define(fs)
	var bf blocker.Flags
	bf.Define(fs)
	dataDir := fs.String("data-dir", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return peers.Run(cfg, func(p *peers.Peer) (peers.Handler, error) {
		opts := bf.Options(cfg.Ports[0])
		store, err := file.Open(*dataDir, file.Options{Owner: opts.Owner})
		if err != nil {
			return nil, err
		}
		return blocker.New(store, opts)
	})
}

// startProc runs this binary as kind ("mapperd" or "filed") with args and
// waits for its READY=1.
func startProc(t *testing.T, kind string, args ...string) *peertest.Process {
	t.Helper()
	return peertest.Start(t, kind, []string{"MAPSERVER_TEST_MAIN=" + kind}, args...)
}

// procHost is a host whose peers are processes: a segment, a filed on
// port 1 over a data directory (maps and data), a mapperd on port 3.
type procHost struct {
	t       *testing.T
	segDir  string
	dataDir string
	owner   string
	seg     *xseg.Segment
	client  *peers.Client
	filed   *peertest.Process
	mapperd *peertest.Process
}

func newProcHost(t *testing.T, dataDir, owner string) *procHost {
	t.Helper()
	h := &procHost{t: t, segDir: t.TempDir(), dataDir: dataDir, owner: owner}
	if err := xseg.Create("test", peertest.Geometry, xseg.Options{Dir: h.segDir}); err != nil {
		t.Fatal(err)
	}
	seg, err := xseg.Join("test", xseg.Options{Dir: h.segDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Leave() })
	h.seg = seg
	h.filed = startProc(t, "filed", h.common(dataPort, "--data-dir", dataDir)...)
	h.startMapper()
	c, err := peers.NewClient(seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.client = c
	return h
}

func (h *procHost) common(port int, extra ...string) []string {
	return append([]string{"--segment", "test", "--segment-dir", h.segDir, "--port", strconv.Itoa(port), "--owner", h.owner}, extra...)
}

func (h *procHost) startMapper() {
	h.mapperd = startProc(h.t, "mapperd", h.common(mapperPort, "--data-port", strconv.Itoa(dataPort), "--map-port", strconv.Itoa(dataPort))...)
}

func (h *procHost) call(q req) reply { return call(h.t, h.client, q) }

func (h *procHost) open(vol string, flags xseg.Flags) reply {
	return h.call(req{op: xseg.OpOpen, target: vol, flags: flags, dataLen: protocol.NameLen})
}

// TestTwoHosts runs two hosts, each a segment with its own filed and
// mapperd over one shared data directory: one writer per volume.
func TestTwoHosts(t *testing.T) {
	dataDir := t.TempDir()
	a := newProcHost(t, dataDir, "hostA")
	b := newProcHost(t, dataDir, "hostB")
	must(t, "create", a.call(req{op: xseg.OpClone, target: "vol", data: peertest.CloneData(t, "", 32*mib)}))
	if err := writeVolume(t, a.client, "vol", 0, fill('a', 8*kib)); err != nil {
		t.Fatal(err)
	}
	must(t, "open on A", a.open("vol", xseg.FlagNoSync))

	rep := b.open("vol", xseg.FlagNoSync)
	wantErrno(t, "open on B", rep, syscall.EAGAIN)
	if owner, _ := protocol.DecodeName(rep.data); owner != "hostA" {
		t.Errorf("the lock error names %q, want hostA", owner)
	}
	must(t, "close on A", a.call(req{op: xseg.OpClose, target: "vol"}))
	must(t, "open on B after A closed", b.open("vol", xseg.FlagNoSync))
	got, err := readVolume(t, b.client, "vol", 0, 8*kib)
	if err != nil || !bytes.Equal(got, fill('a', 8*kib)) {
		t.Fatalf("B reads %s, %v", summary(got), err)
	}
	if err := writeVolume(t, b.client, "vol", 8*kib, fill('b', 8*kib)); err != nil {
		t.Fatal(err)
	}
	must(t, "close on B", b.call(req{op: xseg.OpClose, target: "vol"}))

	// A opens it again and dies with it open: its lock stays.
	must(t, "open on A again", a.open("vol", xseg.FlagNoSync))
	if err := writeVolume(t, a.client, "vol", 16*kib, fill('c', 8*kib)); err != nil {
		t.Fatal(err)
	}
	a.mapperd.Kill()
	a.filed.Kill()
	rep = b.open("vol", xseg.FlagNoSync)
	wantErrno(t, "open on B after A died", rep, syscall.EAGAIN)
	if owner, _ := protocol.DecodeName(rep.data); owner != "hostA" {
		t.Errorf("the lock error names %q, want hostA", owner)
	}
	must(t, "forced open on B", b.open("vol", xseg.FlagForce))
	want := append(append(fill('a', 8*kib), fill('b', 8*kib)...), fill('c', 8*kib)...)
	got, err = readVolume(t, b.client, "vol", 0, 24*kib)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("B reads %s, %v; want %s", summary(got), err, summary(want))
	}
	if err := writeVolume(t, b.client, "vol", 0, fill('d', 4*kib)); err != nil {
		t.Fatal(err)
	}
}

// TestCrashDuringCopyUps SIGKILLs mapperd while writers keep it copying up
// the blocks of a clone, restarts it, and checks that every acknowledged
// MAPW's copy-up is in the map, with the data written after it, that the
// other blocks read as before, and that the volume loads and takes writes.
func TestCrashDuringCopyUps(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes under load")
	}
	h := newProcHost(t, t.TempDir(), "hostA")
	const (
		bs     = 128 * kib
		blocks = 192
	)
	must(t, "create", h.call(req{op: xseg.OpClone, target: "base", size: bs, data: peertest.CloneData(t, "", blocks*bs)}))
	base := make([]byte, blocks*bs)
	for i := range blocks {
		copy(base[i*bs:(i+1)*bs], fill(byte(i), bs))
	}
	for off := 0; off < len(base); off += 4 * mib {
		if err := writeVolume(t, h.client, "base", uint64(off), base[off:off+4*mib]); err != nil {
			t.Fatal(err)
		}
	}
	must(t, "snapshot", h.call(req{op: xseg.OpSnapshot, target: "base", data: peertest.NameData(t, "snap")}))
	must(t, "clone", h.call(req{op: xseg.OpClone, target: "vol", data: peertest.CloneData(t, "snap", 0)}))

	type ack struct {
		object  string
		written bool // the data write after the MAPW was acknowledged too
	}
	var (
		mu    sync.Mutex
		acks  = map[int]ack{}
		next  atomic.Int64
		cut   atomic.Int64 // MAPW failed back by the kill
		order = rand.Perm(blocks)
		wg    sync.WaitGroup
	)
	marker := func(blk int) []byte { return fill(byte(0xff-blk), 4*kib) }
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= blocks {
					return
				}
				blk := order[i]
				off := uint64(blk*bs + 8*kib)
				rep, err := tryCall(h.client, req{op: xseg.OpMapWrite, target: "vol", offset: off, size: 4 * kib, dataLen: uint64(protocol.MapLen(1))})
				if err != nil || rep.err != nil {
					if err == nil && errors.Is(rep.err, xseg.ErrPeerDied) {
						cut.Add(1)
					}
					return // mapperd is dead
				}
				segs, err := protocol.DecodeMap(rep.data)
				if err != nil || len(segs) != 1 {
					t.Errorf("MAPW reply %v, %v", segs, err)
					return
				}
				mu.Lock()
				acks[blk] = ack{object: segs[0].Object}
				mu.Unlock()
				w, err := tryCall(h.client, req{op: xseg.OpWrite, port: dataPort, target: segs[0].Object, offset: segs[0].Offset, size: 4 * kib, flags: xseg.FlagFUA, data: marker(blk)})
				if err == nil && w.err == nil {
					mu.Lock()
					acks[blk] = ack{object: segs[0].Object, written: true}
					mu.Unlock()
				}
			}
		})
	}
	// Kill mapperd once a third of the blocks were acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= blocks/3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	h.mapperd.Kill()
	wg.Wait()
	if t.Failed() {
		return
	}
	mu.Lock()
	acked := len(acks)
	mu.Unlock()
	t.Logf("mapperd killed after %d of %d MAPW acknowledged, %d cut short", acked, blocks, cut.Load())
	if acked == 0 || acked == blocks {
		t.Fatalf("the kill did not land during the copy-ups (%d of %d acknowledged)", acked, blocks)
	}

	h.startMapper()
	if size, err := protoInfo(t, h.client, "vol"); err != nil || size != blocks*bs {
		t.Fatalf("vol after restart: size %d, %v", size, err)
	}
	got, err := readVolume(t, h.client, "vol", 0, blocks*bs)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(base)
	for blk, a := range acks {
		segs, err := mapIO(t, h.client, xseg.OpMapRead, "vol", uint64(blk*bs), bs)
		if err != nil {
			t.Fatal(err)
		}
		if segs[0].Object != a.object || segs[0].Flags != 0 {
			t.Errorf("block %d maps to %s (flags %d) after the restart; its acknowledged MAPW gave %s", blk, segs[0].Object, segs[0].Flags, a.object)
		}
		if a.written {
			copy(want[blk*bs+8*kib:], marker(blk))
		}
	}
	for blk := range blocks {
		g, w := got[blk*bs:(blk+1)*bs], want[blk*bs:(blk+1)*bs]
		if bytes.Equal(g, w) {
			continue
		}
		// A write whose FUA reply was lost in the kill may be there or not.
		if a, ok := acks[blk]; ok && !a.written {
			alt := bytes.Clone(w)
			copy(alt[8*kib:], marker(blk))
			if bytes.Equal(g, alt) {
				continue
			}
		}
		t.Errorf("block %d reads %s, want %s", blk, summary(g), summary(w))
	}
	snap, err := readVolume(t, h.client, "snap", 0, blocks*bs)
	if err != nil || !bytes.Equal(snap, base) {
		t.Fatalf("the snapshot changed: %v", err)
	}
	// The volume takes writes on every block, and closes and opens again.
	for blk := range blocks {
		if err := writeVolume(t, h.client, "vol", uint64(blk*bs), fill('w', 512)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, "close", h.call(req{op: xseg.OpClose, target: "vol"}))
	must(t, "open", h.open("vol", xseg.FlagNoSync))
	got, err = readVolume(t, h.client, "vol", uint64(5*bs), 512)
	if err != nil || !bytes.Equal(got, fill('w', 512)) {
		t.Fatalf("after reopening: %s, %v", summary(got), err)
	}
}

func protoInfo(t testing.TB, c *peers.Client, vol string) (uint64, error) {
	rep := call(t, c, req{op: xseg.OpInfo, target: vol, dataLen: protocol.InfoLen})
	if rep.err != nil {
		return 0, rep.err
	}
	return protocol.DecodeInfo(rep.data)
}
