package e2e

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/xseg"
)

// TestKillVlmcd SIGKILLs vlmcd while 16 writes are in flight, restarts it
// on the same port and re-issues nothing: every acknowledged write reads
// back exactly. Writes failed back with xseg.ErrPeerDied may be in the
// volume whole, in part or not at all; their content is not asserted.
func TestKillVlmcd(t *testing.T) {
	s := newStack(t)
	c := s.client
	const (
		volSize = 64 * mib
		depth   = 16
		wsize   = 256*kib + 13 // odd, so that some writes cross objects
		slots   = volSize / (wsize + 3*kib)
	)
	c.create(t, "crash", volSize)
	// One write first, so that vlmcd knows the volume before the load.
	c.write(t, "crash", 0, pattern(0, 512), 0)

	type write struct {
		off  uint64
		data []byte
	}
	var (
		mu      sync.Mutex
		acked   []write
		died    []write
		other   []error // failures that are not ErrPeerDied
		next    atomic.Int64
		nacked  atomic.Int64
		running atomic.Int64 // writes submitted and not yet answered
		stopped atomic.Bool
		wg      sync.WaitGroup
	)
	data := make([][]byte, slots)
	for i := range data {
		data[i] = pattern(uint32(1000+i), wsize)
	}
	// Slot i is the range at i*(wsize+3 KiB)+1 KiB+i: written at most once,
	// with data of its own.
	for range depth {
		wg.Go(func() {
			for !stopped.Load() {
				i := next.Add(1)
				if i >= slots {
					return
				}
				w := write{off: uint64(i)*(wsize+3*kib) + kib + uint64(i), data: data[i]}
				running.Add(1)
				rep, err := c.try(req{op: xseg.OpWrite, target: "crash", offset: w.off, size: wsize, data: w.data})
				running.Add(-1)
				mu.Lock()
				switch {
				case err == nil && rep.err == nil && rep.serviced == wsize:
					acked = append(acked, w)
					nacked.Add(1)
				case err == nil && errors.Is(rep.err, xseg.ErrPeerDied):
					died = append(died, w)
				default:
					if err == nil {
						err = rep.err
					}
					other = append(other, err)
				}
				mu.Unlock()
				if err != nil || rep.err != nil {
					stopped.Store(true) // vlmcd is dead: issue no more
					return
				}
			}
		})
	}
	// Let a first wave be acknowledged, then kill with all 16 writes in
	// flight.
	deadline := time.Now().Add(15 * time.Second)
	for (nacked.Load() < depth || running.Load() < depth) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
	s.vlmcd.Kill()
	stopped.Store(true)
	wg.Wait()
	t.Logf("vlmcd killed: %d writes acknowledged, %d failed with ErrPeerDied, %d otherwise (%v)",
		len(acked), len(died), len(other), other)
	if len(acked) == 0 || len(acked) >= int(slots)-depth {
		t.Fatalf("the kill did not land under load: %d of %d writes acknowledged", len(acked), slots)
	}
	if len(died) == 0 {
		t.Errorf("no write in flight failed with ErrPeerDied; other failures: %v", other)
	}
	s.startVlmcd()
	c.expect(t, "first write", "crash", 0, pattern(0, 512))
	for _, w := range acked {
		c.expect(t, "acknowledged write", "crash", w.off, w.data)
	}
	// The volume takes I/O as before.
	more := pattern(4242, 5000)
	c.write(t, "crash", 4*mib-1000, more, xseg.FlagFUA)
	c.expect(t, "write after the restart", "crash", 4*mib-1000, more)
	c.must(t, req{op: xseg.OpFlush, target: "crash"})
}
