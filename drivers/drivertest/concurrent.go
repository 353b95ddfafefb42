package drivertest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/archipelago-go/archipelago/drivers"
)

// testConcurrentObjects has 16 goroutines write and read back their own
// objects at once.
func testConcurrentObjects(t *testing.T, h Harness) {
	s := h.Open(t)
	const writers, writes, chunk = 16, 24, 5003
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("object-%02d", w)
			var model []byte
			for i := range writes {
				data := pattern(uint64(w*writes+i), chunk)
				off := int64((i*7)%writes) * chunk // scattered, overlapping none
				if err := s.Write(t.Context(), name, data, off, 0); err != nil {
					errs <- err
					return
				}
				if end := off + chunk; end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], data)
			}
			got := make([]byte, len(model))
			if err := s.Read(t.Context(), name, got, 0); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, model) {
				errs <- fmt.Errorf("%s reads back wrong", name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		wantSize(t, s, fmt.Sprintf("object-%02d", w), writes*chunk)
	}
}

// testConcurrentSameObject has goroutines write interleaved, unaligned
// stripes of one object: no write may undo another.
func testConcurrentSameObject(t *testing.T, h Harness) {
	s := h.Open(t)
	const writers, stripes, stripe = 8, 48, 1000
	var wg sync.WaitGroup
	errs := make(chan error, writers*stripes)
	for w := range writers {
		wg.Go(func() {
			for i := range stripes {
				n := i*writers + w
				err := s.Write(t.Context(), "shared", pattern(uint64(n), stripe), int64(n)*stripe, drivers.WriteFlags(0))
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want []byte
	for n := range writers * stripes {
		want = append(want, pattern(uint64(n), stripe)...)
	}
	wantSize(t, s, "shared", int64(len(want)))
	wantBytes(t, "shared object", read(t, s, "shared", len(want), 0), want)
}

// testPeer checks that another store over the same backend sees writes.
func testPeer(t *testing.T, h Harness) {
	if h.OpenPeer == nil {
		t.Skip("the harness opens no peer stores")
	}
	s := h.Open(t)
	data := pattern(1, 9000)
	if err := s.Write(t.Context(), "shared", data, 100, drivers.WriteFUA); err != nil {
		t.Fatalf("Write: %v", err)
	}
	peer := h.OpenPeer(t, s)
	wantSize(t, peer, "shared", 9100)
	wantBytes(t, "peer read", read(t, peer, "shared", 9000, 100), data)
	write(t, peer, "from-peer", data[:10], 0)
	wantBytes(t, "read of a peer's write", read(t, s, "from-peer", 10, 0), data[:10])
}
