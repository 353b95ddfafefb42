package mapper

import (
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestCandidates pins which object names LIST reads as possible map
// headers, and under which volume name.
func TestCandidates(t *testing.T) {
	content := strings.Repeat("ab", 32)
	names := slices.Sorted(slices.Values([]string{
		"vol", "vol_lock", "vol_hash", "vol_0000000000000000", "vol_0000000000000002_0000000000000007",
		"snap1", content, legacyPrefix + content, ZeroObject,
		legacyPrefix + "old",                      // a map of Archipelago ≤ 0.3: lists as "old"
		legacyPrefix + "vol",                      // "vol" exists: a map of its own name
		legacyPrefix + "x_lock",                   // a side object
		"my vol",                                  // the original allowed spaces
		"VOL_0123456789ABCDEF",                    // hex tail in capitals: the shape of a map block too
		strings.Repeat("n", MaxVolumeNameLen),     // the longest volume name
		strings.Repeat("n", MaxVolumeNameLen+1),   // one over
		"vol_000000000000000",                     // 15 hex digits: a name like any
		"image-with-64-hex-" + content[:46] + "z", // not 64 hex
	}))
	want := []Candidate{
		{"archip_vol", "archip_vol"},
		{"image-with-64-hex-" + content[:46] + "z", "image-with-64-hex-" + content[:46] + "z"},
		{"my vol", "my vol"},
		{strings.Repeat("n", MaxVolumeNameLen), strings.Repeat("n", MaxVolumeNameLen)},
		{"old", "archip_old"},
		{"snap1", "snap1"},
		{"vol", "vol"},
		{"vol_000000000000000", "vol_000000000000000"},
	}
	if got := Candidates(names, "", ""); !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates:\ngot  %q\nwant %q", got, want)
	}
	if got := Candidates(names, "o", ""); !reflect.DeepEqual(got, []Candidate{{"old", "archip_old"}}) {
		t.Errorf("Candidates with prefix o: %q", got)
	}
	if got := Candidates(names, "", "snap1"); !reflect.DeepEqual(got, want[len(want)-2:]) {
		t.Errorf("Candidates after snap1: %q", got)
	}
	if got := Candidates(names, "vol", "vol"); !reflect.DeepEqual(got, want[len(want)-1:]) {
		t.Errorf("Candidates vol after vol: %q", got)
	}
	if got := Candidates(nil, "", ""); len(got) != 0 {
		t.Errorf("Candidates of nothing: %q", got)
	}
	for _, name := range slices.Concat(names, []string{"", "a/b", "x\x00", "a_hash", "_0123456789abcdef"}) {
		if want := CheckName(name) == nil && checkShape(name) == nil; mayBeHeader(name) != want {
			t.Errorf("mayBeHeader(%q) = %v, CheckName and checkShape say %v", name, !want, want)
		}
	}
}

// TestListHeader: live v2 and v1 maps are listed, deleted maps and other
// objects are not, a corrupt v2 header is an error.
func TestListHeader(t *testing.T) {
	live := Header{Version: V2, Size: 8 << 20, BlockSize: DefaultBlockSize, Flags: MapReadOnly, Epoch: 3}
	if h, ok, err := ListHeader(EncodeHeader(live)); err != nil || !ok || h != live {
		t.Errorf("live v2: %+v %v %v", h, ok, err)
	}
	deleted := live
	deleted.Flags = MapDeleted
	if _, ok, err := ListHeader(EncodeHeader(deleted)); err != nil || ok {
		t.Errorf("deleted v2: listed %v, %v", ok, err)
	}
	v1 := v1Bytes(10<<20, append([]byte{1}, digest("a")...))
	if h, ok, err := ListHeader(v1[:HeaderLen]); err != nil || !ok || h.Version != V1 || h.Size != 10<<20 {
		t.Errorf("v1: %+v %v %v", h, ok, err)
	}
	entry := make([]byte, EntryLen)
	if err := EncodeEntry(entry, Entry{Name: "vol_0000000000000001_0000000000000000", Flags: EntryWritable | EntryArchip}); err != nil {
		t.Fatal(err)
	}
	zero, _ := hex.DecodeString(ZeroObject)
	for what, area := range map[string][]byte{
		"nothing":   make([]byte, HeaderLen),
		"short":     {1, 0},
		"map block": entry[:HeaderLen],
		"data":      zero,
	} {
		if h, ok, err := ListHeader(area); ok || err != nil {
			t.Errorf("%s: listed %+v %v, %v", what, h, ok, err)
		}
	}
	bad := EncodeHeader(live)
	bad[19] = 3 // block size 3
	if _, ok, err := ListHeader(bad); ok || !errors.Is(err, ErrBadFormat) {
		t.Errorf("corrupt v2: listed %v, %v; want ErrBadFormat", ok, err)
	}
}
