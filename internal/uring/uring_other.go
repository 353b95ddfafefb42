//go:build !linux

package uring

import (
	"sync/atomic"
	"time"
)

const eagain = int32(11)

// Ring is an io_uring instance; there is none on this operating system.
type Ring struct{}

// New fails with ErrNotSupported.
func New(entries uint32) (*Ring, error) { return nil, ErrNotSupported }

func (r *Ring) Close() error                                               { return nil }
func (r *Ring) Read(fd int, p []byte, off int64, tag uint64) bool          { return false }
func (r *Ring) Write(fd int, p []byte, off int64, tag uint64) bool         { return false }
func (r *Ring) FutexWait(word *atomic.Uint32, val uint32, tag uint64) bool { return false }
func (r *Ring) Prepared() int                                              { return 0 }
func (r *Ring) Submit() error                                              { return ErrNotSupported }
func (r *Ring) SubmitAndWait(timeout time.Duration) error                  { return ErrNotSupported }
func (r *Ring) Ready() bool                                                { return false }
func (r *Ring) Reap(c []Completion) []Completion                           { return c }
