package xseg

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wake-ups use a futex on the port's sleeping word. The word lives in a
// shared mapping, so the futex is keyed by the file and offset and works
// across processes. A waiting goroutine holds its OS thread while it
// sleeps; a peer has one waiter per port, so that costs a thread, not a
// thread per request.

const (
	futexWait = 0
	futexWake = 1
)

func futexSleep(addr *atomic.Uint32, val uint32, timeout time.Duration) {
	var ts *unix.Timespec
	if timeout > 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	// EAGAIN (the word changed), EINTR and ETIMEDOUT all mean: look again.
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
}

func futexWakeAll(addr *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(1<<31-1), 0, 0, 0)
}

// yieldCPU gives the core to another runnable thread, if there is one;
// without one it returns at once.
func yieldCPU() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
