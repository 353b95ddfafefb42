package peers_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/xseg"
)

// notifySocket listens where a Notifier sends and returns what arrives.
type notifySocket struct {
	conn *net.UnixConn
}

func listenNotify(t *testing.T, addr string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn}
}

// next returns the next message, failing the test after 5 s.
func (n *notifySocket) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	n.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:k])
}

// await reads messages until one holds line, and returns those before it.
func (n *notifySocket) await(t *testing.T, line string) []string {
	t.Helper()
	var before []string
	for {
		msg := n.next(t)
		for _, l := range strings.Split(msg, "\n") {
			if l == line {
				return before
			}
		}
		before = append(before, msg)
	}
}

func TestNotifierPathAndAbstract(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@archipelago-test-%d", os.Getpid()),
	} {
		sock := listenNotify(t, addr)
		n := peers.NewNotifierAt(addr)
		if err := n.Notify("READY=1\nSTATUS=testing"); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if got := sock.next(t); got != "READY=1\nSTATUS=testing" {
			t.Errorf("%s: got %q", addr, got)
		}
		n.Close()
	}
	var none peers.Notifier
	if none.Enabled() || none.Notify("READY=1") != nil {
		t.Error("a Notifier without socket should do nothing")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "")
	if got := peers.WatchdogInterval(); got != 1500*time.Millisecond {
		t.Errorf("interval %v, want 1.5s", got)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if got := peers.WatchdogInterval(); got != 0 {
		t.Errorf("watchdog for another pid: interval %v, want 0", got)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if got := peers.WatchdogInterval(); got != 0 {
		t.Errorf("no watchdog: interval %v, want 0", got)
	}
}

func testConfig(t *testing.T, dir string) peers.Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := peers.Config{Name: "testpeer"}
	cfg.Define(fs)
	if err := fs.Parse([]string{"--segment", "test", "--segment-dir", dir, "--port", "2", "--log-file", filepath.Join(t.TempDir(), "peer.log"), "--pid-file", filepath.Join(t.TempDir(), "peer.pid")}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPeerLifecycle runs a peer as systemd would: READY=1 once it serves,
// WATCHDOG=1 while it runs, STOPPING=1 on SIGTERM, a drain, and the pid
// file and port gone after Close. SIGUSR1/SIGUSR2 and SIGHUP are sent to
// the test process itself, which the peer has taken them over from.
func TestPeerLifecycle(t *testing.T) {
	s, dir := peertest.Segment(t)
	sockPath := filepath.Join(t.TempDir(), "notify")
	sock := listenNotify(t, sockPath)
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")
	cfg := testConfig(t, dir)

	p, err := peers.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := os.ReadFile(cfg.PIDFile)
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file: %q, %v", pid, err)
	}
	served := make(chan error, 1)
	go func() {
		served <- p.Serve(peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error { return nil }))
	}()
	sock.await(t, "READY=1")
	c := peertest.NewClient(t, s, 2)
	if rep := c.MustDo(t, peertest.Req{Op: xseg.OpPing}); rep.Err != nil {
		t.Fatalf("ping: %v", rep.Err)
	}
	sock.await(t, "WATCHDOG=1")
	sock.await(t, "WATCHDOG=1")

	// The peer owns these signals now; each has its effect.
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "debug level", func() bool { return p.Log().Logger.GetLevel() == logrus.DebugLevel })
	// One at a time: the kernel merges a signal sent while one is pending.
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	waitFor(t, "info level", func() bool { return p.Log().Logger.GetLevel() == logrus.InfoLevel })
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	waitFor(t, "warning level", func() bool { return p.Log().Logger.GetLevel() == logrus.WarnLevel })
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	waitFor(t, "info level", func() bool { return p.Log().Logger.GetLevel() == logrus.InfoLevel })

	rotated := cfg.LogFile + ".1"
	if err := os.Rename(cfg.LogFile, rotated); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "log file reopened", func() bool { _, err := os.Stat(cfg.LogFile); return err == nil })

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	sock.await(t, "STOPPING=1")
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after SIGTERM")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after Close: %v", err)
	}
	port, err := s.Bind(2)
	if err != nil {
		t.Fatalf("port not free after Close: %v", err)
	}
	port.Release()

	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(cfg.LogFile)
	for _, want := range []string{"msg=bound", `msg="log level now debug"`, "peer=testpeer"} {
		if !strings.Contains(string(old), want) {
			t.Errorf("rotated log lacks %s:\n%s", want, old)
		}
	}
	for _, want := range []string{`msg="log file reopened"`, "msg=draining", "reason=SIGTERM", "msg=stopped"} {
		if !strings.Contains(string(cur), want) {
			t.Errorf("reopened log lacks %s:\n%s", want, cur)
		}
	}
}

func TestPortOwnedByLiveProcessIsRefused(t *testing.T) {
	s, dir := peertest.Segment(t)
	busy, err := s.Bind(2)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Release()
	cfg := testConfig(t, dir)
	_, err = peers.Start(cfg)
	if !errors.Is(err, xseg.ErrPortBusy) {
		t.Fatalf("Start on a bound port: %v, want ErrPortBusy", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "--port") {
		t.Errorf("message should be one line and say what to do: %q", msg)
	}
	if _, err := os.Stat(cfg.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file written by a peer that did not start: %v", err)
	}
}

func TestMissingSegmentSaysHowToCreateIt(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	_, err := peers.Start(cfg)
	if err == nil || !strings.Contains(err.Error(), "xseg create test") {
		t.Fatalf("Start without a segment: %v", err)
	}
}

func TestFlags(t *testing.T) {
	var r peers.PortRange
	if err := r.Set("3-5"); err != nil || r.String() != "3-5" || len(r) != 3 || r[2] != 5 {
		t.Errorf("3-5: %v %v", r, err)
	}
	if err := r.Set("7"); err != nil || r.String() != "7" || len(r) != 1 {
		t.Errorf("7: %v %v", r, err)
	}
	for _, bad := range []string{"", "x", "5-3", "-1", "1-"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("port %q accepted", bad)
		}
	}
	var l peers.LevelFlag
	if err := l.Set("debug"); err != nil || l.String() != "debug" {
		t.Errorf("debug: %v %v", l, err)
	}
	if err := l.Set("panic"); err == nil {
		t.Error("level panic accepted")
	}
	var cfg peers.Config
	cfg.Define(flag.NewFlagSet("x", flag.ContinueOnError))
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "--port") {
		t.Errorf("Check without --port: %v", err)
	}
}

// TestRunLoop runs a peer with its own event loop: it gets the bound
// ports, READY=1 goes out, SIGTERM ends its context, RunLoop returns nil.
func TestRunLoop(t *testing.T) {
	_, dir := peertest.Segment(t)
	sockPath := filepath.Join(t.TempDir(), "notify")
	sock := listenNotify(t, sockPath)
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "")
	cfg := testConfig(t, dir)
	var got []int
	done := make(chan error, 1)
	go func() {
		done <- peers.RunLoop(cfg, func(p *peers.Peer) (peers.Loop, error) {
			return func(ctx context.Context, ports []*xseg.Port) {
				for _, port := range ports {
					got = append(got, port.Number())
				}
				<-ctx.Done()
			}, nil
		})
	}()
	sock.await(t, "READY=1")
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunLoop did not return after SIGTERM")
	}
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("loop got ports %v, want [2]", got)
	}
}
