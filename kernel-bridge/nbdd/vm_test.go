package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// vmPackages are the Debian packages the VM boot test needs: a guest
// kernel (its virtio modules go into the initramfs), a static busybox for
// the initramfs, and QEMU.
const vmPackages = "linux-image-cloud-amd64 busybox-static qemu-system-x86"

// Where the guest reads and writes the clone (the volume has 4 MiB
// objects: the writes land in objects the parent has and in ones it has
// not, and one crosses an object boundary).
const (
	vmDiskSize    = 32 * mib
	vmBaseMarkOff = 12 * mib      // base data the guest reads and leaves alone
	vmMarkAOff    = 0             // over the base's pattern (copy-up of object 0)
	vmMarkBOff    = 4*mib + 100   // in an object the parent does not have
	vmDataOff     = 6*mib + mib/2 // 3 MiB of guest random data, across 8 MiB
	vmDataLen     = 3 * mib
	vmBootTimeout = 60 * time.Second // TCG boot is ~3 s; a cold first run ~10 s
)

// TestVMBoot boots a Linux guest under qemu-system-x86_64 whose only disk
// is a thin clone of a snapshot, served by the host's nbdd. The guest's
// /init reads data of the parent, writes markers and random data (its
// MD5 printed on the console), and powers off; the test then reads the
// clone back with vlmc export and checks every written byte, the
// copied-up rest of the parent's data, and that the parent is unchanged.
func TestVMBoot(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skipf("qemu-system-x86_64 not installed (apt-get install --no-install-recommends %s, or tools/install-deps.sh as root)", vmPackages)
	}
	kernel, modules := guestKernel(t)
	busybox := staticBusybox(t)

	token := fmt.Sprintf("%016x", rand.Uint64())
	h := startHost(t)

	// The parent: a pattern over object 0, a line at 12 MiB, zeros else.
	base := make([]byte, vmDiskSize)
	pattern := []byte("archipelago-base-pattern.")
	for i := 0; i < 4*mib; i += len(pattern) {
		copy(base[i:4*mib], pattern)
	}
	baseMark := "BASE-MARK " + token
	copy(base[vmBaseMarkOff:], baseMark+"\n")
	baseImg := filepath.Join(t.TempDir(), "base.raw")
	if err := os.WriteFile(baseImg, base, 0o644); err != nil {
		t.Fatal(err)
	}
	h.run("vlmc", "import", "base", baseImg)
	h.run("vlmc", "snapshot", "base", "gold")
	h.run("vlmc", "clone", "gold", "vm")
	uri := h.uri("vm")

	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.gz")
	writeInitramfs(t, initrd, busybox, modules, guestInit(token, modules))

	accel := []string{"-accel", "tcg"}
	if kvmWorks() {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	t.Logf("booting %s with %s", filepath.Base(kernel), accel[1])
	ctx, cancel := context.WithTimeout(context.Background(), vmBootTimeout)
	defer cancel()
	args := append(accel, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
		"-no-reboot", "-m", "256", "-smp", "1",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet rdinit=/init",
		"-drive", "file="+uri+",format=raw,if=virtio,cache=none")
	cmd := exec.CommandContext(ctx, qemu, args...)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("qemu ran %.1fs", time.Since(start).Seconds())
	out := console.String()
	if ctx.Err() != nil {
		t.Fatalf("the guest did not power off within %v; console:\n%s", vmBootTimeout, out)
	}
	if err != nil {
		t.Fatalf("qemu-system-x86_64: %v; console:\n%s", err, out)
	}
	lines := consoleLines(out)
	t.Logf("guest: %q", lines)
	if f, ok := lines["FAIL"]; ok {
		t.Fatalf("guest: %s; console:\n%s", f, out)
	}
	if lines["BASE"] != baseMark {
		t.Errorf("guest read %q from the parent's data, want %q", lines["BASE"], baseMark)
	}
	wrote, reread := lines["WROTE"], lines["REREAD"]
	if _, ok := lines["DONE"]; !ok || len(wrote) != 32 || wrote != reread {
		t.Fatalf("guest did not finish (wrote %q, read back %q); console:\n%s", wrote, reread, out)
	}

	// What the guest wrote, read back through the host.
	got := exportVolume(t, h, "vm")
	if len(got) != vmDiskSize {
		t.Fatalf("vlmc export vm: %d bytes, want %d", len(got), vmDiskSize)
	}
	want := slices.Clone(base)
	markA := "CLONE-MARK-A " + token + "\n"
	markB := "CLONE-MARK-B " + token + "\n"
	copy(want[vmMarkAOff:], markA)
	copy(want[vmMarkBOff:], markB)
	sum := md5.Sum(got[vmDataOff : vmDataOff+vmDataLen])
	if hex.EncodeToString(sum[:]) != wrote {
		t.Errorf("the guest's %d random bytes at %d: MD5 %x on the host, %s in the guest", vmDataLen, vmDataOff, sum, wrote)
	}
	copy(want[vmDataOff:], got[vmDataOff:vmDataOff+vmDataLen]) // checked by its MD5
	if off := firstDiff(got, want); off >= 0 {
		t.Errorf("clone differs at byte %d: %q, want %q", off, clip(got, off), clip(want, off))
	}

	// The parent and its snapshot are as imported.
	for _, name := range []string{"gold", "base"} {
		if off := firstDiff(exportVolume(t, h, name), base); off >= 0 {
			t.Errorf("%s changed at byte %d", name, off)
		}
	}
}

