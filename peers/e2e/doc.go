// Package e2e holds the end-to-end tests of the volume stack: a data
// blocker, a mapperd and a vlmcd run as real processes on one segment (the
// binaries built from the repository by TestMain), and a client sends
// every volume operation to vlmcd. The blocker is filed; with the build
// tag ceph (go test -tags 'ceph pacific'), rados_test.go runs the same
// scenarios on radosd over a throw-away Ceph cluster, and skips, saying
// why, where that cannot run. The package has no code of its own; see its
// tests: volumes, snapshots and clones (volume_test.go), two hosts and the
// volume lock (lock_test.go), hashing and the bytes it stores
// (hash_test.go), SIGKILL under load (crash_test.go), bad input
// (badinput_test.go), listing volumes and objects (list_test.go).
package e2e
