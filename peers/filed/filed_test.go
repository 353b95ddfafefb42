package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// The tests run this test binary again as filed itself (FILED_TEST_MAIN),
// so that signals and crashes hit a real filed process.
func TestMain(m *testing.M) {
	if os.Getenv("FILED_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command returns a filed command with args.
func command(args ...string) (*exec.Cmd, *peertest.SyncBuffer) {
	return peertest.Command([]string{"FILED_TEST_MAIN=1"}, args...)
}

// startFiled starts filed on port 1 of the test segment and waits for its
// READY=1.
func startFiled(t *testing.T, segDir, dataDir string, extra ...string) *peertest.Process {
	t.Helper()
	args := append([]string{"--segment", "test", "--segment-dir", segDir, "--port", "1", "--data-dir", dataDir}, extra...)
	return peertest.Start(t, "filed", []string{"FILED_TEST_MAIN=1"}, args...)
}

func newDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// block k of the crash test: a distinct object and offset, distinct data.
const blockSize = 4096

func blockAddr(k int) (string, uint64) {
	return fmt.Sprintf("obj%04d", k/256), uint64(k%256) * blockSize
}

func blockData(k int) []byte {
	b := make([]byte, blockSize)
	for i := 0; i < blockSize; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(k)<<32|uint64(i)^0x5a5a5a5a)
	}
	return b
}

// TestKillKeepsAcknowledgedWrites kills filed with SIGKILL while a client
// keeps 16 writes in flight, restarts it on the same port and data
// directory, and reads back every write whose reply said served.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	seg, segDir := peertest.Segment(t)
	dataDir := newDataDir(t)
	f := startFiled(t, segDir, dataDir)
	c := peertest.NewClient(t, seg, 1)

	const iodepth = 16
	sent := map[uint32]int{} // request slot -> block
	var acked, died []int
	next, inflight := 0, 0
	submit := func() error {
		name, off := blockAddr(next)
		r, err := c.Submit(peertest.Req{Op: xseg.OpWrite, Target: name, Offset: off, Size: blockSize, Data: blockData(next)})
		if err != nil {
			return err
		}
		sent[r.Index()] = next
		next++
		inflight++
		return nil
	}
	for range iodepth {
		if err := submit(); err != nil {
			t.Fatal(err)
		}
	}
	killed, submitting := false, true
	deadline := time.Now().Add(30 * time.Second)
	for inflight > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d replies missing", inflight)
		}
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		k := sent[r.Index()]
		c.Port.Put(r)
		inflight--
		switch {
		case rep.Err == nil:
			acked = append(acked, k)
		case errors.Is(rep.Err, xseg.ErrPeerDied):
			died = append(died, k)
			submitting = false
		default:
			t.Fatalf("write %d: %v", k, rep.Err)
		}
		if !killed && len(acked) == 3000 {
			if err := f.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		if submitting {
			if err := submit(); err != nil {
				submitting = false // the port is being recovered
			}
		}
	}
	f.Wait(t)
	t.Logf("%d writes acknowledged, %d failed back by the crash, %d sent", len(acked), len(died), next)

	startFiled(t, segDir, dataDir)
	read := func(k int) peertest.Reply {
		name, off := blockAddr(k)
		rep := c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: name, Offset: off, Size: blockSize})
		if rep.Err != nil {
			t.Fatalf("read block %d: %v", k, rep.Err)
		}
		return rep
	}
	for _, k := range acked {
		if rep := read(k); !bytes.Equal(rep.Data, blockData(k)) {
			t.Fatalf("acknowledged write %d lost after the crash", k)
		}
	}
	// Writes the crash cut short were done whole or not at all.
	zero := make([]byte, blockSize)
	for _, k := range died {
		if rep := read(k); !bytes.Equal(rep.Data, blockData(k)) && !bytes.Equal(rep.Data, zero) {
			t.Errorf("write %d cut by the crash left torn data", k)
		}
	}
}

