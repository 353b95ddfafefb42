// Package e2e holds the end-to-end tests of the volume stack: a filed, a
// mapperd and a vlmcd run as real processes on one segment, and a client
// sends every volume operation to vlmcd. The package has no code of its
// own; see its tests.
package e2e
