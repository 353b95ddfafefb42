package mapper

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Listing volumes. A map store holds, beside the header objects of maps,
// their map blocks, the blockers' side objects and, where maps and data
// share a blocker, the volumes' data. mapperd's LIST lists the store's
// object names, keeps those that may be map headers (Candidates, by name
// alone), reads their header areas and lists the live maps (ListHeader),
// as the original's vlmc list did by reading the map storage itself.

// Candidate is an object of a map store that may hold the header of a
// volume's map.
type Candidate struct {
	// Volume is the name the volume is listed, and looked up, under.
	Volume string
	// Object holds the header: Volume, or "archip_"+Volume, a map of
	// Archipelago ≤ 0.3 that lookups of Volume fall back to.
	Object string
}

// Candidates returns the objects among names, a map store's object names
// sorted bytewise, that may hold the header of a map whose name starts
// with prefix and sorts after after: sorted by volume name, one per
// volume. Left out by their names, without I/O:
//
//   - names no map may have (CheckName);
//   - side objects ("<x>_lock", "<x>_hash");
//   - map blocks "<v>_<16 hex>" and copy-ups "<v>_<16 hex>_<16 hex>" (the
//     original's vlmc refused volume names of that shape too);
//   - 64 hex digits: data blocks and content-addressed images, which are
//     thus not listed: the images HASH makes (the client is told their
//     names) and Pithos hashmaps (v0, which only FlagAssumeV0 reads);
//   - "archip_" and a name that is left out itself, such as the writable
//     objects "archip_<64 hex>" of v1 maps.
//
// "archip_X" lists as X when no object X exists, since a lookup of X
// then finds it (and the original's vlmc list showed it so).
func Candidates(names []string, prefix, after string) []Candidate {
	var out []Candidate
	for _, name := range names {
		c, ok := candidate(names, name)
		if ok && strings.HasPrefix(c.Volume, prefix) && c.Volume > after {
			out = append(out, c)
		}
	}
	// Legacy names moved: sort by volume again.
	slices.SortFunc(out, func(a, b Candidate) int { return strings.Compare(a.Volume, b.Volume) })
	return out
}

// candidate says whether object name of the sorted names may be a map
// header, and of which volume.
func candidate(names []string, name string) (Candidate, bool) {
	if !mayBeHeader(name) {
		return Candidate{}, false
	}
	c := Candidate{Volume: name, Object: name}
	if rest, ok := strings.CutPrefix(name, legacyPrefix); ok {
		if !mayBeHeader(rest) {
			return Candidate{}, false
		}
		if _, found := slices.BinarySearch(names, rest); !found {
			c.Volume = rest
		}
	}
	return c, true
}

// mayBeHeader reports whether a map header may be stored under name: what
// CheckName and checkShape accept, told without building errors, since a
// listing asks it of every object of a store.
func mayBeHeader(name string) bool {
	return name != "" && len(name) <= MaxVolumeNameLen && !strings.ContainsAny(name, "/\x00") &&
		sideSuffix(name) == "" && !hasHexTail(name) && !isContentName(name)
}

// ListHeader decodes the header area of a candidate (its first HeaderLen
// bytes suffice) for a listing: the header, and true for a live map in the
// v2 or v1 format. It returns false for what a listing leaves out: a map
// marked deleted, and an object that is no map header (all zeros, as a
// missing object reads; no v2 signature and no v1 header). A v2 signature
// on a header that does not decode is ErrBadFormat: a corrupt map, for the
// listing to report rather than hide.
func ListHeader(area []byte) (Header, bool, error) {
	if len(area) >= 4 && binary.BigEndian.Uint32(area) == Magic {
		h, err := DecodeHeader(area)
		if err != nil {
			return Header{}, false, fmt.Errorf("corrupt map header: %w", err)
		}
		return h, !h.Deleted(), nil
	}
	h, err := DecodeV1Header(area)
	if err != nil {
		return Header{}, false, nil
	}
	return h, true, nil
}
