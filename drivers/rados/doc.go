//go:build ceph

// Package rados is the RADOS (Ceph) object-store driver: one Store serves one
// pool, optionally one namespace in it, through librados (go-ceph, cgo).
//
// It is built only with the build tags "ceph pacific" and needs librados-dev
// and libradospp-dev (and g++) to build, librados2 to run; tools/install-deps.sh
// installs them, and the test cluster's daemons:
//
//	go build -tags 'ceph pacific' ./drivers/rados/
//	go test -tags 'ceph pacific' ./drivers/rados/
//
// The tests start a throw-away one-node cluster with tools/ceph-test-cluster
// (root, about 1 s), or use $ARCHIPELAGO_CEPH_CONF; without root or the Ceph
// packages every test skips and says why.
//
// On-storage names follow the original Archipelago radosd: an object is
// stored under its own name, a lock is the RADOS advisory exclusive lock
// "RadosLock" on the object "<name>_lock" (cookie = owner, description =
// Config.Owner), a hash is cached in "<name>_hash" and the content-addressed
// copy is stored under the 64-hex-digit hash.
//
// Lock identity is the owner string, as in filed, not the RADOS client
// instance as in the original radosd: the same owner through another
// connection (a restarted peer, another Store) holds the lock, so a peer
// restart no longer leaves a lock only a forced release can clear.
//
// Durability: RADOS acknowledges a write only after every replica has it
// (on commit), so every Write is already durable when it returns; WriteFUA
// and WriteFlush need no extra work, and Flush does nothing.
//
// Concurrency: a Store is safe for concurrent use. librados I/O contexts are
// thread-safe, so all goroutines share one; each synchronous call blocks one
// OS thread in cgo until the OSD answers, so N goroutines give N operations
// in flight. A Queue (drivers.AsyncStore) is the asynchronous path that
// go-ceph lacks: a small cgo binding of rados_aio_read and rados_aio_write
// (aio.c) whose completions librados' finisher thread pushes onto a C
// stack, waking the poller's futex word; the poller's Poll runs the done
// callbacks. N operations in flight need no thread each, and no Go code
// runs on a librados thread. The blocker peer serves READ and WRITE
// through it (radosd).
//
// Timeouts: librados waits forever by default. Open sets
// rados_osd_op_timeout, rados_mon_op_timeout and client_mount_timeout to
// Config.Timeout, so a dead or unreachable cluster gives an error wrapping
// syscall.ETIMEDOUT instead of a hang; the asynchronous path's completions
// get the same error. A context only bounds waits inside
// the driver (lock retries) and is checked before each call: librados calls
// cannot be interrupted once issued.
package rados
