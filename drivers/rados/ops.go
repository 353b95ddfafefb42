//go:build ceph

package rados

/*
#cgo LDFLAGS: -lrados
#cgo CXXFLAGS: -std=c++17 -O2 -Wall
#include <stdlib.h>
#include "ops.h"
*/
import "C"

import (
	"syscall"
	"time"
	"unsafe"
)

// Wrappers of ops.cc. Each returns the negative librados return code as a
// syscall.Errno, or nil.

// cIOContext returns the librados handle behind the go-ceph I/O context.
func (s *Store) cIOContext() C.rados_ioctx_t {
	return C.rados_ioctx_t(s.ioctx.Pointer())
}

func retErrno(ret C.int) error {
	if ret >= 0 {
		return nil
	}
	return syscall.Errno(-ret)
}

// copyFrom has the OSD replace dst with src cut or zero-extended to size.
func (s *Store) copyFrom(src, dst string, size int64) error {
	cSrc, cDst := C.CString(src), C.CString(dst)
	defer C.free(unsafe.Pointer(cSrc))
	defer C.free(unsafe.Pointer(cDst))
	return retErrno(C.archipelago_copy_from(s.cIOContext(), cSrc, cDst, C.uint64_t(size)))
}

// zeroObjectOp makes name exactly size zero bytes, atomically.
func (s *Store) zeroObjectOp(name string, size int64) error {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	return retErrno(C.archipelago_zero_object(s.cIOContext(), cName, C.uint64_t(size)))
}

// notify wakes the watchers of oid and waits for their acks up to timeout.
func (s *Store) notify(oid string, timeout time.Duration) error {
	cOID := C.CString(oid)
	defer C.free(unsafe.Pointer(cOID))
	return retErrno(C.archipelago_notify(s.cIOContext(), cOID, C.uint64_t(timeout.Milliseconds())))
}
