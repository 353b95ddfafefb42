//go:build ceph

package rados

import (
	"slices"
	"testing"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/drivers/drivertest"
)

// TestConformance runs the shared driver suite. Every Open is a fresh
// namespace; OpenPeer is a second connection (another RADOS client, so
// another lock holder) over the same namespace, for another host.
func TestConformance(t *testing.T) {
	needCluster(t)
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) drivers.Store {
			return openStore(t, "host-a")
		},
		OpenPeer: func(t *testing.T, first drivers.Store) drivers.Store {
			return openPeer(t, first.(*Store), "host-b")
		},
		Files: func(t *testing.T, s drivers.Store) []string {
			return listObjects(t, s.(*Store))
		},
	})
}

// listObjects returns the names of the objects in the Store's namespace,
// sorted.
func listObjects(t *testing.T, s *Store) []string {
	t.Helper()
	var names []string
	if err := s.ioctx.ListObjects(func(oid string) { names = append(names, oid) }); err != nil {
		t.Fatalf("list objects: %v", err)
	}
	slices.Sort(names)
	return names
}
