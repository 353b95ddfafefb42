package mapserver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Sizes of mapperd's LIST requests to the map blocker.
const (
	// listBuffer is the buffer of the first page of a listing of the map
	// blocker's objects: some thousands of names.
	listBuffer = 256 << 10
	// maxListBuffer bounds the buffer of the next pages, which the
	// previous page's hint sizes to hold the rest at once: every page
	// makes the blocker list its whole store again.
	maxListBuffer = 16 << 20
	// listBatch is how many header areas a listing reads before it looks
	// whether the page is full.
	listBatch = 4 * actionParallel
)

// list serves LIST: the page of the live volumes whose names start with
// prefix that follows the name the payload gives, in name order, as much
// of it as the data buffer holds.
func (s *Server) list(r xseg.Request, prefix string) error {
	data := r.Data()
	after, err := protocol.DecodeName(data)
	if err != nil {
		return err
	}
	names, err := s.st.listMaps(prefix)
	if err != nil {
		return err
	}
	page, err := s.listPage(mapper.Candidates(names, prefix, after), len(data))
	if err != nil {
		return err
	}
	if err := protocol.EncodeVolumeList(data, page); err != nil {
		return err
	}
	r.SetServiced(uint64(page.Len()))
	return nil
}

// listPage reads the headers of cands, in order, until the live volumes
// found fill a reply of room bytes. room is at least NameLen (the
// request's payload), which holds the header and any one volume.
func (s *Server) listPage(cands []mapper.Candidate, room int) (protocol.VolumeList, error) {
	var page protocol.VolumeList
	used := protocol.ListHeaderLen
	for start := 0; start < len(cands); start += listBatch {
		found, err := s.readListed(cands[start:min(start+listBatch, len(cands))])
		if err != nil {
			return page, err
		}
		for i, v := range found {
			if v == nil {
				continue
			}
			if used += protocol.VolumeEntryLen(v.Name); used > room {
				page.More = true
				page.RestBytes = uint64(restLen(cands[start+i:]))
				return page, nil
			}
			page.Volumes = append(page.Volumes, *v)
		}
	}
	return page, nil
}

// restLen is the size of a reply listing every one of cands: an upper
// bound of what the rest of a listing needs.
func restLen(cands []mapper.Candidate) int {
	n := protocol.ListHeaderLen
	for _, c := range cands {
		n += protocol.VolumeEntryLen(c.Volume)
	}
	return n
}

// readListed reads the header areas of cands in parallel: the entry of
// each live map, nil for the others. A corrupt map header is logged and
// left out; INFO of the volume reports it.
func (s *Server) readListed(cands []mapper.Candidate) ([]*protocol.VolumeEntry, error) {
	out := make([]*protocol.VolumeEntry, len(cands))
	err := parallel(len(cands), actionParallel, func(i int) error {
		c := cands[i]
		area := make([]byte, mapper.HeaderLen)
		if err := s.st.read(s.st.mapPort, c.Object, 0, area); err != nil {
			return fmt.Errorf("read map header %q: %w", c.Object, err)
		}
		h, live, err := mapper.ListHeader(area)
		if err != nil {
			s.log.WithField("volume", c.Volume).WithError(err).Warn("left out of a listing")
		}
		if live {
			out[i] = &protocol.VolumeEntry{Name: c.Volume, VolumeInfo: volumeInfo(h)}
		}
		return nil
	})
	return out, err
}

// volumeInfo is what INFO and LIST tell of a volume with header h.
func volumeInfo(h mapper.Header) protocol.VolumeInfo {
	vi := protocol.VolumeInfo{Size: h.Size, BlockSize: uint64(h.BlockSize)}
	if h.ReadOnly() {
		vi.Flags |= protocol.VolumeReadOnly
	}
	return vi
}

// listMaps returns the sorted names of the map blocker's objects that may
// hold the maps of volumes whose names start with prefix: those that
// start with prefix, and the legacy "archip_<prefix>..." ones.
func (s *storage) listMaps(prefix string) ([]string, error) {
	names, err := s.listObjects(prefix)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(legacyPrefix+prefix, prefix) {
		return names, nil // "archip_<prefix>..." starts with prefix too
	}
	legacy, err := s.listObjects(legacyPrefix + prefix)
	if err != nil {
		return nil, err
	}
	return slices.Compact(slices.Sorted(slices.Values(append(names, legacy...)))), nil
}

// listObjects returns the sorted names of the map blocker's objects that
// start with prefix, paging through LIST: after a first page of
// s.firstList bytes, pages as large as the blocker says the rest needs (up
// to s.maxList).
func (s *storage) listObjects(prefix string) ([]string, error) {
	var names []string
	after := ""
	bufLen := s.firstList
	for {
		payload := make([]byte, protocol.NameLen)
		if err := protocol.EncodeName(payload, after); err != nil {
			return nil, err
		}
		out := make([]byte, bufLen)
		q := &request{op: xseg.OpList, port: s.mapPort, target: prefix, in: payload, dataLen: bufLen, out: out}
		if err := s.do(q); err != nil {
			return nil, fmt.Errorf("list map objects %q: %w", prefix, err)
		}
		page, err := protocol.DecodeObjectList(out[:min(q.serviced, bufLen)])
		if err == nil && len(page.Names) > 0 && page.Names[0] <= after {
			err = fmt.Errorf("%w: page after %q starts at %q", protocol.ErrBadPayload, after, page.Names[0])
		}
		if err != nil {
			return nil, fmt.Errorf("list map objects %q: blocker reply: %w", prefix, err)
		}
		names = append(names, page.Names...)
		if !page.More {
			return names, nil
		}
		after = page.Names[len(page.Names)-1]
		bufLen = min(max(page.RestBytes, s.firstList), s.maxList)
	}
}