// guestKernel finds an installed Debian kernel and the modules the guest
// needs to see a virtio disk, in load order (paths under
// /lib/modules/VERSION; none if the kernel has them built in). It skips
// the test if there is none.
func guestKernel(t *testing.T) (kernel string, modules []string) {
	t.Helper()
	skip := func(why string) {
		t.Skipf("%s (apt-get install --no-install-recommends %s, or tools/install-deps.sh as root)", why, vmPackages)
	}
	found, _ := filepath.Glob("/boot/vmlinuz-*")
	// A cloud kernel boots faster (fewer drivers); else the newest.
	slices.SortFunc(found, func(a, b string) int {
		if ca, cb := strings.Contains(a, "cloud"), strings.Contains(b, "cloud"); ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return strings.Compare(b, a)
	})
	for _, k := range found {
		version := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		dir := filepath.Join("/lib/modules", version)
		dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
		if err != nil {
			continue
		}
		if f, err := os.Open(k); err != nil {
			continue // not readable (Ubuntu's are root-only)
		} else {
			f.Close()
		}
		builtin, _ := os.ReadFile(filepath.Join(dir, "modules.builtin"))
		mods, err := moduleOrder(string(dep), string(builtin), "virtio_pci", "virtio_blk")
		if err != nil {
			skip(fmt.Sprintf("kernel %s: %v", version, err))
		}
		for i, m := range mods {
			mods[i] = filepath.Join(dir, m)
		}
		return k, mods
	}
	skip("no guest kernel in /boot with its modules in /lib/modules")
	return "", nil
}

// moduleOrder resolves modules by name against modules.dep: their
// dependencies first, each once; built-in modules are left out.
func moduleOrder(dep, builtin string, names ...string) ([]string, error) {
	deps := map[string][]string{} // module path -> its dependencies' paths
	byName := map[string]string{} // module name -> path
	for _, line := range strings.Split(dep, "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	isBuiltin := map[string]bool{}
	for _, line := range strings.Fields(builtin) {
		isBuiltin[moduleName(line)] = true
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(mod string) {
		if seen[mod] {
			return
		}
		seen[mod] = true
		for _, d := range deps[mod] {
			visit(d)
		}
		order = append(order, mod)
	}
	for _, n := range names {
		if isBuiltin[n] {
			continue
		}
		mod, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("no module %s and not built in", n)
		}
		visit(mod)
	}
	return order, nil
}

// moduleName is the name of a module path: kernel/drivers/block/virtio_blk.ko.xz
// is virtio_blk (dashes and underscores are the same to the kernel).
func moduleName(path string) string {
	name, _, _ := strings.Cut(filepath.Base(path), ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

// staticBusybox returns a statically linked busybox, or skips the test:
// a dynamically linked one does not run in the bare initramfs.
func staticBusybox(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("busybox")
	if err == nil {
		if f, err := elf.Open(path); err == nil {
			defer f.Close()
			if !slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
				return path
			}
		}
	}
	t.Skipf("no static busybox (apt-get install --no-install-recommends %s, or tools/install-deps.sh as root)", vmPackages)
	return ""
}

// guestInit is the initramfs's /init. Each line the test reads starts
// with VMTEST; any failure prints VMTEST FAIL and powers off.
func guestInit(token string, modules []string) string {
	var insmods strings.Builder
	for _, m := range modules {
		fmt.Fprintf(&insmods, "insmod /lib/modules/%s || fail 'insmod %s'\n", guestModuleName(m), filepath.Base(m))
	}
	return fmt.Sprintf(`#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "VMTEST FAIL $*"; poweroff -f; }
%[1]si=0
while [ ! -b /dev/vda ]; do
	i=$((i+1)); [ $i -gt 200 ] && fail 'no /dev/vda'
	sleep 0.1
done
echo "VMTEST BASE $(dd if=/dev/vda bs=4096 skip=%[2]d count=1 2>/dev/null | head -n 1)"
printf 'CLONE-MARK-A %[3]s\n' > /tmp/a
printf 'CLONE-MARK-B %[3]s\n' > /tmp/b
dd if=/tmp/a of=/dev/vda bs=1 seek=%[4]d conv=fsync 2>/dev/null || fail 'write mark A'
dd if=/tmp/b of=/dev/vda bs=1 seek=%[5]d conv=fsync 2>/dev/null || fail 'write mark B'
dd if=/dev/urandom of=/tmp/data bs=65536 count=%[7]d 2>/dev/null || fail 'random data'
dd if=/tmp/data of=/dev/vda bs=65536 seek=%[6]d conv=fsync 2>/dev/null || fail 'write data'
sync
echo "VMTEST WROTE $(md5sum < /tmp/data)"
echo 3 > /proc/sys/vm/drop_caches
echo "VMTEST REREAD $(dd if=/dev/vda bs=65536 skip=%[6]d count=%[7]d iflag=direct 2>/dev/null | md5sum)"
echo VMTEST DONE
poweroff -f
`, insmods.String(), vmBaseMarkOff/4096, token, vmMarkAOff, vmMarkBOff, vmDataOff/65536, vmDataLen/65536)
}

// guestModuleName is where a module lies in the initramfs: flat, under
// its file name, decompressed.
func guestModuleName(path string) string {
	return moduleName(path) + ".ko"
}

// consoleLines picks the guest's VMTEST lines off the console, by their
// first word; md5sum's trailing " -" is dropped.
func consoleLines(out string) map[string]string {
	lines := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		_, rest, ok := strings.Cut(line, "VMTEST ")
		if !ok {
			continue
		}
		key, value, _ := strings.Cut(rest, " ")
		value = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "-"))
		lines[key] = value
	}
	return lines
}

