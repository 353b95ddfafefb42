package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bins holds filed, mapperd, vlmcd, archipelago and vlmc built from the
// repository, side by side as in bin/, so archipelago finds its peers.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vlmc-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	for name, pkg := range map[string]string{"filed": "../../peers/filed", "mapperd": "../../peers/mapperd",
		"vlmcd": "../../peers/vlmcd", "archipelago": "../archipelago", "vlmc": "."} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is a host config in temporary directories.
type host struct {
	t      *testing.T
	conf   string
	segDir string
	runDir string
}

func newHost(t *testing.T) *host {
	return newHostOver(t, t.TempDir(), "e2e")
}

// newHostOver is a host whose filed serves data, locking as owner.
func newHostOver(t *testing.T, data, owner string) *host {
	h := &host{t: t, segDir: t.TempDir(), runDir: t.TempDir()}
	h.conf = filepath.Join(t.TempDir(), "archipelago.conf")
	conf := fmt.Sprintf(`[ARCHIPELAGO]
RUN_DIR = %s
LOG_DIR = %s
[XSEG]
SEGMENT_NAME = vlmc-e2e-%d
SEGMENT_DIR = %s
SEGMENT_PORTS = 64
SEGMENT_DYNPORTS = 48
SEGMENT_SIZE = 128
SEGMENT_REQUESTS = 512
[PEERS]
ROLES = blocker mapperd vlmcd
[blocker]
type = file_blocker
portno_start = 1
archip_dir = %s
log_level = 2
owner = %s
cpus = %d
[mapperd]
portno_start = 2
portno_end = 2
blockerb_port = 1
blockerm_port = 1
owner = %s
[vlmcd]
portno_start = 3
portno_end = 3
blocker_port = 1
mapper_port = 2
`, h.runDir, h.runDir, os.Getpid(), h.segDir, data, owner, firstCPU(t), owner)
	if err := os.WriteFile(h.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// firstCPU is the lowest CPU this test may run on: the blocker is pinned
// to it (key cpus).
func firstCPU(t *testing.T) int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for c := 0; ; c++ {
		if set.IsSet(c) {
			return c
		}
	}
}

// cpusAllowed returns the CPU list every thread of process pid may run
// on, as /proc writes it; threads that disagree fail the test.
func cpusAllowed(t *testing.T, pid int) string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	list := ""
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(b), "Cpus_allowed_list:")
		l, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
		if list != "" && l != list {
			t.Fatalf("pid %d: threads on %q and %q", pid, list, l)
		}
		list = l
	}
	return list
}

// run runs a built tool with --config and returns its stdout; a non-zero
// exit fails the test.
func (h *host) run(tool string, args ...string) string {
	h.t.Helper()
	out, err := h.try(tool, args...)
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return out
}

