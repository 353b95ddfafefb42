//go:build ceph

package rados

import (
	"context"
	"slices"
	"strings"

	"github.com/archipelago-go/archipelago/drivers"
)

// List returns the sorted names of the objects of the Store's namespace
// whose names start with prefix, lock objects ("<name>_lock") and cached
// hashes ("<name>_hash") left out (see drivers.Store.List). RADOS lists a
// namespace in hash order, a placement group at a time, with no prefix
// index: List reads every name of the namespace. The context is checked
// between names; one librados call (a batch of names from an OSD) cannot
// be interrupted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := drivers.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	iter, err := s.ioctx.Iter()
	if err != nil {
		return nil, wrapErr("list", prefix, err)
	}
	defer iter.Close()
	var names []string
	for iter.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := iter.Value()
		if strings.HasPrefix(name, prefix) && !drivers.IsSideObject(name) {
			names = append(names, name)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, wrapErr("list", prefix, err)
	}
	slices.Sort(names)
	return names, nil
}
