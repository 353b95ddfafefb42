//go:build ceph

package rados

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/ceph/go-ceph/rados"

	"github.com/archipelago-go/archipelago/drivers"
)

var (
	// ErrPoolNotFound is returned by Open when the configured pool does not
	// exist; create it first (ceph osd pool create NAME).
	ErrPoolNotFound = errors.New("rados pool does not exist")
	// ErrClosed is returned by calls on a Store after Close, and by a Lock
	// that was waiting when Close came.
	ErrClosed = errors.New("rados store closed")
)

// Errors from librados carry their errno: errors.Is(err, syscall.ETIMEDOUT)
// is true when the cluster did not answer within Config.Timeout, and ENOENT
// becomes drivers.ErrNotFound.

// errno returns the positive errno a go-ceph error carries, or 0. A failed
// WriteOp or ReadOp returns rados.OperationError, which has no Unwrap, so
// errors.Is cannot see through it: look inside by hand.
func errno(err error) int {
	var opErr rados.OperationError
	if errors.As(err, &opErr) {
		if code := errno(opErr.OpError); code != 0 {
			return code
		}
		for _, stepErr := range opErr.StepErrors {
			if code := errno(stepErr); code != 0 {
				return code
			}
		}
		return 0
	}
	var coded interface{ ErrorCode() int }
	if errors.As(err, &coded) {
		code := coded.ErrorCode()
		if code < 0 {
			code = -code
		}
		return code
	}
	return 0
}

// wrapErr gives a librados error the operation and object as context and
// maps its errno: ENOENT satisfies errors.Is(err, drivers.ErrNotFound), and
// every errno satisfies errors.Is(err, syscall.Errno(n)) (so a dead cluster
// shows as syscall.ETIMEDOUT). The go-ceph error stays in the chain.
func wrapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	code := errno(err)
	switch code {
	case 0:
		return fmt.Errorf("rados %s %q: %w", op, name, err)
	case int(syscall.ENOENT):
		return fmt.Errorf("rados %s %q: %w (%w)", op, name, drivers.ErrNotFound, err)
	default:
		return fmt.Errorf("rados %s %q: %w (%w)", op, name, syscall.Errno(code), err)
	}
}

// retErr turns a negative return code of a lock call (go-ceph reports
// EBUSY, EEXIST, ENOENT and EINVAL there with a nil error) into an error.
func retErr(op, name string, ret int) error {
	if ret >= 0 {
		return nil
	}
	errnoVal := syscall.Errno(-ret)
	if errnoVal == syscall.ENOENT {
		return fmt.Errorf("rados %s %q: %w (%w)", op, name, drivers.ErrNotFound, errnoVal)
	}
	return fmt.Errorf("rados %s %q: %w", op, name, errnoVal)
}

// isErrno reports whether err carries the given errno.
func isErrno(err error, e syscall.Errno) bool {
	return errno(err) == int(e)
}
