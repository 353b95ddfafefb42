package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const mib = 1 << 20

// TestQemuIO writes patterns with qemu-io, aligned, unaligned and across
// the 4 MiB object boundary, and reads them back in a new connection.
func TestQemuIO(t *testing.T) {
	h := startHost(t)
	h.run("vlmc", "create", "vol", "--size", "64M")
	uri := h.uri("vol")
	qemuIO(t, uri,
		"write -P 0xab 0 64k",
		"write -P 0xcd 4194000 1000",    // across objects 0 and 1
		"write -P 0x11 12345 6789",      // unaligned
		"write -f -P 0x22 8M 1M",        // FUA
		"write -P 0x33 60M 4M", "flush", // the last object
	)
	qemuIO(t, uri,
		"read -P 0xab 0 12345",
		"read -P 0x11 12345 6789",
		"read -P 0xab 19134 46402",
		"read -P 0 64k 4128304", // never written, up to 4194000
		"read -P 0xcd 4194000 1000",
		"read -P 0 4195000 4193608",
		"read -P 0x22 8M 1M",
		"read -P 0x33 60M 4M",
	)
	// Reads past the end fail; the connection goes on.
	if out, _ := tool(t, "qemu-utils", "qemu-io", "-f", "raw", "-c", "read 63M 2M", uri); !strings.Contains(out, "Input/output error") && !strings.Contains(out, "Invalid argument") {
		t.Errorf("read past the end: %s", out)
	}
}

// randomImage writes a raw image of size bytes: random blocks, with some
// zero runs so that sparse paths are taken.
func randomImage(t *testing.T, size int) string {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for off := 0; off < size; off += 256 << 10 {
		if r.IntN(3) == 0 {
			continue // a zero run
		}
		for i := off; i < min(off+256<<10, size); i += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && i+k < size; k++ {
				b[i+k] = byte(v >> (8 * k))
			}
		}
	}
	path := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestQemuImg copies an image in and compares it with qemu-img, and checks
// the allocation qemu-img map reports against what was written and
// trimmed.
func TestQemuImg(t *testing.T) {
	h := startHost(t)
	// Not a whole number of objects (qemu wants whole 512-byte sectors).
	size := 24*mib + 3*512
	img := randomImage(t, size)
	h.run("vlmc", "create", "img", "--size", strconv.Itoa(size))
	mustTool(t, "qemu-utils", "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", img, h.uri("img"))
	mustTool(t, "qemu-utils", "qemu-img", "compare", "-f", "raw", "-F", "raw", img, h.uri("img"))

	h.run("vlmc", "create", "sparse", "--size", "32M")
	uri := h.uri("sparse")
	qemuIO(t, uri, "write -P 1 0 12M", "write -P 2 20M 4M", "discard 4M 4M", "write -z -u 8M 4M")
	out := mustTool(t, "qemu-utils", "qemu-img", "map", "--output=json", "-f", "raw", uri)
	var extents []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(out), &extents); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	// Expected allocation per 4 MiB block: written 0, 1 (trimmed), 2
	// (zeroed: a hole), 3-4 never, 5 written, 6-7 never.
	want := []bool{true, false, false, false, false, true, false, false}
	got := make([]bool, 8)
	seen := make([]bool, 8)
	for _, e := range extents {
		for off := e.Start; off < e.Start+e.Length; off += 4 * mib {
			got[off/(4*mib)] = e.Data
			seen[off/(4*mib)] = true
		}
		if !e.Data && !e.Zero {
			t.Errorf("extent %+v: a hole that is not zero", e)
		}
	}
	for i := range want {
		if !seen[i] || got[i] != want[i] {
			t.Fatalf("qemu-img map: block %d data=%v (seen %v), want %v\n%s", i, got[i], seen[i], want[i], out)
		}
	}
	qemuIO(t, uri, "read -P 1 0 4M", "read -P 0 4M 16M", "read -P 2 20M 4M", "read -P 0 24M 8M")
}

