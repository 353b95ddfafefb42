package composer

import (
	"sync"
	"sync/atomic"

	"github.com/archipelago-go/archipelago/xseg"
)

// slowCalls runs the data store calls that wait on the disk (a sync for a
// barrier or a durable write) on goroutines of their own, so that the
// loop goes on serving every other volume meanwhile; their results come
// back to the loop, which they wake through the port's wake word.
type slowCalls struct {
	wake  *atomic.Uint32
	mu    sync.Mutex
	done  []func()
	ready atomic.Bool
}

// run calls call on a goroutine; done gets its result on the loop (poll).
func (s *slowCalls) run(call func() error, done func(error)) {
	go func() {
		err := call()
		s.mu.Lock()
		s.done = append(s.done, func() { done(err) })
		s.ready.Store(true)
		s.mu.Unlock()
		xseg.Wake(s.wake)
	}()
}

// poll runs the dones of the calls that returned.
func (s *slowCalls) poll() {
	if !s.ready.Load() {
		return
	}
	s.mu.Lock()
	done := s.done
	s.done = nil
	s.ready.Store(false)
	s.mu.Unlock()
	for _, d := range done {
		d()
	}
}
