package mapserver

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// listPage sends LIST prefix after after with a buffer of bufLen bytes.
func (h *host) listPage(prefix, after string, bufLen uint64) (protocol.VolumeList, reply) {
	h.t.Helper()
	rep := h.call(req{op: xseg.OpList, target: prefix, data: peertest.NameData(h.t, after), dataLen: bufLen})
	if rep.err != nil {
		return protocol.VolumeList{}, rep
	}
	l, err := protocol.DecodeVolumeList(rep.data[:rep.serviced])
	if err != nil {
		h.t.Fatalf("LIST %q after %q: %v", prefix, after, err)
	}
	return l, rep
}

// list pages through LIST prefix with buffers of bufLen bytes and returns
// "name:size:flags" of every volume, and the number of pages.
func (h *host) list(prefix string, bufLen uint64) ([]string, int) {
	h.t.Helper()
	var out []string
	after := ""
	for pages := 1; ; pages++ {
		l, rep := h.listPage(prefix, after, bufLen)
		must(h.t, fmt.Sprintf("LIST %q after %q", prefix, after), rep)
		for _, v := range l.Volumes {
			out = append(out, fmt.Sprintf("%s:%d:%d", v.Name, v.Size, v.Flags))
			after = v.Name
		}
		if !l.More {
			return out, pages
		}
	}
}

// TestList lists the volumes of a host through their lifecycle: live
// volumes, snapshots and clones, in name order and a page at a time; not
// removed or renamed ones, nor map blocks, locks, data or corrupt maps.
func TestList(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	wantList := func(prefix string, want ...string) {
		t.Helper()
		if got, _ := h.list(prefix, 64<<10); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Errorf("LIST %q = %q, want %q", prefix, got, want)
		}
	}
	wantList("")
	must(t, "create vol1", h.create("vol1", 8*mib, 0))
	if err := h.write("vol1", 0, fill('a', 4096)); err != nil {
		t.Fatal(err)
	}
	must(t, "snapshot", h.snapshot("vol1", "snap1"))
	must(t, "clone", h.clone("snap1", "clone1", 16*mib))
	must(t, "create vol2", h.create("vol2", 4*mib, mib))
	must(t, "create gone", h.create("gone", 4*mib, 0))
	must(t, "remove gone", h.simple(xseg.OpDelete, "gone", 0))
	must(t, "create old", h.create("old", 4*mib, 0))
	must(t, "rename old", h.rename("old", "new"))
	must(t, "open vol1", h.simple(xseg.OpOpen, "vol1", 0)) // its lock is held: still listed once
	var many []string
	for i := range 8 {
		name := fmt.Sprintf("many-volumes-%02d", i)
		must(t, "create "+name, h.create(name, mib, 0))
		many = append(many, name+":1048576:0")
	}
	// A corrupt map header (a v2 signature, version 3) is left out.
	bad := mapper.EncodeHeader(mapper.Header{Size: mib, BlockSize: mapper.DefaultBlockSize})
	binary.BigEndian.PutUint32(bad[4:], 3)
	must(t, "write bad", h.call(req{op: xseg.OpWrite, port: mapPort, target: "bad", size: uint64(len(bad)), data: bad}))
	// A map of Archipelago 0.3, stored as archip_legacy, lists as legacy.
	var e [33]byte
	d := sha256.Sum256(nil)
	copy(e[1:], d[:])
	h.writeV1("archip_legacy", 4*mib, [][33]byte{e})

	all := append([]string{"clone1:16777216:0", "legacy:4194304:0"}, many...)
	all = append(all, "new:4194304:0", "snap1:8388608:1", "vol1:8388608:0", "vol2:4194304:0")
	wantList("", all...)
	wantList("vol", "vol1:8388608:0", "vol2:4194304:0")
	wantList("le", "legacy:4194304:0")
	wantList("vol2", "vol2:4194304:0")
	wantList("gone")
	wantList("old")
	wantList("nomatch")
	if got, pages := h.list("", protocol.NameLen); !reflect.DeepEqual(got, all) || pages < 2 {
		t.Errorf("LIST in %d pages of %d bytes: %q", pages, protocol.NameLen, got)
	}
	// A name to list after that is no volume.
	if l, _ := h.listPage("", "snap0", 64<<10); len(l.Volumes) != 3 || l.Volumes[0].Name != "snap1" {
		t.Errorf("LIST after snap0: %+v", l.Volumes)
	}
	// The first page's hint is room enough for the rest.
	first, _ := h.listPage("", "", protocol.NameLen)
	if !first.More || first.RestBytes == 0 {
		t.Fatalf("first small page: %+v", first)
	}
	if l, _ := h.listPage("", first.Volumes[len(first.Volumes)-1].Name, first.RestBytes); l.More || len(first.Volumes)+len(l.Volumes) != len(all) {
		t.Errorf("LIST with the hinted buffer: %d volumes, more %v", len(l.Volumes), l.More)
	}
	// mapperd pages through the map blocker's names too: a small first
	// page, then one as large as the blocker's hint.
	srv, err := New(h.seg, Options{DataPort: dataPort, MapPort: mapPort, Owner: "hostA"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.st.firstList = protocol.NameLen
	want, err := h.srv.st.listObjects("")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := srv.st.listObjects(""); err != nil || !reflect.DeepEqual(got, want) || srv.Requests(xseg.OpList) != 2 {
		t.Errorf("listing in small pages: %d names, %v, %d LIST requests; want %d names in 2", len(got), err, srv.Requests(xseg.OpList), len(want))
	}
	if h.data.count(xseg.OpList) != 0 {
		t.Errorf("LIST sent to the data blocker")
	}
}

// TestListBadInput: hostile prefixes and payloads are EINVAL.
func TestListBadInput(t *testing.T) {
	dataDir, mapDir := dirs(t)
	h := newHost(t, dataDir, mapDir, "hostA")
	must(t, "create", h.create("vol", mib, 0))
	for _, prefix := range []string{"a/b", "../", "/", "x\x00", strings.Repeat("p", mapper.MaxVolumeNameLen+1)} {
		_, rep := h.listPage(prefix, "", 4096)
		wantErrno(t, fmt.Sprintf("LIST %q", prefix), rep, syscall.EINVAL)
	}
	wantErrno(t, "LIST with a short buffer", h.call(req{op: xseg.OpList, dataLen: protocol.NameLen - 1}), syscall.EINVAL)
	bad := peertest.NameData(t, "x")
	bad[protocol.NameFieldLen+1] = 1
	wantErrno(t, "LIST with a bad payload", h.call(req{op: xseg.OpList, data: bad}), syscall.EINVAL)
	if got, _ := h.list("", protocol.NameLen); !reflect.DeepEqual(got, []string{"vol:1048576:0"}) {
		t.Errorf("LIST after the bad input: %q", got)
	}
}
