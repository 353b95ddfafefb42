package main

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// shmDir is where the ring mode's shared-memory file lives.
const shmDir = "/dev/shm"

func checkPlatform() error { return nil }

// childProcAttr makes the server die with this process and keeps it out of
// the terminal's process group, so that a Ctrl-C reaches only this process,
// which removes its files before it stops the server.
//
// Pdeathsig fires when the thread that forked exits, not the process; the
// Go runtime only ends threads that a goroutine locked and never unlocked,
// and this program locks none.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// mapShared maps size bytes of f read-write and shared with every process
// that maps the same file. The mapping outlives f's descriptor; release it
// with unmapShared.
func mapShared(f *os.File, size int) ([]byte, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	return mem, nil
}

func unmapShared(mem []byte) error { return unix.Munmap(mem) }
