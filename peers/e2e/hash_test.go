package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// storedBytes is what a filed data directory holds, by kind of object.
type storedBytes struct {
	objects storedKind // volume objects (created and copied up by volumes)
	content storedKind // content-addressed objects: 64 hex digits, from HASH
	maps    storedKind // map headers and map blocks, when maps live here
	side    storedKind // the blockers' side objects (_hash, _lock)
	names   map[string]int64
}

type storedKind struct {
	files     int
	bytes     int64 // sum of the files' sizes
	allocated int64 // sum of their allocated blocks, as du counts
}

func (k *storedKind) add(size, blocks int64) {
	k.files++
	k.bytes += size
	k.allocated += blocks * 512
}

// measureStored walks a filed data directory (DIR/ab/cd/ef/NAME) like du.
// A map header is a file that starts with the v2 magic "AMF."; its map
// blocks are named "<header>_<16 hex digits>". Images, whose maps are named
// by a Merkle hash, are told from content that way too.
func measureStored(t *testing.T, dir string) storedBytes {
	t.Helper()
	type file struct {
		name         string
		size, blocks int64
		header       bool
	}
	var files []file
	headers := make(map[string]bool)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := file{name: d.Name(), size: info.Size(), blocks: info.Sys().(*syscall.Stat_t).Blocks}
		if fd, err := os.Open(path); err == nil {
			magic := make([]byte, 4)
			n, _ := fd.Read(magic)
			fd.Close()
			f.header = n == 4 && string(magic) == "AMF."
		}
		if f.header {
			headers[f.name] = true
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := storedBytes{names: make(map[string]int64)}
	for _, f := range files {
		out.names[f.name] = f.size
		i := strings.LastIndexByte(f.name, '_')
		switch {
		case f.header, i > 0 && len(f.name)-i == 17 && headers[f.name[:i]]:
			out.maps.add(f.size, f.blocks)
		case isContentName(f.name):
			out.content.add(f.size, f.blocks)
		case strings.Contains(f.name, "_hash"), strings.HasSuffix(f.name, "_lock"):
			out.side.add(f.size, f.blocks)
		default:
			out.objects.add(f.size, f.blocks)
		}
	}
	return out
}

func isContentName(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func (s storedBytes) String() string {
	f := func(k storedKind) string {
		return fmt.Sprintf("%d files, %d B (%d B allocated)", k.files, k.bytes, k.allocated)
	}
	return "volume objects " + f(s.objects) + "; content-addressed " + f(s.content) + "; maps " + f(s.maps) + "; side objects " + f(s.side)
}

// contentName is the name the blockers' HASH gives content b: the hex
// SHA-256 of b with its trailing zeros stripped.
func contentName(b []byte) string {
	sum := sha256.Sum256(bytes.TrimRight(b, "\x00"))
	return hex.EncodeToString(sum[:])
}

// TestHashDedup writes a volume of 8 objects of which 6 are identical,
// snapshots it and hashes the snapshot through vlmcd; it measures the
// bytes the data directory holds before and after, maps left out: the 6
// identical blocks are stored once. A second volume of the same blocks
// adds no content. The snapshot, its image and clones of both read back
// exactly. It runs with maps in the data directory (one filed, as the
// default host has it) and on a map blocker of their own.
func TestHashDedup(t *testing.T) {
	t.Run("maps with data", func(t *testing.T) {
		dataDir := t.TempDir()
		hashDedup(t, newStackWith(t, stackConfig{dataDir: dataDir}), dataDir)
	})
	t.Run("maps apart", func(t *testing.T) {
		dataDir := t.TempDir()
		hashDedup(t, newStackWith(t, stackConfig{dataDir: dataDir, maps: filedOver(t.TempDir(), owner)}), dataDir)
	})
}

func hashDedup(t *testing.T, s *stack, dataDir string) {
	const (
		obj     = 4 * mib
		nobj    = 8
		volSize = nobj * obj
	)
	c := s.client

	same := pattern(11, obj)                                    // objects 0, 1, 2, 4, 5, 7
	other := pattern(12, obj)                                   // object 3
	short := append(pattern(13, mib), make([]byte, obj-mib)...) // object 6: 1 MiB, then zeros
	vol := make(image, volSize)
	c.create(t, "dedup", volSize)
	for i := range nobj {
		data := same
		switch i {
		case 3:
			data = other
		case 6:
			data = short[:mib] // the rest of the block is never written
		}
		c.write(t, "dedup", uint64(i)*obj, data, 0)
		vol.put(uint64(i)*obj, data)
	}
	c.must(t, req{op: xseg.OpFlush, target: "dedup"})
	c.snapshot(t, "dedup", "dedupsnap")

	before := measureStored(t, dataDir)
	t.Logf("before HASH: %v", before)
	if before.objects.files != nobj || before.content.files != 0 {
		t.Fatalf("before HASH: %v, want %d volume objects and no content-addressed one", before, nobj)
	}

	hash := func(snap string) string {
		t.Helper()
		rep := c.must(t, req{op: xseg.OpHash, target: snap, dataLen: protocol.NameLen})
		name, err := protocol.DecodeName(rep.data)
		if err != nil || rep.serviced != protocol.NameLen || !isContentName(name) {
			t.Fatalf("HASH %s: image %q (serviced %d, %v), want 64 hex digits", snap, name, rep.serviced, err)
		}
		return name
	}
	img := hash("dedupsnap")
	after := measureStored(t, dataDir)
	t.Logf("after HASH of %d blocks (6 identical): %v; image %s", nobj, after, img)

	// Three contents, each stored once, under its SHA-256.
	want := map[string]int64{contentName(same): obj, contentName(other): obj, contentName(short): mib}
	for name, size := range want {
		if got, ok := after.names[name]; !ok || got != size {
			t.Errorf("content object %s: stored %v, size %d; want %d bytes", name, ok, got, size)
		}
	}
	if after.content.files != len(want) || after.content.bytes != 2*obj+mib {
		t.Errorf("content-addressed objects after HASH: %d files, %d bytes; want %d files, %d bytes (6 identical blocks stored once)",
			after.content.files, after.content.bytes, len(want), 2*obj+mib)
	}
	if after.objects != before.objects {
		t.Errorf("HASH changed the volume objects: %+v, then %+v", before.objects, after.objects)
	}
	t.Logf("bytes of the snapshot's blocks: %d in volume objects, %d content-addressed (%.2fx less)",
		before.objects.bytes, after.content.bytes, float64(before.objects.bytes)/float64(after.content.bytes))
	if again := hash("dedupsnap"); again != img {
		t.Errorf("HASH again: image %s, want %s", again, img)
	}

	// A second volume of the same blocks: its content is stored already.
	c.create(t, "dedup2", volSize)
	for i := range nobj {
		c.write(t, "dedup2", uint64(i)*obj, same, 0)
	}
	c.snapshot(t, "dedup2", "dedup2snap")
	mid := measureStored(t, dataDir)
	img2 := hash("dedup2snap")
	end := measureStored(t, dataDir)
	t.Logf("second volume of 8 identical blocks: %v before its HASH, %v after; image %s", mid, end, img2)
	if end.content != mid.content {
		t.Errorf("HASH of a snapshot of stored blocks added content: %+v, then %+v", mid.content, end.content)
	}

	// The snapshot, its image, and clones of both read back.
	if v := c.info(t, img); v.Size != volSize {
		t.Errorf("INFO of image %s: %+v, want size %d", img, v, volSize)
	}
	if r := c.clone(t, img, "fromimage", 0); r.err != nil {
		t.Fatalf("CLONE of image %s: %v", img, r.err)
	}
	if r := c.clone(t, "dedupsnap", "fromsnap", 0); r.err != nil {
		t.Fatalf("CLONE of dedupsnap: %v", r.err)
	}
	for _, name := range []string{"dedupsnap", img, "fromimage", "fromsnap"} {
		for off := uint64(0); off < volSize; off += 2 * obj {
			c.expect(t, "after HASH", name, off, vol[off:off+2*obj])
		}
	}
	// Writes to the clone of the image copy its shared content up and
	// leave the content object alone.
	data := pattern(14, 5000)
	c.write(t, "fromimage", 2*obj-2000, data, 0)
	clone := append(image(nil), vol...)
	clone.put(2*obj-2000, data)
	c.expect(t, "clone of the image after a write", "fromimage", obj, clone[obj:3*obj])
	c.expect(t, "image after a write to its clone", img, obj, vol[obj:3*obj])
	c.expect(t, "other clone after a write to the image's clone", "fromsnap", obj, vol[obj:3*obj])
	if got := measureStored(t, dataDir); got.content != end.content {
		t.Errorf("content-addressed objects changed after a write to a clone: %+v, then %+v", end.content, got.content)
	}
	if b, err := readObject(dataDir, contentName(same)); err != nil || !bytes.Equal(b, same) {
		t.Errorf("content object of the identical blocks: %d bytes, %v; want its content unchanged", len(b), err)
	}
}

// readObject reads object name from a filed data directory.
func readObject(dir, name string) ([]byte, error) {
	var found string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name {
			found = path
		}
		return nil
	})
	if found == "" {
		return nil, fs.ErrNotExist
	}
	return os.ReadFile(found)
}
