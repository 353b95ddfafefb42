//go:build ceph

package rados

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/archipelago-go/archipelago/drivers"
)

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func TestReadWriteSizeDelete(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()

	// A missing object reads as zeros; Size and Delete say ErrNotFound.
	buf := bytes.Repeat([]byte{0xff}, 100)
	if err := s.Read(ctx, "obj", buf, 0); err != nil {
		t.Fatalf("Read missing: %v", err)
	}
	if !bytes.Equal(buf, make([]byte, 100)) {
		t.Fatalf("Read missing: not zeros")
	}
	if _, err := s.Size(ctx, "obj"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Size missing: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "obj"); !errors.Is(err, drivers.ErrNotFound) || !errors.Is(err, syscall.ENOENT) && !errors.Is(err, rados.ErrNotFound) {
		t.Fatalf("Delete missing: %v, want ErrNotFound", err)
	}

	data := pattern(5000, 1)
	if err := s.Write(ctx, "obj", data, 100, drivers.WriteFUA); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if size, err := s.Size(ctx, "obj"); err != nil || size != 5100 {
		t.Fatalf("Size = %d, %v; want 5100", size, err)
	}
	got := bytes.Repeat([]byte{0xff}, 6000)
	if err := s.Read(ctx, "obj", got, 0); err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := append(append(make([]byte, 100), data...), make([]byte, 900)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Read: hole, data or zero tail wrong")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	// An empty write is a flush: it creates nothing.
	if err := s.Write(ctx, "empty", nil, 0, drivers.WriteFlush); err != nil {
		t.Fatalf("Write empty: %v", err)
	}
	if _, err := s.Size(ctx, "empty"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Size after an empty Write: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "obj"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Size(ctx, "obj"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Size after Delete: %v", err)
	}
	// Invalid names and ranges never reach the cluster.
	if err := s.Write(ctx, "a/b", data, 0, 0); !errors.Is(err, drivers.ErrInvalidName) {
		t.Fatalf("Write a/b: %v", err)
	}
	if err := s.Read(ctx, "x", buf, -1); !errors.Is(err, drivers.ErrInvalidRange) {
		t.Fatalf("Read at -1: %v", err)
	}
}

func TestNamespacesIsolate(t *testing.T) {
	a := openStore(t, "host-a")
	b := openStore(t, "host-a")
	ctx := context.Background()
	if err := a.Write(ctx, "same", []byte("a"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Size(ctx, "same"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("other namespace sees the object: %v", err)
	}
}

func TestLargeObject(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()
	data := pattern(maxIOBytes+12345, 3) // two librados calls each way
	if err := s.Write(ctx, "big", data, 0, 0); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, len(data)+100)
	if err := s.Read(ctx, "big", got, 0); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], make([]byte, 100)) {
		t.Fatalf("big object read back wrong")
	}
}

func TestCopy(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()
	src := pattern(4<<20, 9)
	if err := s.Write(ctx, "src", src, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, "dst", pattern(5<<20, 1), 0, 0); err != nil {
		t.Fatal(err)
	}
	check := func(name string, want []byte) {
		t.Helper()
		size, err := s.Size(ctx, name)
		if err != nil || size != int64(len(want)) {
			t.Fatalf("Size(%s) = %d, %v; want %d", name, size, err, len(want))
		}
		got := make([]byte, len(want))
		if err := s.Read(ctx, name, got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs", name)
		}
	}
	for _, tc := range []struct {
		name string
		size int64
		want []byte
	}{
		{"whole", int64(len(src)), src},
		{"shorter", 1000, src[:1000]},
		{"longer", int64(len(src)) + 4096, append(append([]byte{}, src...), make([]byte, 4096)...)},
		{"empty", 0, []byte{}},
	} {
		if err := s.Copy(ctx, "src", "dst", tc.size); err != nil {
			t.Fatalf("Copy %s: %v", tc.name, err)
		}
		check("dst", tc.want)
	}
	// A missing source fails and leaves the target alone.
	if err := s.Copy(ctx, "nosuch", "dst", 8192); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Copy missing: %v, want ErrNotFound", err)
	}
	check("dst", []byte{})
	// Onto itself only the length changes.
	if err := s.Copy(ctx, "src", "src", 100); err != nil {
		t.Fatalf("Copy onto itself: %v", err)
	}
	check("src", src[:100])
	// The fallback path gives the same result.
	if err := s.copyThrough("src", "dst2", 200); err != nil {
		t.Fatalf("copyThrough: %v", err)
	}
	check("dst2", append(append([]byte{}, src[:100]...), make([]byte, 100)...))
}

