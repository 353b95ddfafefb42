//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

const shmDir = ""

var errNotLinux = errors.New("needs Linux: the server's lifetime is tied to ours with Pdeathsig, and shared memory lives in /dev/shm")

func checkPlatform() error { return errNotLinux }

func childProcAttr() *syscall.SysProcAttr { return nil }

func mapShared(f *os.File, size int) ([]byte, error) { return nil, errNotLinux }

func unmapShared(mem []byte) error { return errNotLinux }
