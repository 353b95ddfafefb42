package drivers

import (
	"sync"
	"testing"
)

// TestCompletions: dones added from many goroutines all run, once each,
// on the goroutine that runs them, and Ready says when some wait.
func TestCompletions(t *testing.T) {
	var c Completions
	if c.Ready() || c.Run() != 0 {
		t.Fatal("an empty Completions is ready")
	}
	const n = 100
	ran := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.Add(func() { ran[i]++ }) })
	}
	wg.Wait()
	if !c.Ready() {
		t.Fatal("not ready after Add")
	}
	if got := c.Run(); got != n {
		t.Fatalf("Run ran %d, want %d", got, n)
	}
	if c.Ready() || c.Run() != 0 {
		t.Fatal("ready again without an Add")
	}
	for i, k := range ran {
		if k != 1 {
			t.Fatalf("done %d ran %d times", i, k)
		}
	}
}
