//go:build ceph

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
)

// The RADOS tests run the stacks with radosd in place of filed, over a
// throw-away one-node cluster (tools/ceph-test-cluster) that the first of
// them starts and TestMain stops, or over the cluster of
// $ARCHIPELAGO_CEPH_CONF. Each test works in a namespace of its own.
// They skip, saying why, without root, the Ceph daemons or librados-dev.

var ceph struct {
	once sync.Once
	conf string // the cluster's ceph.conf
	skip string // why there is no cluster, or ""
	err  error  // a cluster or radosd that should have worked and did not
}

// needCeph builds radosd and starts the cluster, once, and returns the
// cluster's ceph.conf; it skips the test when this machine cannot.
func needCeph(t *testing.T) string {
	t.Helper()
	ceph.once.Do(setUpCeph)
	if ceph.skip != "" {
		t.Skip("no Ceph test cluster: " + ceph.skip)
	}
	if ceph.err != nil {
		t.Fatal(ceph.err)
	}
	return ceph.conf
}

func setUpCeph() {
	if ceph.skip = peertest.RadosMissing(); ceph.skip != "" {
		return
	}
	// radosd as `make build` builds it, with the build tags of cgo RADOS.
	out, err := exec.Command("go", "build", "-tags", "ceph pacific", "-o", filepath.Join(bins, "radosd"), "../radosd").CombinedOutput()
	if err != nil {
		ceph.err = fmt.Errorf("build radosd: %v\n%s", err, out)
		return
	}
	if conf := os.Getenv(peertest.CephConfEnv); conf != "" {
		ceph.conf = conf
		return
	}
	if ceph.skip = peertest.CephMissing(); ceph.skip != "" {
		return
	}
	parent, err := os.MkdirTemp("", "e2e-ceph-")
	if err != nil {
		ceph.err = err
		return
	}
	dir := filepath.Join(parent, "cluster")
	atExit = append(atExit, func() {
		if err := peertest.StopCeph(dir); err != nil {
			fmt.Fprintln(os.Stderr, "peers/e2e:", err)
		}
		os.RemoveAll(parent)
	})
	start := time.Now()
	ceph.conf, ceph.err = peertest.StartCeph(dir)
	if ceph.err == nil && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "peers/e2e: Ceph test cluster up in %v: %s\n", time.Since(start).Round(time.Millisecond), ceph.conf)
	}
}

var (
	nsUnsafe  = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
	nsCounter atomic.Int64
)

// freshNamespace is a RADOS namespace no other test of any run uses.
func freshNamespace(t *testing.T) string {
	return fmt.Sprintf("e2e-%s-%d-%d", nsUnsafe.ReplaceAllString(t.Name(), "_"), os.Getpid(), nsCounter.Add(1))
}

// radosdOver is radosd over the test pool's namespace ns, locking as owner.
func radosdOver(conf, ns, owner string) blocker {
	return blocker{kind: "radosd", args: []string{"--conf", conf, "--pool", peertest.CephPool, "--namespace", ns, "--owner", owner}}
}

// TestRadosVolumes runs the volume scenarios of TestVolumes with radosd as
// the data and map blocker.
func TestRadosVolumes(t *testing.T) {
	conf := needCeph(t)
	ns := freshNamespace(t)
	volumeScenarios(t, newStackWith(t, stackConfig{data: radosdOver(conf, ns, owner)}))
}

// TestRadosTwoHosts runs the lock scenario of TestTwoHosts on two hosts
// whose radosd serve one pool and namespace.
func TestRadosTwoHosts(t *testing.T) {
	conf := needCeph(t)
	ns := freshNamespace(t)
	twoHosts(t, func(owner string) stackConfig {
		return stackConfig{owner: owner, data: radosdOver(conf, ns, owner)}
	})
}

// TestRadosBadInput runs the bad-input cases of TestBadInput on radosd.
func TestRadosBadInput(t *testing.T) {
	conf := needCeph(t)
	badInput(t, newStackWith(t, stackConfig{data: radosdOver(conf, freshNamespace(t), owner)}))
}

// TestRadosList runs the listing scenarios of TestList on radosd: maps and
// data in one namespace, then maps in a namespace of their own.
func TestRadosList(t *testing.T) {
	conf := needCeph(t)
	t.Run("OneNamespace", func(t *testing.T) {
		listScenarios(t, newStackWith(t, stackConfig{data: radosdOver(conf, freshNamespace(t), owner)}))
	})
	t.Run("MapNamespace", func(t *testing.T) {
		listScenarios(t, newStackWith(t, stackConfig{
			data: radosdOver(conf, freshNamespace(t), owner),
			maps: radosdOver(conf, freshNamespace(t), owner),
		}))
	})
}
