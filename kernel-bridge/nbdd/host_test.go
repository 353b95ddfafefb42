package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bins holds the host's binaries built from the repository (filed,
// mapperd, vlmcd, nbdd, archipelago, vlmc), side by side as in bin/, so
// archipelago finds its peers. The tests run a whole host with
// archipelago start and talk to nbdd with real NBD clients.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nbdd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	for name, pkg := range map[string]string{"filed": "../../peers/filed", "mapperd": "../../peers/mapperd",
		"vlmcd": "../../peers/vlmcd", "nbdd": ".", "archipelago": "../../tools/archipelago", "vlmc": "../../tools/vlmc"} {
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

// host is a whole host (filed, mapperd, vlmcd, nbdd) started by
// archipelago from a config in temporary directories.
type host struct {
	t       *testing.T
	conf    string
	socket  string
	dataDir string
	segName string
	segDir  string
}

// startHost starts a host and stops it when the test ends.
func startHost(t *testing.T) *host {
	t.Helper()
	runDir := t.TempDir()
	h := &host{t: t, conf: filepath.Join(t.TempDir(), "archipelago.conf"), socket: filepath.Join(runDir, "nbd.sock"), dataDir: t.TempDir(),
		segName: fmt.Sprintf("nbdd-test-%d", time.Now().UnixNano()%1e9), segDir: t.TempDir()}
	conf := fmt.Sprintf(`[ARCHIPELAGO]
RUN_DIR = %s
LOG_DIR = %s
[XSEG]
SEGMENT_NAME = %s
SEGMENT_DIR = %s
SEGMENT_PORTS = 64
SEGMENT_DYNPORTS = 48
SEGMENT_SIZE = 256
SEGMENT_REQUESTS = 1024
[PEERS]
ROLES = blocker mapperd vlmcd nbdd
[blocker]
type = file_blocker
portno_start = 1
archip_dir = %s
owner = nbdd-test
[mapperd]
portno_start = 2
portno_end = 2
blockerb_port = 1
blockerm_port = 1
owner = nbdd-test
[vlmcd]
portno_start = 3
portno_end = 3
blocker_port = 1
mapper_port = 2
[nbdd]
type = nbdd
`, runDir, runDir, h.segName, h.segDir, h.dataDir)
	if err := os.WriteFile(h.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	h.run("archipelago", "start")
	t.Cleanup(func() {
		if out, err := exec.Command(filepath.Join(bins, "archipelago"), "--config", h.conf, "stop").CombinedOutput(); err != nil {
			t.Errorf("archipelago stop: %v\n%s", err, out)
		}
	})
	return h
}

// run runs one of the host's binaries with the host's config.
func (h *host) run(bin string, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(filepath.Join(bins, bin), append([]string{"--config", h.conf}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// uri maps a volume with vlmc map (again, if it is mapped) and returns
// the NBD URI it prints on its first line.
func (h *host) uri(vol string) string {
	h.t.Helper()
	out := h.run("vlmc", "map", vol)
	first, _, _ := strings.Cut(out, "\n")
	if want := fmt.Sprintf("nbd+unix:///%s?socket=%s", vol, h.socket); first != want {
		h.t.Fatalf("vlmc map %s: first line %q, want %q", vol, first, want)
	}
	return first
}

// tool runs an NBD client, skipping the test if it is not installed.
func tool(t *testing.T, pkg, name string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	var out bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// mustTool is tool failing the test on a non-zero exit.
func mustTool(t *testing.T, pkg, name string, args ...string) string {
	t.Helper()
	out, err := tool(t, pkg, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// qemuIO runs qemu-io commands on a volume; a pattern mismatch fails.
// A uri starting with "-r " opens the volume read-only.
func qemuIO(t *testing.T, uri string, cmds ...string) string {
	t.Helper()
	args := []string{"-f", "raw"}
	if ro, ok := strings.CutPrefix(uri, "-r "); ok {
		args, uri = append(args, "-r"), ro
	}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := mustTool(t, "qemu-utils", "qemu-io", append(args, uri)...)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "failed:") {
		t.Fatalf("qemu-io %q:\n%s", cmds, out)
	}
	return out
}