func (h *host) try(tool string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(bins, tool), append([]string{"--config", h.conf}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// pids returns the pids of the host's peers from their pid files.
func (h *host) pids() []int {
	var out []int
	files, _ := filepath.Glob(filepath.Join(h.runDir, "*.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestHost(t *testing.T) {
	h := newHost(t)
	start := time.Now()
	h.run("archipelago", "start")
	pids := h.pids()
	t.Cleanup(func() { // whatever happened, no peer outlives the test
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if len(pids) != 3 {
		t.Fatalf("pid files after start: %v", pids)
	}
	if out, err := h.try("archipelago", "start"); err == nil || !strings.Contains(out, "already running") {
		t.Fatalf("second start: %v\n%s", err, out)
	}

	// status --json: every peer alive on its port.
	var st struct {
		Peers []struct {
			Role  string `json:"role"`
			Port  string `json:"port"`
			PID   int    `json:"pid"`
			Alive bool   `json:"alive"`
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(h.run("archipelago", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 3 {
		t.Fatalf("status: %+v", st)
	}
	for i, want := range []string{"blocker", "mapperd", "vlmcd"} {
		p := st.Peers[i]
		if p.Role != want || !p.Alive || p.State != "running" || p.Port != strconv.Itoa(i+1) || p.PID == 0 {
			t.Errorf("status peer %d: %+v, want %s running on port %d", i, p, want, i+1)
		}
	}
	// The blocker runs on the CPU its cpus key names, mapperd wherever
	// this test may.
	if got, want := cpusAllowed(t, st.Peers[0].PID), strconv.Itoa(firstCPU(t)); got != want {
		t.Errorf("blocker's threads may run on CPUs %s, want %s (cpus = %s)", got, want, want)
	}
	if got, want := cpusAllowed(t, st.Peers[1].PID), cpusAllowed(t, os.Getpid()); got != want {
		t.Errorf("mapperd's threads may run on CPUs %s, want this test's %s", got, want)
	}

	// An image with holes: random chunks, all-zero chunks, a partial tail.
	const mib = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, 17*mib+12345)
	for _, r := range [][2]int{{0, 3 * mib}, {12*mib + 100, 13 * mib}, {14 * mib, 14*mib + 7}, {16 * mib, len(img)}} {
		for i := r[0]; i < r[1]; i++ {
			img[i] = byte(rng.Uint32())
		}
	}
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "img")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}

	h.run("vlmc", "create", "vol1", "--size", "20M")
	var imp struct {
		Written uint64 `json:"bytes_written"`
		Skipped uint64 `json:"zero_bytes_skipped"`
	}
	if err := json.Unmarshal([]byte(h.run("vlmc", "import", "vol1", imgPath, "--json")), &imp); err != nil {
		t.Fatal(err)
	}
	if imp.Skipped != 8*mib || imp.Written != uint64(len(img))-8*mib {
		t.Errorf("import: %+v, want chunks 1 and 2 (8 MiB) skipped", imp)
	}
	outPath := filepath.Join(dir, "out")
	h.run("vlmc", "export", "vol1", outPath)
	got, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(img), make([]byte, 20*mib-len(img))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("export of vol1: %d bytes, want %d, equal %v", len(got), len(want), bytes.Equal(got[:min(len(got), len(img))], img))
	}

	// import of a missing volume creates it with the file's size; export
	// to stdout writes exactly that size.
	h.run("vlmc", "import", "vol2", imgPath)
	if got := h.run("vlmc", "export", "vol2", "-"); got != string(img) {
		t.Fatalf("export of vol2 to stdout: %d bytes, want %d", len(got), len(img))
	}

	h.run("vlmc", "snapshot", "vol1", "snap1")
	h.run("vlmc", "clone", "snap1", "vol3", "--size", "32M")
	var info struct {
		Size  uint64 `json:"size_bytes"`
		Block uint64 `json:"block_size_bytes"`
	}
	if err := json.Unmarshal([]byte(h.run("vlmc", "info", "vol3", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Size != 32*mib || info.Block != 4*mib {
		t.Errorf("info vol3: %+v", info)
	}
	h.run("vlmc", "export", "vol3", outPath)
	if got, _ := os.ReadFile(outPath); !bytes.Equal(got, append(bytes.Clone(want), make([]byte, 12*mib)...)) {
		t.Errorf("export of clone vol3 differs from its snapshot's data")
	}

	// Errors are one line that says what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", "nosuch"}, "no such volume"},
		{[]string{"create", "vol1", "--size", "1G"}, "already exists"},
		{[]string{"snapshot", "snap1", "x1"}, "read-only"},
		{[]string{"resize", "vol1", "--size", "1M"}, "--force"},
		{[]string{"create", "vol9"}, "--size is required"},
	} {
		out, err := h.try("vlmc", c.args...)
		if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 && c.want != "--size is required" {
			t.Errorf("vlmc %v: %v %q, want one line with %q", c.args, err, out, c.want)
		}
	}

	h.run("archipelago", "stop")
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d still running after stop", pid)
		}
	}
	if entries, _ := os.ReadDir(h.segDir); len(entries) != 0 {
		t.Errorf("segment dir after stop: %v", entries)
	}
	out, err := h.try("archipelago", "status")
	if err == nil || !strings.Contains(out, "not running") {
		t.Errorf("status after stop: %v\n%s", err, out)
	}
	if _, err := h.try("vlmc", "info", "vol1"); err == nil {
		t.Errorf("vlmc after stop: no error")
	}
	t.Logf("whole host test: %v", time.Since(start))
}

// start starts the host's peers; they are SIGKILLed when the test ends.
func (h *host) start() []int {
	h.t.Helper()
	h.run("archipelago", "start")
	pids := h.pids()
	h.t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if len(pids) != 3 {
		h.t.Fatalf("pid files after start: %v", pids)
	}
	return pids
}

// fails runs vlmc and checks that it fails with exit code code and one
// line holding want.
func (h *host) fails(code int, want string, args ...string) {
	h.t.Helper()
	out, err := h.try("vlmc", args...)
	exit, _ := err.(*exec.ExitError)
	if exit == nil || exit.ExitCode() != code || !strings.Contains(out, want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		h.t.Errorf("vlmc %v: %v %q; want exit %d and one line with %q", args, err, out, code, want)
	}
}

// TestLockUnlock runs vlmc lock and unlock on two hosts over one data
// directory: one host at a time holds a volume's lock, the other is told
// who; unlock --force breaks the lock of a host whose peers were killed.
func TestLockUnlock(t *testing.T) {
	data := t.TempDir()
	h1, h2 := newHostOver(t, data, "host-1"), newHostOver(t, data, "host-2")
	h1.start()
	pids2 := h2.start()

	h1.run("vlmc", "create", "vol", "--size", "8M")
	if out := h1.run("vlmc", "lock", "vol"); strings.TrimSpace(out) != "locked vol for this host" {
		t.Errorf("lock: %q", out)
	}
	var res struct {
		Op     string `json:"op"`
		Volume string `json:"volume"`
		Forced bool   `json:"forced"`
	}
	if err := json.Unmarshal([]byte(h1.run("vlmc", "lock", "vol", "--json")), &res); err != nil || res.Op != "lock" || res.Volume != "vol" || res.Forced {
		t.Errorf("lock again --json: %+v %v", res, err)
	}
	h2.fails(1, `"vol": locked by host-1: close it there`, "lock", "vol")
	h2.fails(1, "--force", "unlock", "vol")
	h2.fails(2, "vlmc unlock --force vol", "lock", "vol", "--force")
	h1.fails(1, "no such volume", "lock", "nosuch")

	if out := h1.run("vlmc", "unlock", "vol"); strings.TrimSpace(out) != "unlocked vol" {
		t.Errorf("unlock: %q", out)
	}
	h1.run("vlmc", "unlock", "vol") // a free lock: nothing to do
	h2.run("vlmc", "lock", "vol")
	h1.fails(1, `locked by host-2`, "lock", "vol")

	// Host 2 dies with the lock: it stays until broken.
	for _, pid := range pids2 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	h1.fails(1, `locked by host-2`, "lock", "vol")
	res = struct {
		Op     string `json:"op"`
		Volume string `json:"volume"`
		Forced bool   `json:"forced"`
	}{}
	if err := json.Unmarshal([]byte(h1.run("vlmc", "unlock", "vol", "--force", "--json")), &res); err != nil || res.Op != "unlock" || !res.Forced {
		t.Errorf("unlock --force --json: %+v %v", res, err)
	}
	h1.run("vlmc", "lock", "vol")
	h1.run("vlmc", "unlock", "vol")
	h1.run("archipelago", "stop")

	out, err := exec.Command(filepath.Join(bins, "vlmc"), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("vlmc --help: %v\n%s", err, out)
	}
	for _, want := range []string{"lock NAME", "unlock NAME [--force]", "breaks another (dead) host's"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("vlmc --help does not mention %q", want)
		}
	}
}
