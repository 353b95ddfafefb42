//go:build ceph

package rados

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The tests run against a throw-away cluster that TestMain starts with
// tools/ceph-test-cluster (one mon, one memstore OSD, about 1 s), or against
// the cluster of $ARCHIPELAGO_CEPH_CONF when set (pools archipelago and
// archipelago-maps must exist there). Each Store a test opens gets a fresh
// namespace, so tests never see each other's objects.

const (
	testPool    = "archipelago"
	testTimeout = 10 * time.Second
)

var (
	// testConf is the ceph.conf of the test cluster; empty when skipping.
	testConf string
	// skipReason says why there is no cluster.
	skipReason string
	nsCounter  atomic.Int64
)

// clusterScript is tools/ceph-test-cluster, found from this package's
// directory (go test runs in it).
func clusterScript() string {
	return filepath.Join("..", "..", "tools", "ceph-test-cluster")
}

// startCluster starts a cluster under dir and returns its ceph.conf.
func startCluster(dir string) (conf string, err error) {
	cmd := exec.Command(clusterScript(), "start", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s start %s: %w: %s", clusterScript(), dir, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// stopCluster kills the cluster under dir and removes dir.
func stopCluster(dir string) error {
	out, err := exec.Command(clusterScript(), "stop", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s stop %s: %w: %s", clusterScript(), dir, err, out)
	}
	return nil
}

// clusterMissing says why this host cannot run a test cluster, or "".
func clusterMissing() string {
	if os.Geteuid() != 0 {
		return "not root: the Ceph daemons of tools/ceph-test-cluster need root"
	}
	for _, tool := range []string{"ceph-mon", "ceph-osd", "rados"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not on PATH: apt-get install -y --no-install-recommends ceph-mon ceph-osd librados-dev libradospp-dev"
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if conf := os.Getenv("ARCHIPELAGO_CEPH_CONF"); conf != "" {
		testConf = conf
		return m.Run()
	}
	if skipReason = clusterMissing(); skipReason != "" {
		fmt.Fprintf(os.Stderr, "drivers/rados: skipping cluster tests: %s\n", skipReason)
		return m.Run() // every test skips, so go test shows why
	}
	parent, err := os.MkdirTemp("", "rados-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(parent)
	dir := filepath.Join(parent, "cluster")
	// Deferred, so a panic in TestMain still stops the daemons.
	defer func() {
		if err := stopCluster(dir); err != nil {
			fmt.Fprintln(os.Stderr, "drivers/rados:", err)
		}
	}()
	start := time.Now()
	testConf, err = startCluster(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drivers/rados:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "drivers/rados: test cluster up in %v: %s\n", time.Since(start).Round(time.Millisecond), testConf)
	}
	return m.Run()
}

// needCluster skips the test when there is no cluster.
func needCluster(tb testing.TB) {
	tb.Helper()
	if testConf == "" {
		tb.Skip("no Ceph test cluster: " + skipReason)
	}
}

var nsUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// freshNamespace returns a namespace no other Store of this run uses.
func freshNamespace(tb testing.TB) string {
	return fmt.Sprintf("%s-%d-%d", nsUnsafe.ReplaceAllString(tb.Name(), "_"), os.Getpid(), nsCounter.Add(1))
}

// openStore opens a Store on the test cluster in a fresh namespace, closed
// when the test ends.
func openStore(tb testing.TB, owner string) *Store {
	tb.Helper()
	needCluster(tb)
	return openConfig(tb, Config{
		ConfFile:  testConf,
		Pool:      testPool,
		Namespace: freshNamespace(tb),
		Owner:     owner,
		Timeout:   testTimeout,
	})
}

// openPeer opens a second Store, on its own connection, over the same pool
// and namespace as first, for another host.
func openPeer(tb testing.TB, first *Store, owner string) *Store {
	tb.Helper()
	cfg := first.Config()
	cfg.Owner = owner
	return openConfig(tb, cfg)
}

func openConfig(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}