func TestLockAcrossHosts(t *testing.T) {
	a := openStore(t, "host-a")
	b := openPeer(t, a, "host-b")
	ctx := context.Background()

	if _, err := a.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("LockOwner free: %v", err)
	}
	if err := a.Unlock(ctx, "vol", "owner-a", false); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Unlock free: %v", err)
	}
	if err := a.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := a.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatalf("Lock again by the owner: %v", err)
	}
	if err := b.Lock(ctx, "vol", "owner-b", drivers.LockTry); !errors.Is(err, drivers.ErrLocked) {
		t.Fatalf("Lock by another host: %v, want ErrLocked", err)
	}
	if err := a.Lock(ctx, "vol", "owner-b", drivers.LockTry); !errors.Is(err, drivers.ErrLocked) {
		t.Fatalf("Lock by another owner on the same connection: %v, want ErrLocked", err)
	}
	if owner, err := b.LockOwner(ctx, "vol"); err != nil || owner != "owner-a" {
		t.Fatalf("LockOwner = %q, %v", owner, err)
	}
	if err := b.Unlock(ctx, "vol", "owner-b", false); !errors.Is(err, drivers.ErrNotOwner) {
		t.Fatalf("Unlock by non-owner: %v, want ErrNotOwner", err)
	}
	// The owner string is the identity: the same owner through another
	// connection (a restarted host) holds the lock and can release it.
	if err := b.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatalf("Lock by the same owner elsewhere: %v", err)
	}
	if err := b.Unlock(ctx, "vol", "owner-a", false); err != nil {
		t.Fatalf("Unlock by the same owner elsewhere: %v", err)
	}
	if _, err := a.LockOwner(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("LockOwner after Unlock: %v", err)
	}
	// Force breaks another host's lock.
	if err := a.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "vol", "owner-b", true); err != nil {
		t.Fatalf("force Unlock: %v", err)
	}
	if err := b.Lock(ctx, "vol", "owner-b", drivers.LockTry); err != nil {
		t.Fatalf("Lock after force Unlock: %v", err)
	}
	// The lock is independent of an object of the same name.
	if _, err := a.Size(ctx, "vol"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("a lock made object vol: %v", err)
	}
}