// TestNbdinfo checks what nbdinfo sees of a volume and a snapshot.
func TestNbdinfo(t *testing.T) {
	h := startHost(t)
	h.run("vlmc", "create", "vol", "--size", "16M")
	qemuIO(t, h.uri("vol"), "write -P 7 0 4M")
	h.run("vlmc", "snapshot", "vol", "snap")

	var info struct {
		Structured bool `json:"structured"`
		Exports    []struct {
			Name               string   `json:"export-name"`
			Size               int64    `json:"export-size"`
			ReadOnly           bool     `json:"is_read_only"`
			CanTrim            bool     `json:"can_trim"`
			CanZero            bool     `json:"can_zero"`
			CanFastZero        bool     `json:"can_fast_zero"`
			CanMultiConn       bool     `json:"can_multi_conn"`
			CanFUA             bool     `json:"can_fua"`
			CanFlush           bool     `json:"can_flush"`
			Contexts           []string `json:"contexts"`
			BlockSizePreferred int64    `json:"block_size_preferred"`
		} `json:"exports"`
	}
	out := mustTool(t, "libnbd-bin", "nbdinfo", "--json", h.uri("vol"))
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Exports) != 1 {
		t.Fatalf("nbdinfo --json: %v\n%s", err, out)
	}
	e := info.Exports[0]
	if !info.Structured || len(e.Contexts) != 1 || e.Contexts[0] != "base:allocation" {
		t.Errorf("nbdinfo: structured replies %v, contexts %q", info.Structured, e.Contexts)
	}
	if e.Size != 16*mib || e.ReadOnly || !e.CanTrim || !e.CanZero || !e.CanFastZero || !e.CanMultiConn || !e.CanFUA || !e.CanFlush {
		t.Errorf("nbdinfo of a volume: %+v", e)
	}
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--can", "trim", h.uri("vol")}, true},
		{[]string{"--can", "multi-conn", h.uri("vol")}, true},
		{[]string{"--is", "read-only", h.uri("vol")}, false},
		{[]string{"--is", "read-only", h.uri("snap")}, true},
		{[]string{"--can", "trim", h.uri("snap")}, false},
	} {
		if _, err := tool(t, "libnbd-bin", "nbdinfo", c.args...); (err == nil) != c.ok {
			t.Errorf("nbdinfo %s: %v, want success %v", strings.Join(c.args, " "), err, c.ok)
		}
	}
	m := mustTool(t, "libnbd-bin", "nbdinfo", "--map", h.uri("snap"))
	// 0 4194304 0 data; 4194304 12582912 3 hole,zero
	lines := strings.Split(strings.TrimSpace(m), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "data") || !strings.Contains(lines[1], "hole,zero") {
		t.Errorf("nbdinfo --map of the snapshot:\n%s", m)
	}
	if out, err := tool(t, "libnbd-bin", "nbdinfo", "nbd+unix:///nosuchvolume?socket="+h.socket); err == nil {
		t.Errorf("nbdinfo of a missing volume succeeded:\n%s", out)
	}
}

// TestNbdcopy copies an image into a volume and back out with nbdcopy.
func TestNbdcopy(t *testing.T) {
	h := startHost(t)
	img := randomImage(t, 40*mib)
	h.run("vlmc", "create", "vol", "--size", "40M")
	mustTool(t, "libnbd-bin", "nbdcopy", img, h.uri("vol"))
	back := filepath.Join(t.TempDir(), "back.raw")
	mustTool(t, "libnbd-bin", "nbdcopy", "--connections=4", "--requests=16", h.uri("vol"), back)
	a, _ := os.ReadFile(img)
	b, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("nbdcopy round trip differs (%v)", err)
	}
}

