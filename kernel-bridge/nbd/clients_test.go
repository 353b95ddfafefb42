package nbd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests against real NBD clients (qemu-utils, libnbd-bin, python3-libnbd,
// fio). Each fails when the client disagrees with the server; a missing
// client skips its test, naming the Debian package to install.

// need returns the path of tool, or skips t.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed (apt-get install %s, or tools/install-deps.sh)", tool, pkg)
	}
	return p
}

// run runs a client and returns its combined output and exit code.
func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// nbdsh runs "python3 -m nbd": the system python has the module, a
	// pyenv shim earlier in PATH does not.
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out\n%s", name, strings.Join(args, " "), out)
	}
	return string(out), code
}

// mustRun runs a client that must succeed.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, code := run(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

func nbdURI(sock, export string) string {
	return "nbd+unix:///" + export + "?socket=" + sock
}

func TestQemuIO(t *testing.T) {
	qemuIO := need(t, "qemu-io", "qemu-utils")
	b := newMemBackend()
	b.async = true // replies complete out of order
	d := b.add("disk", 64<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})
	uri := nbdURI(sock, "disk")

	// Each step writes with qemu-io and we track the expected contents.
	want := make([]byte, d.size)
	fill := func(off, n int, v byte) {
		for i := range n {
			want[off+i] = v
		}
	}
	var cmds []string
	write := func(v byte, off, n int) {
		cmds = append(cmds, "-c", fmt.Sprintf("write -P 0x%02x %d %d", v, off, n))
		fill(off, n, v)
	}
	write(0xab, 0, 1<<20)
	write(0xcd, 1000, 5000)        // unaligned
	write(0x5a, 8<<20, 40<<20)     // larger than the maximum block size: split
	write(0x77, 3<<20+511, 65537)  // unaligned both ends
	write(0x11, 64<<20-4096, 4096) // last block
	cmds = append(cmds, "-c", "aio_write -P 0x22 60M 64k", "-c", "aio_write -P 0x33 61M 64k", "-c", "aio_flush")
	fill(60<<20, 64<<10, 0x22)
	fill(61<<20, 64<<10, 0x33)
	cmds = append(cmds, "-c", "write -z 9M 1M")      // WRITE_ZEROES
	cmds = append(cmds, "-c", "discard 10M 1M")      // TRIM
	cmds = append(cmds, "-c", "write -z -u 12M 64k") // WRITE_ZEROES, may unmap
	cmds = append(cmds, "-c", "write -P 0x5a 12M 36M")[:len(cmds)]
	fill(9<<20, 1<<20, 0)
	fill(10<<20, 1<<20, 0)
	fill(12<<20, 64<<10, 0)
	cmds = append(cmds, "-c", "flush")
	out := mustRun(t, qemuIO, append([]string{"-f", "raw", uri}, cmds...)...)
	if !bytes.Equal(d.contents(), want) {
		t.Fatalf("disk contents differ from what qemu-io wrote\n%s", out)
	}
	if d.flushes.Load() == 0 {
		t.Error("qemu-io flush did not reach the backend")
	}

	// Read everything back through qemu-io with pattern checks.
	reads := []string{
		"read -P 0xab 0 1000", "read -P 0xcd 1000 5000", "read -P 0xab 6000 1042576",
		"read -P 0x5a 8M 1M", "read -P 0 9M 2M", "read -P 0x5a 11M 1M", "read -P 0 12M 64k",
		"read -P 0x77 3146239 65537", "read -P 0x5a 40M 8M", "read -P 0x11 67104768 4096",
		"read -P 0x22 60M 64k", "read -P 0x33 61M 64k", "read -P 0 62M 1M",
		"aio_read -P 0x5a 20M 1M", "aio_read -P 0xab 8192 4096", "aio_flush",
	}
	args := []string{"-f", "raw", "-r", uri}
	for _, r := range reads {
		args = append(args, "-c", r)
	}
	out = mustRun(t, qemuIO, args...)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "error") {
		t.Fatalf("qemu-io read back wrong data:\n%s", out)
	}
	// A read above the maximum block size, checked by qemu-io itself.
	mustRun(t, qemuIO, "-f", "raw", "-r", uri, "-c", "read -P 0x5a 13M 35M")
}

