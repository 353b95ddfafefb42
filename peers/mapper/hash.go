package mapper

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Hashing content-addresses a snapshot: every object it names is replaced
// by the object named after its content, so that equal blocks, within and
// across images, are stored once. The blocker's HASH op does the data part
// for one object: it computes the SHA-256 of the object's content with
// trailing zero bytes stripped (a Pithos block hash), stores a copy under
// that 64-hex-digit name unless one exists, and returns the name. What is
// left is a map: HashTargets lists the objects to hash, Hashed builds the
// image's map from the answers. The original shipped this disabled; its
// code (do_hash, hash_map) is what we follow:
//
//   - objects Archipelago created (EntryArchip) are hashed; the others
//     (Pithos blocks, the zero block) are content-addressed already and
//     kept;
//   - the image's map is named by the Merkle hash of its entries' digests,
//     Pithos's top hash (merkle_hash in the original's hash.c): the image
//     of the same content always gets the same name, which is how Pithos
//     names files;
//   - it is a read-only map, written (as the original did) in the v2 format
//     with NewMapPlan, so that it keeps the snapshot's size; EncodeV0 gives
//     the Pithos hashmap of the same image.
//
// The entries of the image name content-addressed objects only: none is
// EntryArchip, so removing the image, or any volume cloned from it, never
// deletes one of them, however many images share it. A block that hashes
// to the zero block becomes a zero entry: it reads as zeros without I/O.
//
// Hazard: two images of the same content but different sizes in the last
// block's zeros (10 MiB and 11 MiB of the same data) get the same name.
// Before storing an image a peer should load the map of that name, if any:
// equal (Equal) means the image is there already; different means
// ErrExists. And maps must not share a namespace (directory, pool) with
// data: an image of a single block is named by that block's hash.

// HashTargets returns the entries of snapshot m whose objects the blocker
// must hash: those Archipelago created, except zero blocks.
func HashTargets(m *Map) ([]IndexedEntry, error) {
	if err := checkHashable(m); err != nil {
		return nil, err
	}
	var out []IndexedEntry
	m.entries.eachStored(EntryArchip, func(i uint64, e Entry) bool {
		if e.Archip() && !e.zeroBlock() {
			out = append(out, IndexedEntry{i, e})
		}
		return true
	})
	return out, nil
}

func checkHashable(m *Map) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("hash %q: %w", m.Name, err)
	}
	if !m.ReadOnly() {
		return fmt.Errorf("hash %q: %w: hash a snapshot of it", m.Name, ErrNotSnapshot)
	}
	if m.Deleted() {
		return fmt.Errorf("hash %q: %w", m.Name, ErrDeleted)
	}
	return nil
}

// Hashed builds the content-addressed image of snapshot m from the names
// the blocker's HASH returned, hashes[index] for every entry HashTargets
// listed. Entries that were not hashed must already name content (64
// lowercase hex digits), else ErrBadName. The image is named by its Merkle
// hash, read-only, with m's size and block size, epoch 0, version 2.
func Hashed(m *Map, hashes map[uint64]string) (*Map, error) {
	if err := checkHashable(m); err != nil {
		return nil, err
	}
	n := m.Len()
	b := emptyBuilder(n)
	digests := make([][sha256.Size]byte, n)
	for i := range n {
		e := m.entries.get(i)
		name := e.Name
		switch {
		case e.zeroBlock():
			name = ZeroObject
		case e.Archip():
			h, ok := hashes[i]
			if !ok {
				return nil, fmt.Errorf("hash %q: %w: no hash for block %d (%q)", m.Name, ErrBadName, i, e.Name)
			}
			name = h
		}
		if !isContentName(name) {
			return nil, fmt.Errorf("hash %q: %w: block %d names %q, not a content hash", m.Name, ErrBadName, i, name)
		}
		hex.Decode(digests[i][:], []byte(name))
		if name == ZeroObject {
			continue // a zero entry: nothing stored
		}
		b.set(i, Entry{Name: name})
	}
	top := MerkleHash(digests)
	h := Header{Version: V2, Size: m.Size, BlockSize: m.BlockSize, Flags: MapReadOnly}
	return &Map{Name: hex.EncodeToString(top[:]), Header: h, entries: b.table()}, nil
}

// MerkleHash returns the Merkle hash of a list of SHA-256 digests, as
// Pithos and the original's merkle_hash compute it: the hash of nothing
// for no digest, the digest itself for one; else the list is padded with
// all-zero digests to a power of two and each level hashes pairs of
// concatenated digests, until one is left.
func MerkleHash(digests [][sha256.Size]byte) [sha256.Size]byte {
	switch len(digests) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return digests[0]
	}
	s := 2
	for s < len(digests) {
		s <<= 1
	}
	level := make([][sha256.Size]byte, s)
	copy(level, digests)
	var pair [2 * sha256.Size]byte
	for l := s; l > 1; l /= 2 {
		for i := 0; i < l; i += 2 {
			copy(pair[:], level[i][:])
			copy(pair[sha256.Size:], level[i+1][:])
			level[i/2] = sha256.Sum256(pair[:])
		}
	}
	return level[0]
}
