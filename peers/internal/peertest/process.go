package peertest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers"
)

// SyncBuffer collects a process's output; safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Process is a peer process started by a test.
type Process struct {
	Name   string
	Cmd    *exec.Cmd
	Stderr *SyncBuffer
	Done   chan struct{} // closed when the process has exited
	Err    error         // of Wait, once Done is closed
}

// Command returns this test binary as a command with env added and
// stderr collected: a test's TestMain runs the peer's main when it sees
// its variable in env.
func Command(env []string, args ...string) (*exec.Cmd, *SyncBuffer) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	return cmd, stderr
}

// Start runs Command(env, args...) and waits for the peer's READY=1 on a
// notification socket, as systemd would. The process is killed when the
// test ends, and its stderr logged if the test failed.
func Start(t testing.TB, name string, env []string, args ...string) *Process {
	t.Helper()
	cmd, _ := Command(env, args...)
	return StartCmd(t, name, cmd)
}

// StartCmd is Start for any command, such as a built peer binary.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	sockPath := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sockPath)
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Name: name, Cmd: cmd, Stderr: stderr, Done: make(chan struct{})}
	go func() { p.Err = cmd.Wait(); close(p.Done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.Done
		if t.Failed() {
			t.Logf("%s (pid %d) stderr:\n%s", name, cmd.Process.Pid, stderr)
		}
	})
	ready := peers.WatchReady(sock)
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-p.Done:
		t.Fatalf("%s exited before READY=1: %v\n%s", name, p.Err, stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("no READY=1 from %s\n%s", name, stderr)
	}
	return p
}

// Wait waits up to 10 s for the process to exit and returns Wait's error.
func (p *Process) Wait(t testing.TB) error {
	t.Helper()
	select {
	case <-p.Done:
		return p.Err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit\n%s", p.Name, p.Stderr)
		return nil
	}
}

// Kill kills the process with SIGKILL and waits for it.
func (p *Process) Kill() {
	p.Cmd.Process.Kill()
	<-p.Done
}
