// Package uring owns a minimal io_uring instance: reads and writes at an
// offset and a futex wait, submitted in batches by one goroutine, their
// completions reaped from the rings the kernel shares with the process.
// It exists so that a peer serving many small requests from the page
// cache makes one system call for a batch of them instead of one each.
//
// Hazards:
//   - One goroutine at a time prepares, submits and reaps; only Ready may
//     be called from any goroutine.
//   - The kernel reads and writes a buffer of an operation until its
//     completion is reaped: the caller keeps it alive and in place
//     (runtime.Pinner for Go memory) until then.
//   - A file descriptor is resolved when its operation is submitted, not
//     when it is prepared: it must stay open (and unreused) in between.
package uring

import (
	"errors"
	"sync/atomic"
)

// ErrNotSupported is returned by New when the kernel has no io_uring, has
// it disabled, or lacks a feature this package relies on (the futex wait
// operation of Linux 6.7, timeouts on waits, no dropped completions).
var ErrNotSupported = errors.New("io_uring not supported")

// Completion is a finished operation: its tag and its result, a byte
// count or a negated errno.
type Completion struct {
	Tag    uint64
	Result int32
}

// futexWaitTag tags the probe's futex wait in New.
const futexWaitTag = ^uint64(0)

// probeFutexWait checks that the ring knows the futex wait operation: a
// wait on a word that does not hold the expected value fails at once with
// EAGAIN, where a kernel without the operation answers EINVAL.
func probeFutexWait(r *Ring) error {
	word := new(atomic.Uint32)
	if !r.FutexWait(word, 1, futexWaitTag) {
		return errors.New("no room in a new ring")
	}
	if err := r.SubmitAndWait(0); err != nil {
		return err
	}
	var got []Completion
	got = r.Reap(got)
	if len(got) != 1 || got[0].Tag != futexWaitTag {
		return errors.New("no completion for the futex wait probe")
	}
	if got[0].Result != -eagain {
		return ErrNotSupported
	}
	return nil
}
