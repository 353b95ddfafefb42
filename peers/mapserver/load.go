package mapserver

import (
	"bytes"
	"fmt"

	"github.com/archipelago-go/archipelago/peers/mapper"
)

// legacyPrefix is the prefix under which Archipelago ≤ 0.3 stored maps;
// the original mapper looked a volume up as "archip_<name>" when "<name>"
// had no map, and so do we.
const legacyPrefix = "archip_"

// readHeader reads the header area of map object name from the map
// blocker: nil if it holds nothing (a missing object reads as zeros).
// A v0 map (assumeV0) has no header: its Size is 0 until it is loaded.
func (s *storage) readHeader(name string, assumeV0 bool) (*mapper.Header, error) {
	area := make([]byte, mapper.HeaderAreaLen)
	if err := s.read(s.mapPort, name, 0, area); err != nil {
		return nil, fmt.Errorf("read map header %q: %w", name, err)
	}
	if allZero(area) {
		return nil, nil
	}
	v, err := mapper.Detect(area, assumeV0)
	if err != nil {
		return nil, fmt.Errorf("map %q: %w (a Pithos image needs FlagAssumeV0)", name, err)
	}
	var h mapper.Header
	switch v {
	case mapper.V2:
		h, err = mapper.DecodeHeader(area)
	case mapper.V1:
		h, err = mapper.DecodeV1Header(area)
	default:
		h = mapper.Header{Version: mapper.V0, BlockSize: mapper.DefaultBlockSize, Flags: mapper.MapReadOnly}
	}
	if err != nil {
		return nil, fmt.Errorf("map %q: %w", name, err)
	}
	return &h, nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// loadMap reads the whole map stored under object, whose header is h.
func (s *storage) loadMap(object string, h mapper.Header) (*mapper.Map, error) {
	var (
		m   *mapper.Map
		err error
	)
	switch h.Version {
	case mapper.V2:
		n := h.Entries()
		buf := make([]byte, n*mapper.EntryLen)
		chunks := mapper.Chunks(object, h.BlockSize, 0, n)
		err = parallel(len(chunks), actionParallel, func(i int) error {
			c := chunks[i]
			return s.read(s.mapPort, c.Object, c.Offset, buf[c.First*mapper.EntryLen:][:c.Len()])
		})
		if err == nil {
			m, err = mapper.DecodeV2(object, h, buf)
		}
	case mapper.V1:
		var data []byte
		if data, err = s.readAll(object, mapper.V1Len(h)); err == nil {
			m, err = mapper.DecodeV1(object, data)
		}
	default:
		var size uint64
		if size, err = s.objectSize(s.mapPort, object); err != nil {
			break
		}
		// A v0 map of MaxEntries digests is all we could hold.
		size = min(size, mapper.MaxEntries*32)
		var data []byte
		if data, err = s.readAll(object, size); err == nil {
			m, err = mapper.DecodeV0(object, data, mapper.NoSizeHint)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load map %q: %w", object, err)
	}
	return m, nil
}

// readAll reads the first n bytes of map object name, in chunks of at
// most mapper.ChunkLen.
func (s *storage) readAll(name string, n uint64) ([]byte, error) {
	buf := make([]byte, n)
	chunks := int((n + mapper.ChunkLen - 1) / mapper.ChunkLen)
	err := parallel(max(chunks, 1), actionParallel, func(i int) error {
		off := uint64(i) * mapper.ChunkLen
		return s.read(s.mapPort, name, off, buf[off:min(off+mapper.ChunkLen, n)])
	})
	return buf, err
}

// found is what the map blocker holds under a volume's name.
type found struct {
	// header is the stored header: nil if there is no map (and no legacy
	// one).
	header *mapper.Header
	// object is where the map was found: the name, or "archip_<name>".
	object string
	// m is the loaded map, if asked for and live.
	m *mapper.Map
}

func (f found) live() bool { return f.header != nil && !f.header.Deleted() }

// find looks volume name up, falling back to a live "archip_<name>" map
// when "<name>" holds nothing, and loads the map if load and it is live.
func (s *storage) find(name string, assumeV0, load bool) (found, error) {
	h, err := s.readHeader(name, assumeV0)
	if err != nil {
		return found{}, err
	}
	f := found{header: h, object: name}
	if h == nil {
		legacy := legacyPrefix + name
		if mapper.CheckName(legacy) == nil {
			lh, err := s.readHeader(legacy, assumeV0)
			if err != nil {
				return found{}, err
			}
			if lh != nil && !lh.Deleted() {
				f = found{header: lh, object: legacy}
			}
		}
	}
	if !load || !f.live() {
		return f, nil
	}
	if f.m, err = s.loadMap(f.object, *f.header); err != nil {
		return found{}, err
	}
	return f, nil
}

// lookup returns the live map of volume name for reading: ErrNotFound if
// there is none.
func (s *storage) lookup(name string, assumeV0 bool) (*mapper.Map, error) {
	f, err := s.find(name, assumeV0, true)
	if err != nil {
		return nil, err
	}
	if err := f.mustLive(name); err != nil {
		return nil, err
	}
	return f.m, nil
}

func (f found) mustLive(name string) error {
	switch {
	case f.header == nil:
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	case f.header.Deleted():
		return fmt.Errorf("%w: %q was removed", ErrNotFound, name)
	}
	return nil
}

// existing returns the header stored under a name about to be made (the
// mapper operations' existing argument): nil if nothing is stored there.
// An object there that is not a map we read is ErrExists: never overwrite
// what we do not understand.
func (s *storage) existing(name string) (*mapper.Header, error) {
	h, err := s.readHeader(name, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %q holds an object that is not a map: %w", mapper.ErrExists, name, err)
	}
	return h, nil
}

// loadLive returns the map of volume name for writing, the lock held: a
// v1 map is upgraded to v2 first, and a map found as "archip_<name>" moved
// to "<name>" (the original's migration of Archipelago 0.3 volumes), both
// durably; a v0 map only if upgradeV0 (it makes the map unreadable to
// Pithos), else it is returned as it is and write operations refuse it.
func (s *storage) loadLive(name string, assumeV0, upgradeV0 bool) (*mapper.Map, error) {
	f, err := s.find(name, assumeV0, true)
	if err != nil {
		return nil, err
	}
	if err := f.mustLive(name); err != nil {
		return nil, err
	}
	m := f.m
	if m.Version == mapper.V1 || (m.Version == mapper.V0 && upgradeV0) {
		if m, err = mapper.Upgrade(m); err != nil {
			return nil, err
		}
		if f.object == name {
			if err := s.runPlan(mapper.NewMapPlan(m)); err != nil {
				return nil, fmt.Errorf("upgrade map %q to v2: %w", name, err)
			}
		}
	}
	if f.object != name && m.Version == mapper.V2 {
		r, err := mapper.Rename(m, name, nil)
		if err != nil {
			return nil, fmt.Errorf("move legacy map %q to %q: %w", f.object, name, err)
		}
		if err := s.runPlan(r.Plan()); err != nil {
			return nil, fmt.Errorf("move legacy map %q to %q: %w", f.object, name, err)
		}
		m = r.Map
	}
	return m, nil
}
