package e2e

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// TestList lists the volumes of filed's stack, maps and data in one
// directory.
func TestList(t *testing.T) {
	listScenarios(t, newStack(t))
}

// TestListMapBlocker lists them with the maps on a filed of their own.
func TestListMapBlocker(t *testing.T) {
	listScenarios(t, newStackWith(t, stackConfig{maps: filedOver(t.TempDir(), owner)}))
}

// listPage sends LIST prefix after after, with a buffer of bufLen bytes,
// to the client's port.
func (c *client) listPage(t testing.TB, prefix, after string, bufLen uint64) reply {
	t.Helper()
	return c.call(t, req{op: xseg.OpList, target: prefix, data: peertest.NameData(t, after), dataLen: bufLen})
}

// listVolumes pages through mapperd's LIST (through vlmcd) and returns
// "name size [ro]" of each volume, and the number of pages.
func (c *client) listVolumes(t testing.TB, prefix string, bufLen uint64) ([]string, int) {
	t.Helper()
	var out []string
	after := ""
	for pages := 1; ; pages++ {
		rep := c.listPage(t, prefix, after, bufLen)
		if rep.err != nil {
			t.Fatalf("LIST %q after %q: %v", prefix, after, rep.err)
		}
		l, err := protocol.DecodeVolumeList(rep.data[:rep.serviced])
		if err != nil {
			t.Fatalf("LIST %q after %q: %v", prefix, after, err)
		}
		for _, v := range l.Volumes {
			line := fmt.Sprintf("%s %d", v.Name, v.Size)
			if v.ReadOnly() {
				line += " ro"
			}
			out = append(out, line)
			after = v.Name
		}
		if !l.More {
			return out, pages
		}
	}
}

// listObjects pages through a blocker's LIST and returns the names.
func (c *client) listObjects(t testing.TB, prefix string) []string {
	t.Helper()
	var names []string
	after := ""
	for {
		rep := c.listPage(t, prefix, after, 64*kib)
		if rep.err != nil {
			t.Fatalf("blocker LIST %q after %q: %v", prefix, after, rep.err)
		}
		l, err := protocol.DecodeObjectList(rep.data[:rep.serviced])
		if err != nil {
			t.Fatalf("blocker LIST %q after %q: %v", prefix, after, err)
		}
		names = append(names, l.Names...)
		if !l.More {
			return names
		}
		after = l.Names[len(l.Names)-1]
	}
}

// listScenarios makes volumes, a snapshot, a clone, writes (copy-ups),
// removes and renames some: LIST shows exactly the live ones, a page at a
// time or all at once; bad input is EINVAL and changes nothing.
func listScenarios(t *testing.T, s *stack) {
	c := s.client
	if got, _ := c.listVolumes(t, "", 64*kib); len(got) != 0 {
		t.Fatalf("LIST of a new host: %q", got)
	}
	c.create(t, "vol1", 16*mib)
	c.write(t, "vol1", 0, pattern(1, 8*kib), 0)
	c.snapshot(t, "vol1", "snap1")
	c.write(t, "vol1", 4*mib, pattern(2, 8*kib), 0)
	if rep := c.clone(t, "snap1", "clone1", 32*mib); rep.err != nil {
		t.Fatalf("CLONE: %v", rep.err)
	}
	c.write(t, "clone1", 0, pattern(3, 4*kib), 0)
	c.create(t, "vol2", 8*mib)
	c.create(t, "gone", 4*mib)
	c.must(t, req{op: xseg.OpDelete, target: "gone", dataLen: protocol.NameLen})
	c.create(t, "tmp", 4*mib)
	c.must(t, req{op: xseg.OpRename, target: "tmp", data: peertest.NameData(t, "renamed")})
	c.must(t, req{op: xseg.OpOpen, target: "vol2", dataLen: protocol.NameLen}) // locked: listed all the same
	for i := range 6 {
		c.create(t, fmt.Sprintf("many-%02d-%s", i, strings.Repeat("x", 60)), 4*mib)
	}

	got, pages := c.listVolumes(t, "", 64*kib)
	want := []string{"clone1 33554432"}
	for i := range 6 {
		want = append(want, fmt.Sprintf("many-%02d-%s 4194304", i, strings.Repeat("x", 60)))
	}
	want = append(want, "renamed 4194304", "snap1 16777216 ro", "vol1 16777216", "vol2 8388608")
	if !reflect.DeepEqual(got, want) || pages != 1 {
		t.Errorf("LIST in %d pages:\ngot  %q\nwant %q", pages, got, want)
	}
	if got, pages := c.listVolumes(t, "", protocol.NameLen); !reflect.DeepEqual(got, want) || pages < 3 {
		t.Errorf("LIST in %d pages of %d bytes: %q", pages, protocol.NameLen, got)
	}
	if got, _ := c.listVolumes(t, "vol", 64*kib); !reflect.DeepEqual(got, want[len(want)-2:]) {
		t.Errorf("LIST vol: %q", got)
	}
	for _, prefix := range []string{"gone", "tmp", "nomatch", "vol1_"} {
		if got, _ := c.listVolumes(t, prefix, 64*kib); len(got) != 0 {
			t.Errorf("LIST %q: %q", prefix, got)
		}
	}

	// The data blocker lists objects: the copy-ups, not the locks.
	data := (&client{c: c.c, dst: filedPort}).listObjects(t, "clone1")
	if len(data) == 0 || slices.ContainsFunc(data, func(n string) bool { return strings.HasSuffix(n, "_lock") }) {
		t.Errorf("data blocker LIST clone1: %q", data)
	}

	// Bad input, to vlmcd (and so mapperd) and to the blocker.
	for _, dst := range []int{vlmcdPort, filedPort} {
		bc := &client{c: c.c, dst: dst}
		for _, prefix := range []string{"a/b", "../x", "/", "x\x00y"} {
			wantErrno(t, fmt.Sprintf("LIST %q on port %d", prefix, dst), bc.listPage(t, prefix, "", 4*kib), syscall.EINVAL)
		}
		bad := peertest.NameData(t, "x")
		bad[protocol.NameFieldLen+1] = 1
		wantErrno(t, fmt.Sprintf("LIST payload of 257 bytes on port %d", dst), bc.call(t, req{op: xseg.OpList, data: bad}), syscall.EINVAL)
		wantErrno(t, fmt.Sprintf("LIST with a short buffer on port %d", dst), bc.call(t, req{op: xseg.OpList, dataLen: 16}), syscall.EINVAL)
	}
	wantErrno(t, "LIST of an 83-byte prefix", c.listPage(t, strings.Repeat("p", 83), "", 4*kib), syscall.EINVAL)
	if got, _ := c.listVolumes(t, "", 64*kib); !reflect.DeepEqual(got, want) {
		t.Errorf("LIST after the bad input: %q", got)
	}
	for _, p := range []*peertest.Process{s.blocker, s.mapBlk, s.mapperd, s.vlmcd} {
		if p == nil {
			continue
		}
		select {
		case <-p.Done:
			t.Errorf("%s exited: %v", p.Name, p.Err)
		default:
		}
	}
}
