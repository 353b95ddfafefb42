package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/archipelago-go/archipelago/drivers"
)

// List returns the sorted names of the objects whose names start with
// prefix. It walks the three fan-out levels of the data directory and
// keeps a file only where the store would look for it: NAME under
// ab/cd/ef when abcdef is its fan-out, or a 64-hex name under its old
// Pithos directories. Everything else is left out: lock and hash side
// files (whatever their names, see drivers.Store.List), temporaries (their
// random names never match their directory, except by a chance of 2^-24
// per file, while one exists), and files that are not of the store.
// The context is checked between directories.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.checkList(ctx, prefix); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	var names []string
	err := s.walkLeaves(ctx, func(leaf string, files []string) {
		for _, name := range files {
			if strings.HasPrefix(name, prefix) && isObjectFile(leaf, name) {
				names = append(names, name)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %q: %w", prefix, s.dir, err)
	}
	slices.Sort(names)
	// A Pithos block may be at its old place and its new one.
	return slices.Compact(names), nil
}

// checkList validates the arguments of List.
func (s *Store) checkList(ctx context.Context, prefix string) error {
	if s.closed.Load() {
		return fs.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return drivers.ValidatePrefix(prefix)
}

// isObjectFile reports whether the file name in the leaf directory leaf
// ("ab/cd/ef") is an object the store reads: at its fan-out place or at
// its old Pithos place, and not a side file.
func isObjectFile(leaf, name string) bool {
	if drivers.IsSideObject(name) || drivers.ValidateName(name) != nil {
		return false
	}
	if fanOut(name) == leaf {
		return true
	}
	return isPithosName(name) && name[0:2]+"/"+name[2:4]+"/"+name[4:6] == leaf
}

// walkLeaves calls visit with each leaf directory "ab/cd/ef" (two
// lowercase hex digits a level) under the data directory and the names of
// the regular files in it. Other entries are skipped.
func (s *Store) walkLeaves(ctx context.Context, visit func(leaf string, files []string)) error {
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, rel))
		switch {
		case rel != "" && errors.Is(err, fs.ErrNotExist):
			return nil // removed meanwhile: it holds nothing
		case err != nil:
			return err
		}
		if depth == 3 {
			visit(rel, regularFiles(entries))
			return nil
		}
		for _, e := range entries {
			if !e.IsDir() || !isFanOutDir(e.Name()) {
				continue
			}
			child := e.Name()
			if rel != "" {
				child = rel + "/" + child
			}
			if err := walk(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("", 0)
}

// regularFiles returns the names of the regular files among entries.
func regularFiles(entries []fs.DirEntry) []string {
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names
}

// isFanOutDir reports whether name is a fan-out directory level: two
// lowercase hex digits.
func isFanOutDir(name string) bool {
	return len(name) == 2 && isLowerHex(name)
}
