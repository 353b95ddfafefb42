package ring

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func newMem(capacity int) []byte {
	words := make([]uint64, (Size(capacity)+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
}

func TestPushPopOrderAndBounds(t *testing.T) {
	r, err := Init(newMem(8), 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Pop(); ok || !r.Empty() {
		t.Fatal("new ring is not empty")
	}
	for lap := 0; lap < 5; lap++ {
		for i := uint32(0); i < 8; i++ {
			if !r.Push(i + uint32(lap)*100) {
				t.Fatalf("lap %d: push %d refused", lap, i)
			}
		}
		if r.Push(999) {
			t.Fatal("push into a full ring succeeded")
		}
		if r.Len() != 8 {
			t.Fatalf("Len = %d, want 8", r.Len())
		}
		for i := uint32(0); i < 8; i++ {
			v, ok := r.Pop()
			if !ok || v != i+uint32(lap)*100 {
				t.Fatalf("lap %d: pop %d = %d,%v", lap, i, v, ok)
			}
		}
		if _, ok := r.Pop(); ok {
			t.Fatal("pop from an empty ring succeeded")
		}
	}
}

func TestInitRejectsBadGeometry(t *testing.T) {
	for _, c := range []int{0, 1, 3, 12} {
		if _, err := Init(newMem(16), c); err == nil {
			t.Errorf("Init capacity %d: no error", c)
		}
	}
	if _, err := Init(make([]byte, 100), 64); err == nil {
		t.Error("Init into short memory: no error")
	}
	mem := newMem(16)
	if _, err := Init(mem, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(mem, 32); !errors.Is(err, ErrLayout) {
		t.Errorf("Attach with wrong capacity: %v, want ErrLayout", err)
	}
	if _, err := Attach(newMem(16), 16); !errors.Is(err, ErrLayout) {
		t.Errorf("Attach to zeroed memory: %v, want ErrLayout", err)
	}
}

// TestContention runs producers and consumers on a small ring so that it
// is full and empty many times over, then checks that every value arrived
// exactly once and that each producer's values arrived in order.
func TestContention(t *testing.T) {
	const producers, consumers, perProducer = 4, 4, 50000
	r, err := Init(newMem(64), 64)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				for !r.Push(uint32(p<<24 | i)) {
					runtime.Gosched()
				}
			}
		}(p)
	}
	seen := make([][]bool, producers)
	for p := range seen {
		seen[p] = make([]bool, perProducer)
	}
	var mu sync.Mutex
	var failures []string
	var cwg sync.WaitGroup
	remaining := make(chan struct{}, producers*perProducer)
	for i := 0; i < producers*perProducer; i++ {
		remaining <- struct{}{}
	}
	for c := 0; c < consumers; c++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			last := make([]int, producers)
			for i := range last {
				last[i] = -1
			}
			for {
				select {
				case <-remaining:
				default:
					return
				}
				var v uint32
				for {
					var ok bool
					if v, ok = r.Pop(); ok {
						break
					}
					runtime.Gosched()
				}
				p, i := int(v>>24), int(v&0xffffff)
				mu.Lock()
				switch {
				case p >= producers || i >= perProducer:
					failures = append(failures, "value out of range")
				case seen[p][i]:
					failures = append(failures, "duplicate")
				case i <= last[p]:
					failures = append(failures, "out of order for one producer")
				}
				if p < producers && i < perProducer {
					seen[p][i] = true
					last[p] = i
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cwg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	for p := range seen {
		for i, ok := range seen[p] {
			if !ok {
				t.Fatalf("value %d of producer %d lost", i, p)
			}
		}
	}
	if !r.Empty() {
		t.Fatal("ring not empty at the end")
	}
}

func BenchmarkPushPop(b *testing.B) {
	r, _ := Init(newMem(1024), 1024)
	for i := 0; i < b.N; i++ {
		r.Push(uint32(i))
		r.Pop()
	}
}

// TestRepairDeadProducer: a producer that claimed a cell and died before
// publishing it leaves a hole that consumers skip after RepairAfter.
func TestRepairDeadProducer(t *testing.T) {
	defer func(d time.Duration) { RepairAfter = d }(RepairAfter)
	RepairAfter = 20 * time.Millisecond
	r, _ := Init(newMem(8), 8)
	r.Push(1)
	atomic.AddUint64(r.head, 1) // claimed, never published
	r.Push(2)
	if v, ok := r.Pop(); !ok || v != 1 {
		t.Fatalf("first pop %d,%v", v, ok)
	}
	if r.Empty() {
		t.Fatal("Empty with a value behind the hole")
	}
	begin := time.Now()
	if v, ok := r.Pop(); !ok || v != 2 {
		t.Fatalf("pop past the hole %d,%v", v, ok)
	}
	if d := time.Since(begin); d < RepairAfter {
		t.Fatalf("repaired after %v, before RepairAfter", d)
	}
	for i := uint32(0); i < 20; i++ { // the ring goes on working, lap after lap
		if !r.Push(i) {
			t.Fatal("push after repair refused")
		}
		if v, _ := r.Pop(); v != i {
			t.Fatalf("pop %d after repair", v)
		}
	}
}

// TestRepairDeadConsumer: a consumer that took a value and died before
// releasing its cell does not leave the ring full forever.
func TestRepairDeadConsumer(t *testing.T) {
	defer func(d time.Duration) { RepairAfter = d }(RepairAfter)
	RepairAfter = 20 * time.Millisecond
	r, _ := Init(newMem(4), 4)
	for i := uint32(0); i < 4; i++ {
		r.Push(i)
	}
	atomic.AddUint64(r.tail, 1) // took value 0, never released the cell
	for i := uint32(1); i < 4; i++ {
		if v, _ := r.Pop(); v != i {
			t.Fatalf("pop %d, want %d", v, i)
		}
	}
	for i := uint32(10); i < 14; i++ {
		if !r.Push(i) {
			t.Fatalf("push %d refused: the dead consumer's cell was not repaired", i)
		}
	}
	if r.Push(99) {
		t.Fatal("push into a really full ring succeeded")
	}
	for i := uint32(10); i < 14; i++ {
		if v, _ := r.Pop(); v != i {
			t.Fatalf("pop %d, want %d", v, i)
		}
	}
}
