package blocker_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// listPage sends LIST prefix after after with a buffer of bufLen bytes.
func listPage(t *testing.T, c *peertest.Client, prefix, after string, bufLen uint64) (protocol.ObjectList, peertest.Reply) {
	t.Helper()
	rep := c.MustDo(t, peertest.Req{Op: xseg.OpList, Target: prefix, Data: peertest.NameData(t, after), DataLen: bufLen})
	if rep.Err != nil {
		return protocol.ObjectList{}, rep
	}
	l, err := protocol.DecodeObjectList(rep.Data[:rep.Serviced])
	if err != nil {
		t.Fatalf("LIST %q after %q: %v", prefix, after, err)
	}
	return l, rep
}

// listAll pages through LIST prefix with buffers of bufLen bytes and
// returns the names and the number of pages.
func listAll(t *testing.T, c *peertest.Client, prefix string, bufLen uint64) ([]string, int) {
	t.Helper()
	var names []string
	after := ""
	for pages := 1; ; pages++ {
		l, rep := listPage(t, c, prefix, after, bufLen)
		wantErr(t, fmt.Sprintf("LIST %q after %q", prefix, after), rep, nil)
		names = append(names, l.Names...)
		if !l.More {
			return names, pages
		}
		after = l.Names[len(l.Names)-1]
	}
}

// TestList pages through object listings: every page in order, the
// prefix applied, locks and hash side files left out.
func TestList(t *testing.T) {
	h := newHost(t)
	c, _ := h.blocker(t, 1, blocker.Options{Owner: "host_1"})
	var want []string
	for i := range 120 {
		name := fmt.Sprintf("vol%03d", i)
		c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: name, Size: 1, Data: []byte{1}})
		want = append(want, name)
	}
	c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: "other", Size: 1, Data: []byte{1}})
	wantErr(t, "acquire", c.MustDo(t, peertest.Req{Op: xseg.OpAcquire, Target: "vol000", Flags: xseg.FlagNoSync}), nil)

	if got, pages := listAll(t, c, "vol", protocol.NameLen); !slices.Equal(got, want) || pages < 2 {
		t.Errorf("LIST vol in %d pages of %d bytes: %q, want %d names", pages, protocol.NameLen, got, len(want))
	}
	// The first page tells how large a buffer the rest needs: that size
	// gets it in one page.
	first, _ := listPage(t, c, "vol", "", protocol.NameLen)
	rest := want[len(first.Names):]
	if first.RestBytes != uint64(protocol.ObjectList{Names: rest}.Len()) {
		t.Errorf("first page of %d names: rest hint %d bytes", len(first.Names), first.RestBytes)
	}
	if l, _ := listPage(t, c, "vol", first.Names[len(first.Names)-1], first.RestBytes); !slices.Equal(l.Names, rest) || l.More {
		t.Errorf("LIST after the first page, the hinted size: %d names, more %v", len(l.Names), l.More)
	}
	if got, pages := listAll(t, c, "vol", 1<<20); !slices.Equal(got, want) || pages != 1 {
		t.Errorf("LIST vol in %d pages of 1 MiB: %d names", pages, len(got))
	}
	if got, _ := listAll(t, c, "", 1<<20); len(got) != len(want)+1 || got[0] != "other" {
		t.Errorf("LIST of everything: %q", got)
	}
	if got, _ := listAll(t, c, "vol11", 1<<20); !slices.Equal(got, want[110:120]) {
		t.Errorf("LIST vol11: %q", got)
	}
	if got, _ := listAll(t, c, "nomatch", protocol.NameLen); len(got) != 0 {
		t.Errorf("LIST nomatch: %q", got)
	}
	// A start-after name that is not an object: the page starts after it.
	if l, _ := listPage(t, c, "vol", "vol0505", 1<<20); len(l.Names) == 0 || l.Names[0] != "vol051" {
		t.Errorf("LIST after vol0505: %q", l.Names[:min(3, len(l.Names))])
	}
}

// TestListBadInput: hostile prefixes and payloads are EINVAL, a buffer
// too small for one name ENOBUFS with the size it needs.
func TestListBadInput(t *testing.T) {
	h := newHost(t)
	c, _ := h.blocker(t, 1, blocker.Options{Owner: "host_1"})
	name := strings.Repeat("n", 250)
	c.MustDo(t, peertest.Req{Op: xseg.OpWrite, Target: name, Size: 1, Data: []byte{1}})
	for _, prefix := range []string{"a/b", "../", "/", "x\x00"} {
		_, rep := listPage(t, c, prefix, "", 4096)
		wantErr(t, fmt.Sprintf("LIST %q", prefix), rep, syscall.EINVAL)
	}
	bad := peertest.NameData(t, "x")
	bad[protocol.NameFieldLen+1] = 1 // a name length of 257
	wantErr(t, "LIST with a bad payload", c.MustDo(t, peertest.Req{Op: xseg.OpList, Data: bad}), syscall.EINVAL)
	wantErr(t, "LIST with a short buffer", c.MustDo(t, peertest.Req{Op: xseg.OpList, DataLen: 100}), syscall.EINVAL)
	_, rep := listPage(t, c, "", "", protocol.NameLen)
	wantErr(t, "LIST of a long name into a short buffer", rep, syscall.ENOBUFS)
	if need := uint64(protocol.ListHeaderLen + protocol.ObjectEntryLen(name)); rep.Serviced != need {
		t.Errorf("ENOBUFS serviced = %d, want %d", rep.Serviced, need)
	}
	if got, _ := listAll(t, c, "", uint64(protocol.ListHeaderLen+protocol.ObjectEntryLen(name))); !slices.Equal(got, []string{name}) {
		t.Errorf("LIST with room for exactly one name: %q", got)
	}
	wantErr(t, "still up", c.MustDo(t, peertest.Req{Op: xseg.OpPing}), nil)
}