// writeInitramfs writes a gzipped newc cpio archive: busybox, the
// modules (decompressed) and /init.
func writeInitramfs(t *testing.T, path, busybox string, modules []string, init string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	w := &cpioWriter{w: gz}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"} {
		w.add(d, 0o40755, nil, 0, 0)
	}
	w.add("dev/console", 0o20600, nil, 5, 1) // the kernel opens it before /init runs
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	w.add("bin/busybox", 0o100755, bb, 0, 0)
	for _, m := range modules {
		w.add("lib/modules/"+guestModuleName(m), 0o100644, readModule(t, m), 0, 0)
	}
	w.add("init", 0o100755, []byte(init), 0, 0)
	w.add("TRAILER!!!", 0, nil, 0, 0)
	if w.err == nil {
		w.err = gz.Close()
	}
	if w.err == nil {
		w.err = f.Close()
	}
	if w.err != nil {
		t.Fatalf("write initramfs: %v", w.err)
	}
}

// readModule reads a kernel module, decompressing .ko.gz, .ko.xz and
// .ko.zst (busybox insmod loads plain ones only).
func readModule(t *testing.T, path string) []byte {
	t.Helper()
	var tool string
	switch filepath.Ext(path) {
	case ".ko":
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case ".gz":
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return b
	case ".xz":
		tool = "xz"
	case ".zst":
		tool = "zstd"
	default:
		t.Fatalf("%s: unknown module compression", path)
	}
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s: %s not installed to decompress it", path, tool)
	}
	b, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		t.Fatalf("%s -dc %s: %v", tool, path, err)
	}
	return b
}

// cpioWriter writes the newc ("070701") cpio format the kernel unpacks
// into its initial rootfs.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

// add writes one entry; mode holds the file type bits, rdev a device
// node's major and minor.
func (c *cpioWriter) add(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o40000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	var buf bytes.Buffer
	buf.WriteString(hdr)
	buf.WriteString(name)
	buf.WriteByte(0)
	pad4(&buf, buf.Len())
	buf.Write(data)
	pad4(&buf, len(data))
	_, c.err = c.w.Write(buf.Bytes())
}

// pad4 pads buf with zeros so that n becomes a multiple of 4.
func pad4(buf *bytes.Buffer, n int) {
	buf.Write(make([]byte, (4-n%4)%4))
}

// kvmWorks tells whether KVM can run a stock kernel: /dev/kvm opens and
// the CPU has hardware virtualization. (A /dev/kvm from kvm_pvm, as on
// our dev machines, runs PVM guests only: a Debian kernel crawls and dies
// under it, so TCG it is.)
func kvmWorks() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		if name, flags, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			fields := strings.Fields(flags)
			return slices.Contains(fields, "vmx") || slices.Contains(fields, "svm")
		}
	}
	return false
}

// exportVolume reads a whole volume with vlmc export.
func exportVolume(t *testing.T, h *host, name string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".raw")
	h.run("vlmc", "export", name, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firstDiff is the first offset where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// clip is up to 32 bytes of b from off, for an error message.
func clip(b []byte, off int) []byte {
	return b[off:min(off+32, len(b))]
}