// qemuMapEntry is one element of qemu-img map --output=json.
type qemuMapEntry struct {
	Start  uint64 `json:"start"`
	Length uint64 `json:"length"`
	Data   bool   `json:"data"`
	Zero   bool   `json:"zero"`
}

// dataRanges merges the data:true entries of a map into [start, end) pairs.
func dataRanges(m []qemuMapEntry) [][2]uint64 {
	var r [][2]uint64
	for _, e := range m {
		if !e.Data {
			continue
		}
		if n := len(r); n > 0 && r[n-1][1] == e.Start {
			r[n-1][1] += e.Length
			continue
		}
		r = append(r, [2]uint64{e.Start, e.Start + e.Length})
	}
	return r
}

func TestQemuImg(t *testing.T) {
	qemuImg := need(t, "qemu-img", "qemu-utils")
	qemuIO := need(t, "qemu-io", "qemu-utils")
	b := newMemBackend()
	b.async = true
	d := b.add("disk", 16<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})
	uri := nbdURI(sock, "disk")

	// A source image with data, runs of zeroes, and a hole.
	src := make([]byte, d.size)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range [][2]int{{0, 1 << 20}, {3 << 20, 3<<20 + 12345}, {8 << 20, 9 << 20}, {16<<20 - 4096, 16 << 20}} {
		for i := r[0]; i < r[1]; i++ {
			src[i] = byte(rng.IntN(255) + 1)
		}
	}
	srcPath := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, qemuImg, "convert", "-n", "-W", "-m", "8", "-f", "raw", "-O", "raw", srcPath, uri)
	if !bytes.Equal(d.contents(), src) {
		t.Fatal("qemu-img convert: export differs from the source")
	}
	mustRun(t, qemuImg, "compare", "-f", "raw", "-F", "raw", srcPath, uri)
	// compare must notice one changed byte.
	d.set([]byte{0}, 8<<20+77)
	if out, code := run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", srcPath, uri); code != 1 {
		t.Fatalf("qemu-img compare of differing images: exit %d, want 1\n%s", code, out)
	}

	// Allocation: a fresh export, written and trimmed by qemu-io.
	e := b.add("map", 8<<20, memAllFlags)
	muri := nbdURI(sock, "map")
	mustRun(t, qemuIO, "-f", "raw", muri,
		"-c", "write -P 1 0 1M", "-c", "write -P 2 3M 1M", "-c", "discard 3584k 512k",
		"-c", "write -P 3 6M 64k", "-c", "write -z -u 6M 4k", "-c", "write -z 1M 64k")
	out := mustRun(t, qemuImg, "map", "--output=json", "-f", "raw", muri)
	var m []qemuMapEntry
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	got, want := dataRanges(m), e.allocated()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("qemu-img map data ranges %v, export allocated %v\n%s", got, want, out)
	}
	wantRanges := [][2]uint64{{0, 1<<20 + 64<<10}, {3 << 20, 3584 << 10}, {6<<20 + 4096, 6<<20 + 64<<10}}
	if fmt.Sprint(got) != fmt.Sprint(wantRanges) {
		t.Fatalf("qemu-img map data ranges %v, want %v", got, wantRanges)
	}
	for _, x := range m {
		if !x.Data && !x.Zero {
			t.Errorf("map entry %+v: a hole that does not read as zero", x)
		}
	}
}

