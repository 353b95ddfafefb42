package e2e

import (
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/xseg"
)

// TestVolumes runs the volume scenarios on filed.
func TestVolumes(t *testing.T) {
	volumeScenarios(t, newStack(t))
}

// TestVolumesInlineIO runs them with vlmcd doing the object I/O itself.
func TestVolumesInlineIO(t *testing.T) {
	volumeScenarios(t, newStackWith(t, stackConfig{inlineIO: true}))
}

// volumeScenarios runs the volume scenarios on one stack, in order: each
// builds on the volumes the one before left. The write pattern, snapshot,
// write more, clone, write to the clone and read back are the original's
// VlmcdTest and basictest scenarios.
func volumeScenarios(t *testing.T, s *stack) {
	c := s.client
	const (
		volSize   = 64 * mib
		cloneSize = 96 * mib
		obj       = 4 * mib // the default block size
	)
	vol := make(image, volSize) // what "vol" holds

	t.Run("thin volume", func(t *testing.T) {
		c.create(t, "vol", volSize)
		if v := c.info(t, "vol"); v.Size != volSize || v.BlockSize != obj {
			t.Fatalf("INFO vol: %+v, want size %d, block size %d", v, volSize, obj)
		}
		writes := []struct {
			off uint64
			n   int
		}{
			{obj - 1000, 5000},           // across the first object boundary
			{3, 1},                       // one byte at an odd offset
			{12345, 4097},                // odd offset and length inside an object
			{2*obj - 7, 7},               // the last bytes of an object
			{3*obj - 4097, 2*obj + 8193}, // three objects, the middle one whole
			{volSize - 513, 513},         // the volume's last bytes
		}
		for i, w := range writes {
			data := pattern(uint32(i+1), w.n)
			c.write(t, "vol", w.off, data, 0)
			vol.put(w.off, data)
		}
		for _, w := range writes {
			c.expect(t, "read back", "vol", w.off, vol[w.off:w.off+uint64(w.n)])
		}
		// Ranges around the writes, never-written bytes included.
		c.expect(t, "object 0..1", "vol", 0, vol[:2*obj])
		c.expect(t, "around the boundary", "vol", obj-2000, vol[obj-2000:obj+6000])
		c.expect(t, "objects 2..3", "vol", 3*obj-5000, vol[3*obj-5000:4*obj+5000])
		c.expect(t, "objects 4..5", "vol", 5*obj-5000, vol[5*obj-5000:6*obj-1])
		// Never written: objects 6.. up to the last, read as zeros.
		c.expect(t, "never written", "vol", 6*obj+77, make([]byte, obj+5))
		c.expect(t, "tail", "vol", volSize-obj, vol[volSize-obj:])
	})
	if t.Failed() {
		return
	}

	snap := append(image(nil), vol...) // what "snap" holds
	t.Run("snapshot and clone", func(t *testing.T) {
		c.snapshot(t, "vol", "snap")
		// New writes to the volume: over snapshot data, across a boundary,
		// and into never-written space.
		for i, w := range []struct {
			off uint64
			n   int
		}{{obj - 500, 1500}, {20, 100}, {7*obj + 3, 9000}, {3*obj + 1, 64 * kib}} {
			data := pattern(uint32(100+i), w.n)
			c.write(t, "vol", w.off, data, 0)
			vol.put(w.off, data)
		}
		if r := c.clone(t, "snap", "clone", cloneSize); r.err != nil {
			t.Fatalf("CLONE snap -> clone: %v", r.err)
		}
		if v := c.info(t, "clone"); v.Size != cloneSize {
			t.Fatalf("INFO clone: %+v, want size %d", v, cloneSize)
		}
		if v := c.info(t, "snap"); v.Size != volSize {
			t.Fatalf("INFO snap: %+v, want size %d", v, volSize)
		}
		clone := make(image, cloneSize)
		copy(clone, snap)
		for i, w := range []struct {
			off uint64
			n   int
		}{
			{obj - 999, 3333},          // over the snapshot's boundary data
			{5, 10},                    // over the snapshot's first bytes
			{volSize - 100, 300},       // across the parent's end
			{volSize + obj + 11, 4096}, // past the parent's size
			{cloneSize - 1, 1},         // the clone's last byte
		} {
			data := pattern(uint32(200+i), w.n)
			c.write(t, "clone", w.off, data, 0)
			clone.put(w.off, data)
		}

		c.expect(t, "snapshot keeps the old bytes", "snap", 0, snap[:2*obj])
		c.expect(t, "snapshot keeps the old bytes", "snap", 3*obj-4097, snap[3*obj-4097:5*obj])
		c.expect(t, "snapshot keeps the old bytes", "snap", 7*obj, snap[7*obj:8*obj])
		c.expect(t, "snapshot tail", "snap", volSize-obj, snap[volSize-obj:])
		c.expect(t, "volume has the new bytes", "vol", 0, vol[:2*obj])
		c.expect(t, "volume has the new bytes", "vol", 3*obj-4097, vol[3*obj-4097:5*obj])
		c.expect(t, "volume has the new bytes", "vol", 7*obj, vol[7*obj:8*obj])
		c.expect(t, "clone: snapshot plus its writes", "clone", 0, clone[:2*obj])
		c.expect(t, "clone: snapshot data it did not write", "clone", 3*obj-4097, clone[3*obj-4097:4*obj])
		c.expect(t, "clone: never written in the parent", "clone", 7*obj, clone[7*obj:8*obj])
		c.expect(t, "clone: across the parent's end", "clone", volSize-mib, clone[volSize-mib:volSize+mib])
		c.expect(t, "clone: past the parent, its write", "clone", volSize+obj, clone[volSize+obj:volSize+obj+8*kib])
		c.expect(t, "clone: zeros past the parent", "clone", volSize+mib, clone[volSize+mib:volSize+obj])
		c.expect(t, "clone: zeros past the parent", "clone", volSize+5*obj+3, clone[volSize+5*obj+3:volSize+6*obj])
		c.expect(t, "clone: the end", "clone", cloneSize-mib-1, clone[cloneSize-mib-1:])
	})
	if t.Failed() {
		return
	}

	t.Run("flush, fua and errors", func(t *testing.T) {
		c.must(t, req{op: xseg.OpFlush, target: "vol"})
		data := pattern(300, 6000)
		c.write(t, "vol", 2*obj-3000, data, xseg.FlagFUA)
		vol.put(2*obj-3000, data)
		// A zero-size write with FLUSH is a barrier too.
		c.must(t, req{op: xseg.OpWrite, target: "vol", flags: xseg.FlagFlush})
		c.must(t, req{op: xseg.OpFlush, target: "clone"})
		c.expect(t, "after FUA and FLUSH", "vol", obj, vol[obj:3*obj])

		rep := c.call(t, req{op: xseg.OpRead, target: "vol", offset: volSize - 10, size: 20})
		wantErrno(t, "READ across the end", rep, syscall.EINVAL, syscall.ERANGE)
		rep = c.call(t, req{op: xseg.OpRead, target: "vol", offset: volSize, size: 1})
		wantErrno(t, "READ past the end", rep, syscall.EINVAL, syscall.ERANGE)
		rep = c.call(t, req{op: xseg.OpWrite, target: "vol", offset: volSize + obj, size: 512, data: pattern(1, 512)})
		wantErrno(t, "WRITE past the end", rep, syscall.EINVAL, syscall.ERANGE)
		rep = c.call(t, req{op: xseg.OpRead, target: "nosuchvol", offset: 0, size: 4096})
		wantErrno(t, "READ of an unknown volume", rep, syscall.ENOENT)
		rep = c.call(t, req{op: xseg.OpWrite, target: "nosuchvol", offset: 0, size: 4096, data: pattern(2, 4096)})
		wantErrno(t, "WRITE of an unknown volume", rep, syscall.ENOENT)
		rep = c.clone(t, "snap", "vol", 0)
		wantErrno(t, "CLONE to an existing volume", rep, syscall.EEXIST)
		rep = c.clone(t, "", "clone", volSize)
		wantErrno(t, "CLONE (empty) to an existing volume", rep, syscall.EEXIST)
		// The failures changed nothing.
		c.expect(t, "after the errors", "vol", volSize-obj, vol[volSize-obj:])
		if v := c.info(t, "clone"); v.Size != cloneSize {
			t.Errorf("INFO clone after the failed CLONE: %+v", v)
		}
	})
}