// TestFioVerify runs fio's nbd engine with crc32c verification, two jobs
// on two connections each over its own half, on a clone of a snapshot
// (every first write copies up).
func TestFioVerify(t *testing.T) {
	h := startHost(t)
	h.run("vlmc", "create", "base", "--size", "32M")
	qemuIO(t, h.uri("base"), "write -P 9 0 32M")
	h.run("vlmc", "snapshot", "base", "snap")
	h.run("vlmc", "clone", "snap", "vm")
	out := mustTool(t, "fio", "fio", "--name=verify", "--ioengine=nbd", "--uri="+h.uri("vm"),
		"--rw=randwrite", "--bs=4k", "--size=16M", "--numjobs=2", "--offset_increment=16M",
		"--iodepth=16", "--verify=crc32c", "--verify_state_save=0", "--verify_fatal=1", "--do_verify=1", "--output-format=json")
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Write struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"write"`
			Read struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil || len(res.Jobs) != 2 {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	for i, j := range res.Jobs {
		if j.Error != 0 || j.Write.IOBytes != 16*mib || j.Read.IOBytes != 16*mib {
			t.Errorf("fio job %d: %+v", i, j)
		}
	}
	// The snapshot is untouched.
	qemuIO(t, "-r "+h.uri("snap"), "read -P 9 0 32M")
}

// TestExportTable checks vlmc map, unmap and showmapped, and that nbdd
// serves and lists only the mapped volumes.
func TestExportTable(t *testing.T) {
	h := startHost(t)
	h.run("vlmc", "create", "a", "--size", "8M")
	h.run("vlmc", "create", "b", "--size", "8M")
	uriA := h.uri("a")
	h.uri("b")
	var shown struct {
		Mapped []struct{ Volume, URI string }
	}
	if err := json.Unmarshal([]byte(h.run("vlmc", "showmapped", "--json")), &shown); err != nil || len(shown.Mapped) != 2 || shown.Mapped[0].URI != uriA {
		t.Fatalf("showmapped: %+v, %v", shown, err)
	}
	list := mustTool(t, "libnbd-bin", "nbdinfo", "--list", "--json", "nbd+unix:///?socket="+h.socket)
	if !strings.Contains(list, `"export-name": "a"`) || !strings.Contains(list, `"export-name": "b"`) {
		t.Errorf("nbdinfo --list:\n%s", list)
	}
	h.run("vlmc", "unmap", "b")
	if out, err := tool(t, "libnbd-bin", "nbdinfo", "nbd+unix:///b?socket="+h.socket); err == nil {
		t.Errorf("an unmapped volume is served:\n%s", out)
	}
	if out, err := exec.Command(filepath.Join(bins, "vlmc"), "--config", h.conf, "map", "nosuch").CombinedOutput(); err == nil {
		t.Errorf("vlmc map of a missing volume succeeded:\n%s", out)
	}
	mustTool(t, "libnbd-bin", "nbdinfo", uriA)
}

// TestSocketActivation runs a second nbdd on the host's segment with its
// socket passed by systemd-socket-activate (LISTEN_FDS), serving every
// volume (no export table).
func TestSocketActivation(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (apt-get install systemd)")
	}
	h := startHost(t)
	h.run("vlmc", "create", "vol", "--size", "8M")
	qemuIO(t, h.uri("vol"), "write -P 5 0 1M")
	sock := filepath.Join(t.TempDir(), "activated.sock")
	cmd := exec.Command(activate, "-l", sock, filepath.Join(bins, "nbdd"),
		"--segment", h.segName, "--segment-dir", h.segDir, "--vlmcd-port", "3", "--log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	// The socket exists at once; nbdd starts at the first connection.
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	qemuIO(t, "nbd+unix:///vol?socket="+sock, "read -P 5 0 1M", "read -P 0 1M 7M")
}

// allocated sums the bytes allocated to the files under dir.
func allocated(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			return err
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTrimGivesSpaceBack trims written whole objects through nbdd and
// checks that the data directory shrinks by them, while vlmcd (which does
// the object I/O itself here) kept them open.
func TestTrimGivesSpaceBack(t *testing.T) {
	h := startHost(t)
	h.run("vlmc", "create", "vol", "--size", "32M")
	uri := h.uri("vol")
	qemuIO(t, uri, "write -P 3 0 32M", "flush")
	before := allocated(t, h.dataDir)
	qemuIO(t, uri, "discard 0 24M", "read -P 3 24M 8M")
	after := allocated(t, h.dataDir)
	t.Logf("data directory: %d bytes allocated before the trim, %d after", before, after)
	if before-after < 24*mib {
		t.Errorf("trimming 24 MiB gave back %d bytes", before-after)
	}
	qemuIO(t, uri, "read -P 0 0 24M")
}
