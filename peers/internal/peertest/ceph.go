package peertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The Ceph test cluster is tools/ceph-test-cluster's: one mon and one
// memstore OSD on loopback, pools "archipelago" and "archipelago-maps",
// started in about a second and removed with its directory. drivers/rados
// starts it the same way in its TestMain.

// CephPool is the test cluster's pool for data objects (and maps, when a
// test puts both in one pool).
const CephPool = "archipelago"

// CephConfEnv names the variable that points the tests at an existing
// cluster's ceph.conf instead of a throw-away one (the pools of CephPool's
// names must exist there).
const CephConfEnv = "ARCHIPELAGO_CEPH_CONF"

// RepoRoot returns the directory of the repository's go.mod, found from
// the working directory (go test runs in the package's folder).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CephMissing says why this machine cannot run a test cluster, or "".
func CephMissing() string {
	if os.Geteuid() != 0 {
		return "not root: the Ceph daemons of tools/ceph-test-cluster need root"
	}
	for _, tool := range []string{"ceph-mon", "ceph-osd", "rados"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not on PATH: apt-get install -y --no-install-recommends ceph-mon ceph-osd librados-dev libradospp-dev (or tools/install-deps.sh)"
		}
	}
	return ""
}

// RadosMissing says why radosd cannot be built here, or "".
func RadosMissing() string {
	if _, err := os.Stat("/usr/include/rados/librados.hpp"); err != nil {
		return "librados-dev and libradospp-dev are not installed: radosd cannot be built (tools/install-deps.sh as root installs them)"
	}
	return ""
}

func clusterScript() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "tools", "ceph-test-cluster"), nil
}

// StartCeph starts a throw-away cluster under dir (created, or empty) and
// returns the path of its ceph.conf. StopCeph(dir) removes it; call it
// even when StartCeph failed, as daemons may be left.
func StartCeph(dir string) (conf string, err error) {
	script, err := clusterScript()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(script, "start", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s start %s: %w: %s", script, dir, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// StopCeph kills the cluster under dir and removes dir.
func StopCeph(dir string) error {
	script, err := clusterScript()
	if err != nil {
		return err
	}
	out, err := exec.Command(script, "stop", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s stop %s: %w: %s", script, dir, err, out)
	}
	return nil
}
