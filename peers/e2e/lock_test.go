package e2e

import (
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// TestTwoHosts runs the lock scenario on two hosts whose filed serve one
// data directory.
func TestTwoHosts(t *testing.T) {
	dataDir := t.TempDir()
	twoHosts(t, func(owner string) stackConfig {
		return stackConfig{owner: owner, dataDir: dataDir}
	})
}

// open sends OPEN (with FlagForce if force) and returns the reply; a
// lock error's reply carries the holder in a name payload.
func (c *client) open(t testing.TB, vol string, force bool) reply {
	t.Helper()
	return c.lockOp(t, xseg.OpOpen, vol, force)
}

func (c *client) closeVolume(t testing.TB, vol string, force bool) reply {
	t.Helper()
	return c.lockOp(t, xseg.OpClose, vol, force)
}

// lockOp sends OPEN or CLOSE of vol, with FlagForce if force, and a name
// payload for the holder a lock error names.
func (c *client) lockOp(t testing.TB, op xseg.Op, vol string, force bool) reply {
	t.Helper()
	var flags xseg.Flags
	if force {
		flags = xseg.FlagForce
	}
	return c.call(t, req{op: op, target: vol, flags: flags, dataLen: protocol.NameLen})
}

// wantLocked checks that rep is the lock error of a volume held by
// holder: EAGAIN, with the holder's name in the reply.
func wantLocked(t *testing.T, what string, rep reply, holder string) {
	t.Helper()
	wantErrno(t, what, rep, syscall.EAGAIN)
	var got string
	if rep.serviced == protocol.NameLen {
		got, _ = protocol.DecodeName(rep.data)
	}
	if got != holder {
		t.Errorf("%s: the lock error names the holder %q (serviced %d), want %q", what, got, rep.serviced, holder)
	}
}

// twoHosts runs two hosts, each its own segment and peers, over one store
// (hostConfig gives a host's stack for its owner name): one host at a
// time opens a volume; the other's OPEN fails with the lock error naming
// the holder, and succeeds once the holder closed it; after the holder's
// peers are SIGKILLed its lock stays, and OPEN with FlagForce breaks it.
// Every acknowledged write of either host reads back on the other.
func twoHosts(t *testing.T, hostConfig func(owner string) stackConfig) {
	const (
		hostA   = "e2e-host-a"
		hostB   = "e2e-host-b"
		volSize = 16 * mib
		obj     = 4 * mib
	)
	a := newStackWith(t, hostConfig(hostA))
	b := newStackWith(t, hostConfig(hostB))
	vol := make(image, volSize)
	write := func(s *stack, off uint64, seed uint32, n int) {
		t.Helper()
		data := pattern(seed, n)
		s.client.write(t, "shared", off, data, xseg.FlagFUA)
		vol.put(off, data)
	}

	a.client.create(t, "shared", volSize)
	if rep := a.client.open(t, "shared", false); rep.err != nil {
		t.Fatalf("OPEN on host A: %v", rep.err)
	}
	write(a, 1000, 1, 5000)
	// Host B reads a volume host A holds (from the stored map, uncached):
	// the block A has not written yet reads as zeros.
	b.client.expect(t, "host B reads while A holds the lock", "shared", 0, vol[:2*obj])

	wantLocked(t, "OPEN on host B while A holds the lock", b.client.open(t, "shared", false), hostA)
	rep := b.client.call(t, req{op: xseg.OpWrite, target: "shared", offset: 0, size: 512, data: pattern(9, 512)})
	wantErrno(t, "WRITE on host B while A holds the lock", rep, syscall.EAGAIN)
	rep = b.client.closeVolume(t, "shared", false)
	wantErrno(t, "CLOSE on host B of A's lock", rep, syscall.EPERM)

	// A writes where B read zeros, then closes: B, opening it, must not
	// serve what it had read before.
	write(a, obj+77, 2, 3000)
	if rep := a.client.closeVolume(t, "shared", false); rep.err != nil {
		t.Fatalf("CLOSE on host A: %v", rep.err)
	}
	if rep := b.client.open(t, "shared", false); rep.err != nil {
		t.Fatalf("OPEN on host B after A closed: %v", rep.err)
	}
	b.client.expect(t, "host B after A closed", "shared", 0, vol[:2*obj])
	write(b, 2*obj-100, 3, 300)
	wantLocked(t, "OPEN on host A while B holds the lock", a.client.open(t, "shared", false), hostB)
	if rep := b.client.closeVolume(t, "shared", false); rep.err != nil {
		t.Fatalf("CLOSE on host B: %v", rep.err)
	}

	// A takes the volume again, writes, and dies: its lock stays.
	if rep := a.client.open(t, "shared", false); rep.err != nil {
		t.Fatalf("OPEN on host A after B closed: %v", rep.err)
	}
	write(a, 3*obj-5, 4, 10)
	a.killAll()
	wantLocked(t, "OPEN on host B after A's peers were killed", b.client.open(t, "shared", false), hostA)
	if rep := b.client.open(t, "shared", true); rep.err != nil {
		t.Fatalf("OPEN with force on host B after A's peers were killed: %v", rep.err)
	}
	b.client.expect(t, "host B after breaking dead A's lock", "shared", 0, vol)
	write(b, volSize-obj-3, 5, 4096)
	b.client.expect(t, "host B writes after the forced open", "shared", volSize-2*obj, vol[volSize-2*obj:])
	if rep := b.client.closeVolume(t, "shared", false); rep.err != nil {
		t.Errorf("CLOSE on host B after the forced open: %v", rep.err)
	}
}
