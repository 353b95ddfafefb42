package mapper

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
)

// fakeObject is an object of a fakeStore: size bytes, of which those past
// len(b) read as zeros.
type fakeObject struct {
	b    []byte
	size uint64
}

// fakeStore is the two blockers a mapperd talks to, in memory, with the
// semantics of drivers.Store: a missing object's bytes, and bytes past an
// object's end, read as zeros; Copy of a missing source fails.
type fakeStore struct {
	objs [2]map[string]*fakeObject // by Store
}

func newFakeStore() *fakeStore {
	return &fakeStore{objs: [2]map[string]*fakeObject{{}, {}}}
}

func (s *fakeStore) clone() *fakeStore {
	c := newFakeStore()
	for st := range s.objs {
		for k, o := range s.objs[st] {
			c.objs[st][k] = &fakeObject{b: bytes.Clone(o.b), size: o.size}
		}
	}
	return c
}

func (s *fakeStore) write(st Store, name string, off uint64, p []byte) {
	o := s.objs[st][name]
	if o == nil {
		o = &fakeObject{}
		s.objs[st][name] = o
	}
	end := off + uint64(len(p))
	if uint64(len(o.b)) < end {
		o.b = append(o.b, make([]byte, end-uint64(len(o.b)))...)
	}
	copy(o.b[off:], p)
	o.size = max(o.size, end)
}

// read returns n bytes at off, and whether the object exists.
func (s *fakeStore) read(st Store, name string, off, n uint64) ([]byte, bool) {
	p := make([]byte, n)
	o := s.objs[st][name]
	if o == nil {
		return p, false
	}
	if off < uint64(len(o.b)) {
		copy(p, o.b[off:])
	}
	return p, true
}

func (s *fakeStore) apply(a Action) error {
	switch a.Op {
	case OpWrite:
		s.write(a.Store, a.Object, a.Offset, a.Data)
	case OpCopy:
		src := s.objs[a.Store][a.Source]
		if src == nil {
			return fmt.Errorf("copy from missing %s object %q", a.Store, a.Source)
		}
		b := bytes.Clone(src.b[:min(uint64(len(src.b)), a.Size)])
		s.objs[a.Store][a.Object] = &fakeObject{b: b, size: a.Size}
	case OpCreate:
		if s.objs[a.Store][a.Object] == nil {
			s.objs[a.Store][a.Object] = &fakeObject{size: a.Size}
		}
	case OpDelete:
		delete(s.objs[a.Store], a.Object)
	default:
		return fmt.Errorf("unknown op %v", a.Op)
	}
	return nil
}

// run runs the plan; with limit >= 0 it stops (a crash) after that many
// actions and reports whether it did.
func (s *fakeStore) run(p Plan, limit int) (crashed bool, err error) {
	done := 0
	for _, ph := range p.Phases {
		for _, a := range ph.Actions {
			if limit >= 0 && done == limit {
				return true, nil
			}
			if err := s.apply(a); err != nil {
				return false, err
			}
			done++
		}
	}
	return false, nil
}

// header returns the header stored under name, as the "existing" argument
// of the operations: nil if there is no object.
func (s *fakeStore) header(name string) (*Header, error) {
	b, ok := s.read(MapStore, name, 0, HeaderAreaLen)
	if !ok {
		return nil, nil
	}
	v, err := Detect(b, false)
	if err != nil {
		return nil, err
	}
	var h Header
	switch v {
	case V2:
		h, err = DecodeHeader(b)
	case V1:
		h, err = DecodeV1Header(b)
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// load reads the map name as mapperd does. A deleted v2 map comes back
// with its header only (nil map), as the original did not load its
// entries.
func (s *fakeStore) load(name string, assumeV0 bool, sizeHint uint64) (*Map, *Header, error) {
	b, ok := s.read(MapStore, name, 0, HeaderAreaLen)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", errNotFound, name)
	}
	v, err := Detect(b, assumeV0)
	if err != nil {
		return nil, nil, err
	}
	switch v {
	case V2:
		h, err := DecodeHeader(b)
		if err != nil {
			return nil, nil, err
		}
		if h.Deleted() {
			return nil, &h, nil
		}
		var entries []byte
		for _, c := range Chunks(name, h.BlockSize, 0, h.Entries()) {
			p, _ := s.read(MapStore, c.Object, c.Offset, c.Len())
			entries = append(entries, p...)
		}
		m, err := DecodeV2(name, h, entries)
		return m, &h, err
	case V1:
		h, err := DecodeV1Header(b)
		if err != nil {
			return nil, nil, err
		}
		p, _ := s.read(MapStore, name, 0, V1Len(h))
		m, err := DecodeV1(name, p)
		return m, &h, err
	default:
		o := s.objs[MapStore][name]
		m, err := DecodeV0(name, o.b, sizeHint)
		if err != nil {
			return nil, nil, err
		}
		return m, &m.Header, nil
	}
}

// hash is the blocker's HASH: SHA-256 of the content with trailing zeros
// stripped, stored under that name.
func (s *fakeStore) hash(name string) (string, error) {
	o := s.objs[DataStore][name]
	if o == nil {
		return "", fmt.Errorf("hash of missing object %q", name)
	}
	content := bytes.TrimRight(o.b, "\x00")
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	if s.objs[DataStore][h] == nil {
		s.objs[DataStore][h] = &fakeObject{b: bytes.Clone(content), size: uint64(len(content))}
	}
	return h, nil
}

// names lists the objects of a store, sorted.
func (s *fakeStore) names(st Store) []string {
	var out []string
	for k := range s.objs[st] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dataBytes is the number of bytes the data store holds (in the written
// parts of its objects), to measure what dedup saves.
func (s *fakeStore) dataBytes() int {
	n := 0
	for _, o := range s.objs[DataStore] {
		n += len(bytes.TrimRight(o.b, "\x00"))
	}
	return n
}
