package drivers

import (
	"fmt"
	"sync"
	"testing"
)

// TestCompletions: dones added from many goroutines all run, once each,
// with their errors, on the goroutine that runs them, and Ready says when
// some wait; one that adds again runs at the next Run.
func TestCompletions(t *testing.T) {
	var c Completions
	if c.Ready() || c.Run() != 0 {
		t.Fatal("an empty Completions is ready")
	}
	const n = 100
	ran := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		want := fmt.Errorf("op %d", i)
		wg.Go(func() {
			c.Add(func(err error) {
				if err != want {
					t.Errorf("done %d got %v, want %v", i, err, want)
				}
				ran[i]++
			}, want)
		})
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
	again := 0
	c.Add(func(error) { c.Add(func(error) { again++ }, nil) }, nil)
	if c.Run() != 1 || again != 0 || !c.Ready() {
		t.Fatal("a done added by a done ran in the same Run, or is not ready")
	}
	if c.Run() != 1 || again != 1 {
		t.Fatal("a done added by a done did not run at the next Run")
	}
}