func TestNbdinfo(t *testing.T) {
	nbdinfo := need(t, "nbdinfo", "libnbd-bin")
	b := newMemBackend()
	d := b.add("disk", 8<<20, memAllFlags)
	d.description = "the test disk"
	b.add("snap", 4<<20, ReadOnly)
	b.add("plain", 1<<20, CanFlush|CanFUA)
	sock, _ := startServer(t, b, Config{})

	// --list, as JSON.
	out := mustRun(t, nbdinfo, "--list", "--json", "nbd+unix:///?socket="+sock)
	var list struct {
		Exports []struct {
			Name     string `json:"export-name"`
			Size     uint64 `json:"export-size"`
			ReadOnly bool   `json:"is_read_only"`
			MinBlock uint64 `json:"block_size_minimum"`
			MaxBlock uint64 `json:"block_size_maximum"`
		} `json:"exports"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("nbdinfo --list --json: %v\n%s", err, out)
	}
	var names []string
	for _, e := range list.Exports {
		names = append(names, e.Name)
		switch e.Name {
		case "disk":
			if e.Size != 8<<20 || e.ReadOnly || e.MinBlock != 1 || e.MaxBlock != DefaultMaxRequest {
				t.Errorf("disk in --list: %+v", e)
			}
		case "snap":
			if e.Size != 4<<20 || !e.ReadOnly {
				t.Errorf("snap in --list: %+v", e)
			}
		}
	}
	if fmt.Sprint(names) != "[disk snap plain]" {
		t.Fatalf("nbdinfo --list exports %v\n%s", names, out)
	}

	// --map after writes and a trim.
	d.set(pattern(0, 1<<20), 0)
	d.set(pattern(0, 2<<20), 4<<20)
	d.punch(5<<20, 512<<10)
	out = mustRun(t, nbdinfo, "--map", nbdURI(sock, "disk"))
	var got [][2]uint64
	var end uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("nbdinfo --map line %q", line)
		}
		off, _ := strconv.ParseUint(f[0], 10, 64)
		n, _ := strconv.ParseUint(f[1], 10, 64)
		typ, _ := strconv.Atoi(f[2])
		if off != end {
			t.Fatalf("nbdinfo --map: gap before %q\n%s", line, out)
		}
		end = off + n
		switch typ {
		case 0:
			if k := len(got); k > 0 && got[k-1][1] == off {
				got[k-1][1] = end
			} else {
				got = append(got, [2]uint64{off, end})
			}
		case 3:
		default:
			t.Fatalf("nbdinfo --map: type %d in %q", typ, line)
		}
	}
	if end != d.size {
		t.Fatalf("nbdinfo --map covers %d bytes, want %d\n%s", end, d.size, out)
	}
	if want := d.allocated(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("nbdinfo --map data %v, allocated %v\n%s", got, want, out)
	}

	// --can and --is answer with the exit code: 0 yes, 2 no.
	check := func(export, kind, what string, want bool) {
		t.Helper()
		out, code := run(t, nbdinfo, "--"+kind, what, nbdURI(sock, export))
		if code != 0 && code != 2 {
			t.Fatalf("nbdinfo --%s %s %s: exit %d\n%s", kind, what, export, code, out)
		}
		if got := code == 0; got != want {
			t.Errorf("nbdinfo --%s %s on %s: %v, want %v", kind, what, export, got, want)
		}
	}
	for _, what := range []string{"connect", "read", "write", "flush", "fua", "trim", "zero", "fast-zero", "cache", "multi-conn", "df", "structured-reply"} {
		check("disk", "can", what, true)
	}
	check("disk", "is", "read-only", false)
	check("disk", "is", "rotational", false)
	check("snap", "is", "read-only", true)
	for _, what := range []string{"write", "flush", "fua", "trim", "zero", "fast-zero", "cache", "multi-conn"} {
		check("snap", "can", what, false)
	}
	check("plain", "can", "flush", true)
	check("plain", "can", "fua", true)
	for _, what := range []string{"trim", "zero", "fast-zero", "cache", "multi-conn"} {
		check("plain", "can", what, false)
	}
	if out, code := run(t, nbdinfo, "--can", "connect", nbdURI(sock, "nosuch")); code == 0 {
		t.Errorf("nbdinfo --can connect to an unknown export succeeded\n%s", out)
	}
}

func TestNbdcopy(t *testing.T) {
	nbdcopy := need(t, "nbdcopy", "libnbd-bin")
	b := newMemBackend()
	b.async = true
	a := b.add("a", 24<<20, memAllFlags)
	c := b.add("c", 24<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})

	src := make([]byte, a.size)
	rng := rand.New(rand.NewPCG(3, 4))
	for off := 0; off < len(src); off += 1 << 20 {
		if rng.IntN(3) == 0 {
			continue // leave a zero MiB
		}
		n := 1<<20 - rng.IntN(5000)
		for i := off; i < off+n; i++ {
			src[i] = byte(rng.Uint32())
		}
	}
	dir := t.TempDir()
	srcPath, outPath := filepath.Join(dir, "src.raw"), filepath.Join(dir, "out.raw")
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nbdcopy, "--flush", srcPath, nbdURI(sock, "a"))
	if !bytes.Equal(a.contents(), src) {
		t.Fatal("nbdcopy file → export: contents differ")
	}
	mustRun(t, nbdcopy, "--connections=2", nbdURI(sock, "a"), nbdURI(sock, "c"))
	if !bytes.Equal(c.contents(), src) {
		t.Fatal("nbdcopy export → export: contents differ")
	}
	mustRun(t, nbdcopy, nbdURI(sock, "c"), outPath)
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, src) {
		t.Fatal("nbdcopy export → file: contents differ")
	}
}

// nbdshScript runs the edge cases a real client library can be made to
// send. It prints OK at the end; any assertion raises.
const nbdshScript = `
import errno, os
import nbd

sock = os.environ["NBD_SOCK"]
def uri(name):
    return "nbd+unix:///%s?socket=%s" % (name, sock)

def expect_errno(fn, want, what):
    try:
        fn()
    except nbd.Error as e:
        assert e.errnum == want, "%s: errno %s, want %s (%s)" % (what, e.errnum, want, e)
        return
    raise AssertionError("%s: no error" % what)

# STARTTLS gets NBD_REP_ERR_UNSUP, and the negotiation goes on.
h = nbd.NBD()
h.set_tls(nbd.TLS_ALLOW)
h.connect_uri(uri("disk"))
assert not h.get_tls_negotiated()
assert h.get_structured_replies_negotiated()
assert h.pread(512, 0) == b"\0" * 512
h.shutdown()

# Option mode: a failed INFO, then GO on the right name.
h = nbd.NBD()
h.set_opt_mode(True)
h.set_full_info(True)
h.add_meta_context("base:allocation")
h.connect_uri(uri(""))
h.set_export_name("nosuch")
try:
    h.opt_info()
    raise AssertionError("INFO of an unknown export succeeded")
except nbd.Error:
    pass
h.set_export_name("disk")
h.opt_info()
assert h.get_size() == 1 << 20
assert h.get_canonical_export_name() == "disk"
assert h.get_export_description() == "edge cases"
names = []
h.opt_list(lambda name, desc: names.append(name) or 0)
assert names == ["disk", "ro"], names
h.opt_go()
size = h.get_size()
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1 << 20
assert h.can_meta_context("base:allocation")

# A read past the end: EINVAL from the server, not from libnbd.
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_BOUNDS)
expect_errno(lambda: h.pread(1024, size - 512), errno.EINVAL, "read past the end")
h.set_strict_mode(0)
expect_errno(lambda: h.pwrite(b"x" * 4096, size), errno.ENOSPC, "write past the end")
h.set_strict_mode(nbd.STRICT_COMMANDS | nbd.STRICT_FLAGS | nbd.STRICT_BOUNDS | nbd.STRICT_ZERO_SIZE | nbd.STRICT_ALIGN)

# Data and a hole, then REQ_ONE.
h.pwrite(b"\x55" * 65536, 0)
h.trim(65536, 65536)
ext = []
h.block_status(size, 0, lambda ctx, off, entries, err: ext.append((ctx, off, list(entries))) or 0)
assert len(ext) == 1 and ext[0][0] == "base:allocation", ext
e = ext[0][2]
assert e[0] == 65536 and e[1] == 0 and e[3] == nbd.STATE_HOLE | nbd.STATE_ZERO, e
ext = []
h.block_status(size, 0, lambda ctx, off, entries, err: ext.append(list(entries)) or 0, nbd.CMD_FLAG_REQ_ONE)
assert ext == [[65536, 0]], ext
ext = []
h.block_status(4096, 65536 + 4096, lambda ctx, off, entries, err: ext.append(list(entries)) or 0, nbd.CMD_FLAG_REQ_ONE)
assert ext == [[4096, nbd.STATE_HOLE | nbd.STATE_ZERO]], ext

# FAST_ZERO: fast when it may punch, ENOTSUP (and nothing zeroed) when it
# must allocate.
assert h.can_fast_zero()
h.zero(8192, 0, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(8192, 0) == b"\0" * 8192
h.pwrite(b"\x66" * 4096, 0)
expect_errno(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE), errno.ENOTSUP, "fast zero with NO_HOLE")
assert h.pread(4096, 0) == b"\x66" * 4096
h.zero(4096, 0, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 0) == b"\0" * 4096

# DF: one data chunk.
buf = h.pread_structured(65536, 0, lambda sub, off, status, err: 0, nbd.CMD_FLAG_DF)
assert len(buf) == 65536

h.flush()
h.cache(4096, 0)
h.shutdown()

# A read-only export: writes and trims get EPERM from the server.
h = nbd.NBD()
h.connect_uri(uri("ro"))
assert h.is_read_only()
h.set_strict_mode(0)
expect_errno(lambda: h.pwrite(b"x" * 512, 0), errno.EPERM, "write to a read-only export")
expect_errno(lambda: h.trim(512, 0), errno.EPERM, "trim of a read-only export")
expect_errno(lambda: h.zero(512, 0), errno.EPERM, "zero of a read-only export")
h.shutdown()
print("OK")
`

func TestNbdsh(t *testing.T) {
	nbdsh := need(t, "nbdsh", "libnbd-bin python3-libnbd")
	b := newMemBackend()
	d := b.add("disk", 1<<20, memAllFlags)
	d.description = "edge cases"
	d.max = 1 << 20
	b.add("ro", 1<<20, ReadOnly|CanFlush)
	sock, _ := startServer(t, b, Config{})
	script := filepath.Join(t.TempDir(), "edge.py")
	if err := os.WriteFile(script, []byte(nbdshScript), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NBD_SOCK", sock)
	out, code := run(t, nbdsh, "-c", "exec(open("+strconv.Quote(script)+").read())")
	if code != 0 || !strings.Contains(out, "OK") {
		if strings.Contains(out, "No module named nbd") {
			t.Skipf("nbdsh: python module missing (apt-get install python3-libnbd)\n%s", out)
		}
		t.Fatalf("nbdsh: exit %d\n%s", code, out)
	}
}

func TestFioVerify(t *testing.T) {
	fio := need(t, "fio", "fio")
	if out, _ := run(t, fio, "--enghelp=nbd"); !strings.Contains(out, "uri") {
		t.Skip("fio has no nbd engine")
	}
	b := newMemBackend()
	b.async = true
	d := b.add("disk", 16<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})
	dir := t.TempDir()
	out := mustRun(t, fio, "--name=v", "--ioengine=nbd", "--uri="+nbdURI(sock, "disk"),
		"--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=4M", "--numjobs=2", "--offset_increment=8M",
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--directory="+dir, "--output-format=json",
		"--output="+filepath.Join(dir, "out.json"))
	res, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatalf("fio wrote no result: %v\n%s", err, out)
	}
	var r struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOBytes uint64 `json:"io_bytes"`
			} `json:"read"`
			Write struct {
				IOBytes uint64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatalf("fio json: %v\n%s", err, res)
	}
	if len(r.Jobs) == 0 {
		t.Fatalf("fio: no jobs in\n%s", res)
	}
	for i, j := range r.Jobs {
		if j.Error != 0 || j.Write.IOBytes == 0 || j.Read.IOBytes == 0 {
			t.Errorf("fio job %d: error %d, wrote %d, verified %d bytes", i, j.Error, j.Write.IOBytes, j.Read.IOBytes)
		}
	}
	if len(d.allocated()) == 0 {
		t.Error("fio wrote nothing to the export")
	}
}
