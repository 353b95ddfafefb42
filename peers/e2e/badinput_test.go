package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// TestBadInput sends filed's stack what a careless or hostile client
// would: each request fails with the errno that says what is wrong,
// changes nothing, and no file appears outside the data directory.
func TestBadInput(t *testing.T) {
	top := t.TempDir()
	dataDir := filepath.Join(top, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, stackConfig{dataDir: dataDir})
	badInput(t, s)

	// filed keeps object NAME at DATA/ab/cd/ef/NAME: every file is there,
	// three directories down, and nothing else is beside the data directory.
	if entries, err := os.ReadDir(top); err != nil || len(entries) != 1 {
		t.Errorf("beside the data directory: %v %v", entries, err)
	}
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		if strings.Count(rel, string(filepath.Separator)) != 3 {
			t.Errorf("object file %s is not at ab/cd/ef/NAME", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hostileNames are names no volume may have: each is refused with EINVAL
// when a map would be made under it.
var hostileNames = []struct{ what, name string }{
	{"empty", ""},
	{"slash", "/"},
	{"dot", "."},
	{"dot-dot", ".."},
	{"path up", "../escape"},
	{"path down", "a/b"},
	{"absolute path", "/etc/passwd"},
	{"NUL", "vol\x00x"},
	{"newline", "vol\nx"},
	{"space", "my vol"},
	{"non-ASCII", "v\xc3\xb6l"},
	{"lock suffix", "vol_lock"},
	{"hash suffix", "vol_hash"},
	{"map block shape", "vol_0000000000000001"},
	{"content hash", strings.Repeat("ab", 32)},
	{"one over the volume name limit", strings.Repeat("n", 83)},
	{"256 bytes", strings.Repeat("x", protocol.NameFieldLen)},
}

// badInput runs the bad-input cases on s.
func badInput(t *testing.T, s *stack) {
	c := s.client
	const (
		volSize = 8 * mib
		obj     = 4 * mib
	)
	c.create(t, "good", volSize)
	data := pattern(7, 3*kib)
	c.write(t, "good", obj-kib, data, 0)
	c.snapshot(t, "good", "goodsnap")
	c.create(t, "other", mib)

	t.Run("unknown volume", func(t *testing.T) {
		for _, q := range []req{
			{op: xseg.OpInfo, target: "nosuch", dataLen: protocol.VolumeInfoLen},
			{op: xseg.OpRead, target: "nosuch", size: 4096},
			{op: xseg.OpWrite, target: "nosuch", size: 4096, data: pattern(1, 4096)},
			{op: xseg.OpOpen, target: "nosuch", dataLen: protocol.NameLen},
			{op: xseg.OpDelete, target: "nosuch", dataLen: protocol.NameLen},
			{op: xseg.OpTruncate, target: "nosuch", offset: mib, dataLen: protocol.NameLen},
			{op: xseg.OpRename, target: "nosuch", data: peertest.NameData(t, "nosuch2")},
			{op: xseg.OpHash, target: "nosuch", dataLen: protocol.NameLen},
			{op: xseg.OpFlush, target: "nosuch"},
		} {
			rep := c.call(t, q)
			if q.op == xseg.OpFlush {
				// The original answers FLUSH of any name: nothing to sync.
				if rep.err != nil && !errors.Is(rep.err, syscall.ENOENT) {
					t.Errorf("FLUSH of an unknown volume: %v, want success or ENOENT", rep.err)
				}
				continue
			}
			wantErrno(t, q.op.String()+" of an unknown volume", rep, syscall.ENOENT)
		}
		rep := c.call(t, req{op: xseg.OpSnapshot, target: "nosuch", data: peertest.NameData(t, "nosuchsnap")})
		wantErrno(t, "SNAPSHOT of a missing volume", rep, syscall.ENOENT)
		rep = c.clone(t, "nosuchsnap", "clone1", 0)
		wantErrno(t, "CLONE of a missing snapshot", rep, syscall.ENOENT)
		// The failed SNAPSHOT made no snapshot.
		rep = c.call(t, req{op: xseg.OpInfo, target: "nosuchsnap", dataLen: protocol.VolumeInfoLen})
		wantErrno(t, "INFO of the snapshot a failed SNAPSHOT named", rep, syscall.ENOENT)
	})

	t.Run("existing names", func(t *testing.T) {
		rep := c.clone(t, "goodsnap", "other", 0)
		wantErrno(t, "CLONE to an existing volume", rep, syscall.EEXIST)
		rep = c.clone(t, "goodsnap", "goodsnap", 0)
		wantErrno(t, "CLONE onto its own snapshot", rep, syscall.EEXIST)
		rep = c.clone(t, "", "other", mib)
		wantErrno(t, "create over an existing volume", rep, syscall.EEXIST)
		rep = c.call(t, req{op: xseg.OpSnapshot, target: "good", data: peertest.NameData(t, "other")})
		wantErrno(t, "SNAPSHOT to an existing volume's name", rep, syscall.EEXIST)
		rep = c.call(t, req{op: xseg.OpSnapshot, target: "good", data: peertest.NameData(t, "goodsnap")})
		wantErrno(t, "SNAPSHOT to an existing snapshot's name", rep, syscall.EEXIST)
		rep = c.call(t, req{op: xseg.OpRename, target: "other", data: peertest.NameData(t, "good")})
		wantErrno(t, "RENAME to an existing volume", rep, syscall.EEXIST)
		if v := c.info(t, "other"); v.Size != mib {
			t.Errorf("INFO other after the failed ops: %+v", v)
		}
	})

	t.Run("wrong kind and range", func(t *testing.T) {
		rep := c.call(t, req{op: xseg.OpWrite, target: "goodsnap", size: 512, data: pattern(2, 512)})
		wantErrno(t, "WRITE to a snapshot", rep, syscall.EROFS)
		rep = c.clone(t, "good", "clone2", 0)
		wantErrno(t, "CLONE of a volume that is not a snapshot", rep, syscall.EINVAL)
		rep = c.clone(t, "goodsnap", "clone3", volSize-mib)
		wantErrno(t, "CLONE smaller than its snapshot", rep, syscall.EINVAL)
		for _, w := range []struct {
			what      string
			off, size uint64
		}{
			{"WRITE beyond the end", volSize, 512},
			{"WRITE across the end", volSize - 100, 512},
			{"WRITE far beyond the end", 1 << 50, 512},
			{"WRITE at an offset that wraps", ^uint64(0) - 100, 512},
		} {
			rep := c.call(t, req{op: xseg.OpWrite, target: "good", offset: w.off, size: w.size, data: pattern(3, int(w.size))})
			wantErrno(t, w.what, rep, syscall.EINVAL, syscall.ERANGE)
		}
		rep = c.call(t, req{op: xseg.OpRead, target: "good", offset: volSize - 1, size: 2})
		wantErrno(t, "READ across the end", rep, syscall.EINVAL, syscall.ERANGE)
	})

	t.Run("hostile names", func(t *testing.T) {
		for _, h := range hostileNames {
			rep := c.clone(t, "", h.name, mib)
			wantErrno(t, "create "+h.what, rep, syscall.EINVAL)
			rep = c.clone(t, "goodsnap", h.name, 0)
			wantErrno(t, "CLONE to "+h.what, rep, syscall.EINVAL)
			rep = c.call(t, req{op: xseg.OpSnapshot, target: "good", data: peertest.NameData(t, h.name)})
			wantErrno(t, "SNAPSHOT named "+h.what, rep, syscall.EINVAL)
			rep = c.call(t, req{op: xseg.OpRename, target: "other", data: peertest.NameData(t, h.name)})
			wantErrno(t, "RENAME to "+h.what, rep, syscall.EINVAL)
			// Looking a hostile name up finds nothing, or refuses it.
			for _, q := range []req{
				{op: xseg.OpInfo, target: h.name, dataLen: protocol.VolumeInfoLen},
				{op: xseg.OpRead, target: h.name, size: 512},
				{op: xseg.OpWrite, target: h.name, size: 512, data: pattern(4, 512)},
				{op: xseg.OpOpen, target: h.name, dataLen: protocol.NameLen},
			} {
				rep := c.call(t, q)
				wantErrno(t, q.op.String()+" of "+h.what, rep, syscall.EINVAL, syscall.ENOENT)
			}
		}
		// A name over the 256 bytes of a request's target never leaves
		// the client.
		long := strings.Repeat("y", protocol.NameFieldLen+1)
		if _, err := c.try(req{op: xseg.OpInfo, target: long, dataLen: protocol.VolumeInfoLen}); !errors.Is(err, xseg.ErrTargetTooLong) {
			t.Errorf("INFO of a %d-byte name: %v, want xseg.ErrTargetTooLong", len(long), err)
		}
		// A payload whose name length says more than its 256 bytes.
		bad := peertest.CloneData(t, "goodsnap", 0)
		bad[protocol.NameFieldLen], bad[protocol.NameFieldLen+1] = 0x2c, 0x01 // 300
		rep := c.call(t, req{op: xseg.OpClone, target: "clone4", data: bad})
		wantErrno(t, "CLONE payload with a parent of 300 bytes", rep, syscall.EINVAL)
		bad = peertest.NameData(t, "snap9")
		bad[protocol.NameFieldLen+3] = 0xff
		rep = c.call(t, req{op: xseg.OpSnapshot, target: "good", data: bad})
		wantErrno(t, "SNAPSHOT payload with a huge name length", rep, syscall.EINVAL)
		rep = c.call(t, req{op: xseg.OpSnapshot, target: "good", dataLen: 10})
		wantErrno(t, "SNAPSHOT with a short payload", rep, syscall.EINVAL)
		rep = c.call(t, req{op: xseg.OpClone, target: "clone5", dataLen: 100})
		wantErrno(t, "CLONE with a short payload", rep, syscall.EINVAL)
	})

	// Nothing above changed what the volumes hold, and the peers serve on.
	c.expect(t, "volume after the bad input", "good", obj-2*kib, append(append(make([]byte, kib), data...), make([]byte, kib)...))
	c.expect(t, "snapshot after the bad input", "goodsnap", obj-kib, data)
	for _, p := range []*peertest.Process{s.blocker, s.mapperd, s.vlmcd} {
		select {
		case <-p.Done:
			t.Errorf("%s exited during the bad input: %v", p.Name, p.Err)
		default:
		}
	}
}