// TestTermDrains sends SIGTERM to a filed serving two requests at a time
// while both are blocking ACQUIREs of a lock held elsewhere and writes
// are queued behind them: the ACQUIREs are answered (ECANCELED, the
// stop cut their wait), the writes served before come back served and
// are on disk, the queued ones fail back as not executed and are not on
// disk; filed exits 0, removes its pid file, and the port is free.
func TestTermDrains(t *testing.T) {
	seg, segDir := peertest.Segment(t)
	dataDir := newDataDir(t)
	store, err := file.Open(dataDir, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	if err := store.Lock(ctx, "vol", "another-host", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "filed.pid")
	f := startFiled(t, segDir, dataDir, "--inflight", "2", "--pid-file", pidFile)
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("pid file: %v", err)
	}
	c := peertest.NewClient(t, seg, 1)
	const writes, size = 8, 1 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i % 251)
	}
	sent := map[uint32]string{}
	submit := func(label string, req peertest.Req) {
		r, err := c.Submit(req)
		if err != nil {
			t.Fatal(err)
		}
		sent[r.Index()] = label
	}
	for i := range writes {
		name := fmt.Sprintf("before%d", i)
		submit(name, peertest.Req{Op: xseg.OpWrite, Target: name, Size: size, Data: data})
	}
	submit("acquire1", peertest.Req{Op: xseg.OpAcquire, Target: "vol"})
	submit("acquire2", peertest.Req{Op: xseg.OpAcquire, Target: "vol"})
	for i := range writes {
		name := fmt.Sprintf("after%d", i)
		submit(name, peertest.Req{Op: xseg.OpWrite, Target: name, Size: size, Data: data})
	}
	replies := map[string]error{}
	collect := func() {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatalf("a request was not answered: %v", err)
		}
		replies[sent[r.Index()]] = rep.Err
		c.Port.Put(r)
	}
	for range writes {
		collect()
	}
	time.Sleep(100 * time.Millisecond) // both workers now wait for the lock
	if err := f.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range writes + 2 {
		collect()
	}
	if err := f.Wait(t); err != nil {
		t.Fatalf("filed exit after SIGTERM: %v", err)
	}
	for i := range writes {
		name := fmt.Sprintf("before%d", i)
		got := make([]byte, size)
		if err := replies[name]; err != nil {
			t.Errorf("%s: %v, want served", name, err)
		} else if err := store.Read(ctx, name, got, 0); err != nil || !bytes.Equal(got, data) {
			t.Errorf("served write %s not on disk: %v", name, err)
		}
		name = fmt.Sprintf("after%d", i)
		if err := replies[name]; !errors.Is(err, xseg.ErrPeerDied) {
			t.Errorf("%s queued at the stop: %v, want ErrPeerDied", name, err)
		}
		if _, err := store.Size(ctx, name); !errors.Is(err, drivers.ErrNotFound) {
			t.Errorf("write %s failed back as not executed, but it was (%v)", name, err)
		}
	}
	for _, name := range []string{"acquire1", "acquire2"} {
		if err := replies[name]; !errors.Is(err, syscall.ECANCELED) {
			t.Errorf("blocking ACQUIRE at the stop: %v, want ECANCELED", err)
		}
	}
	if !strings.Contains(f.Stderr.String(), "drained") {
		t.Errorf("no drain in the log:\n%s", f.Stderr)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left: %v", err)
	}
	p, err := seg.Bind(1)
	if err != nil {
		t.Fatalf("port not free after exit: %v", err)
	}
	p.Release()
}

// TestBadInputKeepsFiledUp sends what a hostile or buggy client might.
func TestBadInputKeepsFiledUp(t *testing.T) {
	seg, segDir := peertest.Segment(t)
	dataDir := newDataDir(t)
	startFiled(t, segDir, dataDir)
	c := peertest.NewClient(t, seg, 1)
	data := make([]byte, 4096)
	for _, name := range []string{"../x", "", "../../etc/passwd", "a/b"} {
		for _, op := range []xseg.Op{xseg.OpRead, xseg.OpWrite} {
			rep := c.MustDo(t, peertest.Req{Op: op, Target: name, Size: 4096, Data: data})
			if !errors.Is(rep.Err, syscall.EINVAL) {
				t.Errorf("%s %q: %v, want EINVAL", op, name, rep.Err)
			}
		}
	}
	if _, err := c.Submit(peertest.Req{Op: xseg.OpWrite, Target: strings.Repeat("x", 257), Size: 8}); !errors.Is(err, xseg.ErrTargetTooLong) {
		t.Errorf("257-byte target: %v, want ErrTargetTooLong from the client side", err)
	}
	payload := make([]byte, protocol.NameLen)
	protocol.EncodeName(payload, "src")
	binary.LittleEndian.PutUint32(payload[protocol.NameFieldLen:], 1000)
	if rep := c.MustDo(t, peertest.Req{Op: xseg.OpCopy, Target: "dst", Size: 4096, Data: payload}); !errors.Is(rep.Err, syscall.EINVAL) {
		t.Errorf("copy with targetlen 1000: %v, want EINVAL", rep.Err)
	}
	if rep := c.MustDo(t, peertest.Req{Op: xseg.OpInfo, Target: "missing", DataLen: 8}); !errors.Is(rep.Err, syscall.ENOENT) {
		t.Errorf("info of a missing object: %v, want ENOENT", rep.Err)
	}
	if rep := c.MustDo(t, peertest.Req{Op: xseg.OpPing}); rep.Err != nil {
		t.Fatalf("filed down after bad input: %v", rep.Err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dataDir))
	if len(entries) != 1 {
		t.Errorf("files appeared beside the data directory: %v", entries)
	}
}

// TestSecondFiledOnPortRefused: a port a live filed serves is refused
// with exit 1 and one line that says what to do.
func TestSecondFiledOnPortRefused(t *testing.T) {
	_, segDir := peertest.Segment(t)
	dataDir := newDataDir(t)
	startFiled(t, segDir, dataDir)
	cmd, stderr := command("--segment", "test", "--segment-dir", segDir, "--port", "1", "--data-dir", dataDir)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second filed: %v, want exit status 1\n%s", err, stderr)
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "port bound by a live process") || !strings.Contains(msg, "--port") {
		t.Errorf("message: %q", msg)
	}

	cmd, stderr = command("--segment", "nosuch", "--segment-dir", segDir, "--port", "1", "--data-dir", dataDir)
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "xseg create nosuch") {
		t.Errorf("missing segment: %v %q", err, stderr)
	}
	cmd, stderr = command("--segment", "test", "--segment-dir", segDir)
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "--port") {
		t.Errorf("no --port: %v %q", err, stderr)
	}
}
