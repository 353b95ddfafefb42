package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/xseg"
)

// The ports of the stack, as the brief of these tests lays it out.
const (
	filedPort  = 1 // the data blocker: filed, or radosd
	mapperPort = 2
	vlmcdPort  = 3
)

// bins holds the peer binaries, built from the repository by TestMain, so
// the tests run exactly what bin/ holds, as separate processes that SIGKILL
// hits for real.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	for _, peer := range []string{"filed", "mapperd", "vlmcd"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, peer), "../"+peer).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", peer, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, f := range atExit {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// atExit runs after the tests, before TestMain exits: what a test started
// lazily for the whole run (the Ceph test cluster) is stopped there.
var atExit []func()

// startProc runs the peer binary kind with args and waits for READY=1.
func startProc(t *testing.T, kind string, args ...string) *peertest.Process {
	t.Helper()
	return peertest.StartCmd(t, kind, exec.Command(filepath.Join(bins, kind), args...))
}

// blocker says which blocker a stack runs and with what arguments (besides
// the segment and port): filed over a data directory, or radosd over a
// pool (rados_test.go).
type blocker struct {
	kind string // "filed" or "radosd"
	args []string
}

// filedOver is filed over dataDir, locking as owner.
func filedOver(dataDir, owner string) blocker {
	return blocker{kind: "filed", args: []string{"--data-dir", dataDir, "--owner", owner}}
}

// stackConfig is what a stack runs. The zero value is filed over a new
// data directory, maps and data in one, as "e2e-host".
type stackConfig struct {
	owner string  // lock owner of the host's blockers and mapperd
	data  blocker // the data blocker, on filedPort
	// maps, if kind is set, is a blocker of its own for maps and volume
	// locks, on mapBlockerPort (mapperd's --map-port).
	maps blocker
	// dataDir is the data blocker's directory when it is filed (for the
	// tests that look into it).
	dataDir string
	// inlineIO runs vlmcd with --data-dir: it does the object I/O in
	// filed's directory itself, as archipelago runs it.
	inlineIO bool
}

// stack is one host: a segment in a temporary directory, a data blocker on
// port 1 (filed over a data directory, or radosd), mapperd on port 2,
// vlmcd on port 3, and a client.
type stack struct {
	t       *testing.T
	cfg     stackConfig
	segDir  string
	dataDir string // filed's data directory; "" for radosd
	seg     *xseg.Segment
	blocker *peertest.Process
	mapBlk  *peertest.Process // nil unless cfg.maps is set
	mapperd *peertest.Process
	vlmcd   *peertest.Process
	client  *client
}

const owner = "e2e-host"

// mapBlockerPort is the port of a map blocker of its own, when a stack has
// one.
const mapBlockerPort = 4

// newStack starts a host of filed, mapperd and vlmcd over a new data
// directory.
func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackWith(t, stackConfig{})
}

func newStackWith(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	if cfg.owner == "" {
		cfg.owner = owner
	}
	if cfg.data.kind == "" {
		if cfg.dataDir == "" {
			cfg.dataDir = t.TempDir()
		}
		cfg.data = filedOver(cfg.dataDir, cfg.owner)
	}
	s := &stack{t: t, cfg: cfg, segDir: t.TempDir(), dataDir: cfg.dataDir}
	if err := xseg.Create("test", peertest.Geometry, xseg.Options{Dir: s.segDir}); err != nil {
		t.Fatal(err)
	}
	seg, err := xseg.Join("test", xseg.Options{Dir: s.segDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Leave() })
	s.seg = seg
	s.startBlockers()
	s.startMapperd()
	s.startVlmcd()
	c, err := peers.NewClient(seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s.client = &client{c: c, dst: vlmcdPort}
	return s
}

func (s *stack) args(port int, extra ...string) []string {
	return append([]string{"--segment", "test", "--segment-dir", s.segDir, "--port", strconv.Itoa(port)}, extra...)
}

// startBlockers starts the data blocker, and the map blocker if the stack
// has one.
func (s *stack) startBlockers() {
	s.blocker = startProc(s.t, s.cfg.data.kind, s.args(filedPort, s.cfg.data.args...)...)
	if s.cfg.maps.kind != "" {
		s.mapBlk = startProc(s.t, s.cfg.maps.kind, s.args(mapBlockerPort, s.cfg.maps.args...)...)
	}
}

func (s *stack) startMapperd() {
	args := []string{"--data-port", strconv.Itoa(filedPort), "--owner", s.cfg.owner}
	if s.cfg.maps.kind != "" {
		args = append(args, "--map-port", strconv.Itoa(mapBlockerPort))
	}
	s.mapperd = startProc(s.t, "mapperd", s.args(mapperPort, args...)...)
}

func (s *stack) startVlmcd() {
	args := []string{"--mapper-port", strconv.Itoa(mapperPort), "--blocker-port", strconv.Itoa(filedPort)}
	if s.cfg.inlineIO {
		args = append(args, "--data-dir", s.dataDir)
	}
	s.vlmcd = startProc(s.t, "vlmcd", s.args(vlmcdPort, args...)...)
}

// killAll SIGKILLs every peer of the host, as a host that dies does.
func (s *stack) killAll() {
	for _, p := range []*peertest.Process{s.vlmcd, s.mapperd, s.mapBlk, s.blocker} {
		if p != nil {
			p.Kill()
		}
	}
}
