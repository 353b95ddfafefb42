package mapserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// contentObjects counts the content-addressed objects (64 hex digits) of
// a filed data directory that hold data, and their bytes. (The blocker
// stores the zero block's, empty, when it hashes a block of zeros.)
func contentObjects(t *testing.T, dir string) (n int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); len(name) == 64 && isHex(name) {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > 0 {
				n++
				bytes += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, bytes
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func TestHash(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	const bs = 64 * kib
	content := bytes.Join([][]byte{fill('a', bs), fill('b', bs), fill('a', bs), make([]byte, bs), fill('a', bs/2)}, nil)
	for _, vol := range []string{"v1", "v2"} {
		must(t, "create", h.create(vol, 8*bs, bs))
		if err := h.write(vol, 0, content); err != nil {
			t.Fatal(err)
		}
		must(t, "snapshot", h.snapshot(vol, vol+"-snap"))
	}
	wantErrno(t, "hash of a volume", h.call(req{op: xseg.OpHash, target: "v1", dataLen: protocol.NameLen}), syscall.EINVAL)
	wantErrno(t, "hash into a small buffer", h.call(req{op: xseg.OpHash, target: "v1-snap", dataLen: 10}), syscall.EINVAL)
	rep := must(t, "hash v1-snap", h.call(req{op: xseg.OpHash, target: "v1-snap", dataLen: protocol.NameLen}))
	image, err := protocol.DecodeName(rep.data)
	if err != nil || len(image) != 64 || rep.serviced != protocol.NameLen {
		t.Fatalf("hash reply %q, %v", image, err)
	}
	n, size := contentObjects(t, dataDir)
	// 'a', 'b' and half an 'a' block are stored; the zero block is not.
	if n != 3 || size != 2*bs+bs/2 {
		t.Errorf("after hashing: %d content objects of %d bytes, want 3 of %d", n, size, 2*bs+bs/2)
	}
	rep = must(t, "hash v2-snap", h.call(req{op: xseg.OpHash, target: "v2-snap", dataLen: protocol.NameLen}))
	if again, _ := protocol.DecodeName(rep.data); again != image {
		t.Errorf("equal content hashed to %s and %s", image, again)
	}
	if n2, size2 := contentObjects(t, dataDir); n2 != n || size2 != size {
		t.Errorf("hashing equal content stored more: %d objects of %d bytes", n2, size2)
	}
	m := h.storedMap(image)
	if !m.ReadOnly() || m.Size != 8*bs {
		t.Errorf("image map %+v", m.Header)
	}
	for i, e := range m.Stored() {
		if e.Archip() || len(e.Name) != 64 {
			t.Errorf("image entry %d = %v", i, e)
		}
	}
	// Clones of the image read the content; removing one keeps the blocks.
	must(t, "clone the image", h.clone(image, "from-image", 0))
	h.mustRead("from-image", 0, append(content, make([]byte, 8*bs-len(content))...))
	if err := h.write("from-image", 0, fill('z', 10)); err != nil {
		t.Fatal(err)
	}
	must(t, "remove the clone", h.simple(xseg.OpDelete, "from-image", 0))
	h.mustRead(image, 0, content)
}

// writeV1 stores a v1 map (Archipelago ≤ 0.3) as map object name.
func (h *host) writeV1(name string, size uint64, entries [][33]byte) {
	b := make([]byte, 12, 12+33*len(entries))
	binary.LittleEndian.PutUint32(b, 1)
	binary.LittleEndian.PutUint64(b[4:], size)
	for _, e := range entries {
		b = append(b, e[:]...)
	}
	must(h.t, "write v1 map", h.call(req{op: xseg.OpWrite, port: mapPort, target: name, size: uint64(len(b)), data: b}))
}

func TestLegacyMaps(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	d0, d1 := sha256.Sum256([]byte("zero")), sha256.Sum256([]byte("one"))
	zero := sha256.Sum256(nil)
	var e0, e1, e2 [33]byte
	e0[0] = 1 // writable: archip_<hex>
	copy(e0[1:], d0[:])
	copy(e1[1:], d1[:])
	copy(e2[1:], zero[:])
	obj0, obj1 := "archip_"+hex.EncodeToString(d0[:]), hex.EncodeToString(d1[:])
	for obj, c := range map[string]byte{obj0: 'p', obj1: 'q'} {
		must(t, "write object", h.call(req{op: xseg.OpWrite, port: dataPort, target: obj, size: 4 * mib, data: fill(c, 4*mib)}))
	}
	want := append(append(fill('p', 4*mib), fill('q', 4*mib)...), make([]byte, 4*mib)...)

	// An Archipelago 0.3 volume, stored as "archip_old": found as "old",
	// moved to "old" in v2 when opened.
	h.writeV1("archip_old", 12*mib, [][33]byte{e0, e1, e2})
	h.mustRead("old", 0, want)
	if size, err := h.info("old"); err != nil || size != 12*mib {
		t.Fatalf("info of a legacy map: %d, %v", size, err)
	}
	must(t, "open", h.simple(xseg.OpOpen, "old", 0))
	if m := h.storedMap("old"); m.Version != mapper.V2 || m.Entry(0).Name != obj0 || !m.Entry(0).Writable() {
		t.Errorf("after the open: %+v entry 0 %v", m.Header, m.Entry(0))
	}
	if f, _ := h.srv.st.find("archip_old", false, false); f.live() {
		t.Errorf("the legacy map is still live")
	}
	if err := h.write("old", 4*mib, fill('r', 10)); err != nil {
		t.Fatal(err)
	}
	copy(want[4*mib:], fill('r', 10))
	h.mustRead("old", 0, want)
	must(t, "close", h.simple(xseg.OpClose, "old", 0))
	h.mustRead("old", 0, want)

	// A v1 map under its own name is upgraded by UPDATE.
	h.writeV1("v1vol", 8*mib, [][33]byte{e0, e1})
	must(t, "update", h.simple(xseg.OpUpdate, "v1vol", 0))
	if m := h.storedMap("v1vol"); m.Version != mapper.V2 || m.Size != 8*mib {
		t.Errorf("after UPDATE: %+v", m.Header)
	}
	must(t, "update again", h.simple(xseg.OpUpdate, "v1vol", 0))

	// A Pithos image (v0: raw digests) needs FlagAssumeV0.
	img := append(append([]byte(nil), d1[:]...), zero[:]...)
	must(t, "write v0 map", h.call(req{op: xseg.OpWrite, port: mapPort, target: "pithos-img", size: uint64(len(img)), data: img}))
	wantErrno(t, "info of a v0 map without FlagAssumeV0", h.call(req{op: xseg.OpInfo, target: "pithos-img", dataLen: 8}), syscall.EBADMSG)
	rep := must(t, "info v0", h.call(req{op: xseg.OpInfo, target: "pithos-img", flags: xseg.FlagAssumeV0, dataLen: 8}))
	if size, _ := protocol.DecodeInfo(rep.data); size != 8*mib {
		t.Errorf("v0 image size %d", size)
	}
	must(t, "clone v0", h.call(req{op: xseg.OpClone, target: "from-pithos", flags: xseg.FlagAssumeV0, data: peertest.CloneData(t, "pithos-img", 0)}))
	h.mustRead("from-pithos", 0, append(fill('q', 4*mib), make([]byte, 4*mib)...))
	wantErrno(t, "MAPW of a v0 map", h.call(req{op: xseg.OpMapWrite, target: "pithos-img", flags: xseg.FlagAssumeV0, size: 1, dataLen: 4096}), syscall.EROFS)
}

func TestInterruptedRename(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	const bs = 4 * kib // 32 entries a map block: the map spans blocks
	must(t, "create", h.create("r1", 100*bs, bs))
	if err := h.write("r1", 10*bs, fill('x', 50*bs)); err != nil {
		t.Fatal(err)
	}
	// A rename killed after it wrote the new map, before the old header.
	res, err := mapper.Rename(h.storedMap("r1"), "r2", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan()
	p.Phases = p.Phases[:2]
	if err := h.srv.st.runPlan(p); err != nil {
		t.Fatal(err)
	}
	must(t, "rename again", h.rename("r1", "r2"))
	wantErrno(t, "the old name", reply{err: errOf(h.info("r1"))}, syscall.ENOENT)
	h.mustRead("r2", 10*bs, fill('x', 50*bs))
	if e := h.storedMap("r2").Epoch; e != 1 {
		t.Errorf("epoch %d after the finished rename, want 1", e)
	}
	// A map of another content under the name is not taken for one.
	must(t, "create r3", h.create("r3", 100*bs, bs))
	wantErrno(t, "rename onto another volume", h.rename("r2", "r3"), syscall.EEXIST)
}

// TestStopReleasesLocks: a mapperd that stops releases the locks of the
// volumes it has open, so that another host opens them without force;
// with KeepLocks a restarted one finds them its own.
func TestStopReleasesLocks(t *testing.T) {
	dataDir, mapDir := dirs(t)
	a := newHost(t, dataDir, mapDir, "hostA")
	b := newHost(t, dataDir, mapDir, "hostB")
	must(t, "create", a.create("vol", 8*mib, 0))
	if err := a.write("vol", 0, fill('a', 10)); err != nil { // opens it
		t.Fatal(err)
	}
	wantErrno(t, "open on B", b.simple(xseg.OpOpen, "vol", 0), syscall.EAGAIN)
	a.stopMapper()
	must(t, "open on B after A's mapperd stopped", b.simple(xseg.OpOpen, "vol", 0))
	must(t, "close on B", b.simple(xseg.OpClose, "vol", 0))

	// KeepLocks: the restarted mapperd holds on.
	srv, err := New(a.seg, Options{DataPort: dataPort, MapPort: mapPort, Owner: "hostA", KeepLocks: true})
	if err != nil {
		t.Fatal(err)
	}
	a.srv = srv
	a.stopMapper = a.serve(mapperPort, srv, func() { srv.Close() })
	must(t, "open on A", a.simple(xseg.OpOpen, "vol", 0))
	a.stopMapper()
	wantErrno(t, "open on B while A keeps its lock", b.simple(xseg.OpOpen, "vol", 0), syscall.EAGAIN)
	a.startMapper("hostA")
	if err := a.write("vol", 0, fill('c', 10)); err != nil {
		t.Fatalf("the restarted mapperd cannot write its volume: %v", err)
	}
	must(t, "close on A", a.simple(xseg.OpClose, "vol", 0))
	// Closing a volume this mapperd did not open releases a lock left by
	// its predecessor; a free lock is fine too.
	must(t, "close again", a.simple(xseg.OpClose, "vol", 0))
	b.mustRead("vol", 0, fill('c', 10))
}
