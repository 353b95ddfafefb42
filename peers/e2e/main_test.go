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
	filedPort  = 1
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
	os.RemoveAll(dir)
	os.Exit(code)
}

// startProc runs the peer binary kind with args and waits for READY=1.
func startProc(t *testing.T, kind string, args ...string) *peertest.Process {
	t.Helper()
	return peertest.StartCmd(t, kind, exec.Command(filepath.Join(bins, kind), args...))
}

// stack is one host: a segment in a temporary directory, filed on port 1
// over a data directory, mapperd on port 2, vlmcd on port 3, and a client.
type stack struct {
	t       *testing.T
	segDir  string
	dataDir string
	seg     *xseg.Segment
	filed   *peertest.Process
	mapperd *peertest.Process
	vlmcd   *peertest.Process
	client  *client
}

const owner = "e2e-host"

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, segDir: t.TempDir(), dataDir: t.TempDir()}
	if err := xseg.Create("test", peertest.Geometry, xseg.Options{Dir: s.segDir}); err != nil {
		t.Fatal(err)
	}
	seg, err := xseg.Join("test", xseg.Options{Dir: s.segDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Leave() })
	s.seg = seg
	s.filed = startProc(t, "filed", s.args(filedPort, "--data-dir", s.dataDir, "--owner", owner)...)
	s.mapperd = startProc(t, "mapperd", s.args(mapperPort, "--data-port", strconv.Itoa(filedPort), "--owner", owner)...)
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

func (s *stack) startVlmcd() {
	s.vlmcd = startProc(s.t, "vlmcd", s.args(vlmcdPort, "--mapper-port", strconv.Itoa(mapperPort), "--blocker-port", strconv.Itoa(filedPort))...)
}
