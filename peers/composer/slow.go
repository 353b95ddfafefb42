package composer

import (
	"sync/atomic"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/xseg"
)

// slowCalls runs the data store calls that wait on the disk (a sync for a
// barrier or a durable write) on goroutines of their own, so that the
// loop goes on serving every other volume meanwhile; their results come
// back to the loop (poll), which they wake through the port's wake word.
type slowCalls struct {
	wake *atomic.Uint32
	done drivers.Completions
}

// run calls call on a goroutine; done gets its result on the loop (poll).
func (s *slowCalls) run(call func() error, done func(error)) {
	go func() {
		err := call()
		s.done.Add(done, err)
		xseg.Wake(s.wake)
	}()
}

// ready reports whether calls returned and wait for poll.
func (s *slowCalls) ready() bool { return s.done.Ready() }

// poll runs the dones of the calls that returned.
func (s *slowCalls) poll() { s.done.Run() }