// TestLockOnDiskFormat checks the names the original Archipelago uses: lock
// RadosLock on object <name>_lock, cookie = owner, seen by the rados CLI.
func TestLockOnDiskFormat(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()
	if err := s.Lock(ctx, "vol1", "owner-a", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rados", "-c", testConf, "-p", testPool, "-N", s.Config().Namespace,
		"lock", "info", "vol1_lock", "RadosLock", "--format", "json").Output()
	if err != nil {
		t.Fatalf("rados lock info: %v", err)
	}
	var info struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Lockers []struct {
			Cookie      string `json:"cookie"`
			Description string `json:"description"`
		} `json:"lockers"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("rados lock info: %v: %s", err, out)
	}
	if info.Name != "RadosLock" || info.Type != "exclusive" || len(info.Lockers) != 1 ||
		info.Lockers[0].Cookie != "owner-a" || info.Lockers[0].Description != "host-a" {
		t.Fatalf("rados lock info = %s", out)
	}
}

func TestLockWait(t *testing.T) {
	a := openStore(t, "host-a")
	b := openPeer(t, a, "host-b")
	ctx := context.Background()
	if err := a.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatal(err)
	}

	// A wait that ends with its context reports both causes.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Lock(short, "vol", "owner-b", drivers.LockWait)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, drivers.ErrLocked) {
		t.Fatalf("LockWait with deadline: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("LockWait with 100 ms deadline took %v", d)
	}

	// A release wakes the waiter by notification: long after its polls
	// have backed off, it still gets the lock at once.
	got := make(chan error, 1)
	var gotAt time.Time
	go func() {
		err := b.Lock(ctx, "vol", "owner-b", drivers.LockWait)
		gotAt = time.Now()
		got <- err
	}()
	time.Sleep(2 * time.Second)
	released := time.Now()
	if err := a.Unlock(ctx, "vol", "owner-a", false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("LockWait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LockWait still waiting 5 s after the release")
	}
	wake := gotAt.Sub(released)
	t.Logf("waiter got the lock %v after the release", wake)
	if wake > 500*time.Millisecond {
		t.Errorf("waiter took %v after the release: notification lost?", wake)
	}
	if owner, err := a.LockOwner(ctx, "vol"); err != nil || owner != "owner-b" {
		t.Fatalf("LockOwner = %q, %v", owner, err)
	}
}

func TestHash(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()
	content := pattern(10000, 5)
	content[len(content)-1] = 1 // no trailing zero of its own
	if err := s.Write(ctx, "obj", append(append([]byte{}, content...), make([]byte, 3000)...), 0, 0); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(content)
	want := hex.EncodeToString(digest[:])
	sum, err := s.Hash(ctx, "obj")
	if err != nil || sum != want {
		t.Fatalf("Hash = %q, %v; want %q", sum, err, want)
	}
	// The content-addressed copy and the cache exist, as radosd wrote them.
	got := make([]byte, len(content)+10)
	if err := s.Read(ctx, want, got, 0); err != nil || !bytes.Equal(got[:len(content)], content) {
		t.Fatalf("content-addressed copy: %v", err)
	}
	cached := make([]byte, 64)
	if err := s.Read(ctx, "obj_hash", cached, 0); err != nil || string(cached) != want {
		t.Fatalf("obj_hash = %q, %v", cached, err)
	}
	// The cache is valid for the object's current version, so the next
	// Hash reads 64 bytes, not the object.
	io, err := s.conn.OpenIOContext(testPool)
	if err != nil {
		t.Fatal(err)
	}
	defer io.Destroy()
	io.SetNamespace(s.Config().Namespace)
	if _, err := io.Stat("obj"); err != nil {
		t.Fatal(err)
	}
	version, _ := io.GetLastVersion()
	if sum, ok := cachedHash(io, "obj", version); !ok || sum != want || version == 0 {
		t.Fatalf("cachedHash(obj, version %d) = %q, %v; want %q, true", version, sum, ok, want)
	}
	if _, ok := cachedHash(io, "obj", version+1); ok {
		t.Fatalf("cachedHash accepts another version")
	}
	// The same content zero-padded hashes the same.
	if err := s.Write(ctx, "short", content, 0, 0); err != nil {
		t.Fatal(err)
	}
	if sum, err := s.Hash(ctx, "short"); err != nil || sum != want {
		t.Fatalf("Hash(short) = %q, %v; want %q", sum, err, want)
	}
	// A write makes the cache stale.
	if err := s.Write(ctx, "obj", []byte{0}, 0, 0); err != nil {
		t.Fatal(err)
	}
	sum2, err := s.Hash(ctx, "obj")
	if err != nil || sum2 == want {
		t.Fatalf("Hash after write = %q, %v; want a new hash", sum2, err)
	}
	// A cache written by the original radosd (no version xattr) is trusted.
	if err := s.Write(ctx, "old", []byte("x"), 0, 0); err != nil {
		t.Fatal(err)
	}
	legacy := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := s.Write(ctx, "old_hash", []byte(legacy), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, legacy, []byte("x"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if sum, err := s.Hash(ctx, "old"); err != nil || sum != legacy {
		t.Fatalf("Hash with legacy cache = %q, %v", sum, err)
	}
	// All zeros: the hash of nothing, stored as an empty object.
	if err := s.Write(ctx, "zeros", make([]byte, 4096), 0, 0); err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	if sum, err := s.Hash(ctx, "zeros"); err != nil || sum != hex.EncodeToString(empty[:]) {
		t.Fatalf("Hash(zeros) = %q, %v", sum, err)
	}
	if _, err := s.Hash(ctx, "nosuch"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Hash(missing): %v, want ErrNotFound", err)
	}
}

func TestConcurrentIO(t *testing.T) {
	s := openStore(t, "host-a")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for i := range 20 {
				name := fmt.Sprintf("o-%d-%d", g, i)
				data := pattern(4096, byte(g+i))
				if err := s.Write(ctx, name, data, 0, 0); err != nil {
					errs <- err
					return
				}
				got := make([]byte, 4096)
				if err := s.Read(ctx, name, got, 0); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: read back wrong", name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	needCluster(t)
	_, err := Open(Config{ConfFile: testConf, Pool: "no-such-pool", Timeout: testTimeout})
	if !errors.Is(err, ErrPoolNotFound) {
		t.Fatalf("Open missing pool: %v, want ErrPoolNotFound", err)
	}
	if _, err := Open(Config{ConfFile: testConf}); err == nil {
		t.Fatal("Open without pool succeeded")
	}
	s := openStore(t, "host-a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), "x", []byte("x"), 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
}

// doomedStore starts a cluster of the test's own and opens a Store on it
// with timeout; kill stops the cluster (the store stays open, and is
// closed at the end of the test).
func doomedStore(t *testing.T, timeout time.Duration) (s *Store, conf string, kill func()) {
	t.Helper()
	needCluster(t)
	if clusterMissing() != "" {
		t.Skip("needs its own cluster: " + clusterMissing())
	}
	dir := filepath.Join(t.TempDir(), "dead")
	conf, err := startCluster(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopCluster(dir) })
	s, err = Open(Config{ConfFile: conf, Pool: testPool, Namespace: freshNamespace(t), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, conf, func() {
		if out, err := exec.Command(clusterScript(), "stop", "--keep", dir).CombinedOutput(); err != nil {
			t.Fatalf("stop: %v: %s", err, out)
		}
	}
}

// TestDeadCluster checks that a cluster that dies under a Store gives
// errors within the configured timeout, not hangs, and so does opening one.
func TestDeadCluster(t *testing.T) {
	const timeout = 2 * time.Second
	s, conf, kill := doomedStore(t, timeout)
	ctx := context.Background()
	if err := s.Write(ctx, "x", []byte("alive"), 0, 0); err != nil {
		t.Fatalf("Write while alive: %v", err)
	}
	kill()

	var wg sync.WaitGroup
	for name, op := range map[string]func() error{
		"Write": func() error { return s.Write(ctx, "x", []byte("dead"), 0, 0) },
		"Read":  func() error { return s.Read(ctx, "x", make([]byte, 5), 0) },
		"Lock":  func() error { return s.Lock(ctx, "vol", "owner", drivers.LockTry) },
		"Open": func() error {
			s2, err := Open(Config{ConfFile: conf, Pool: testPool, Timeout: timeout})
			if err == nil {
				s2.Close()
			}
			return err
		},
	} {
		// At once: each waits out the timeout.
		wg.Go(func() {
			start := time.Now()
			err := op()
			took := time.Since(start)
			t.Logf("%s on a dead cluster: %v after %v", name, err, took.Round(time.Millisecond))
			if err == nil {
				t.Errorf("%s on a dead cluster succeeded", name)
			} else if !errors.Is(err, syscall.ETIMEDOUT) {
				t.Errorf("%s on a dead cluster: %v, want ETIMEDOUT", name, err)
			}
			if took > timeout+3*time.Second {
				t.Errorf("%s on a dead cluster took %v, timeout %v", name, took, timeout)
			}
		})
	}
	wg.Wait()
}

// TestCloseWhileWaiting closes a Store under a waiting Lock: the wait ends
// with ErrClosed, its watch removed by Close.
func TestCloseWhileWaiting(t *testing.T) {
	a := openStore(t, "host-a")
	cfg := a.Config()
	cfg.Owner = "host-b"
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Lock(ctx, "vol", "owner-a", drivers.LockTry); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "vol", "owner-b", drivers.LockWait) }()
	time.Sleep(300 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Releasing now sends a notification to nobody.
	if err := a.Unlock(ctx, "vol", "owner-a", false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting Lock after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Lock still blocked 5 s after Close")
	}
}
