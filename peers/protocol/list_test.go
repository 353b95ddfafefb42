package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestObjectList(t *testing.T) {
	l := ObjectList{Names: []string{"vol1", "vol1_0000000000000000", "vol2"}, More: true, RestBytes: 4096}
	b := make([]byte, l.Len())
	if err := EncodeObjectList(b, l); err != nil {
		t.Fatal(err)
	}
	golden(t, "objectlist.hex", b)
	got, err := DecodeObjectList(b)
	if err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("DecodeObjectList = %+v, %v; want %+v", got, err, l)
	}
	// Bytes past the reply (the rest of a larger buffer) are ignored.
	if got, err := DecodeObjectList(append(b, 0xff, 0xff)); err != nil || !reflect.DeepEqual(got, l) {
		t.Errorf("DecodeObjectList with trailing bytes = %+v, %v", got, err)
	}
	empty := make([]byte, ListHeaderLen)
	if err := EncodeObjectList(empty, ObjectList{}); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeObjectList(empty); err != nil || len(got.Names) != 0 || got.More {
		t.Errorf("empty list = %+v, %v", got, err)
	}
}

func TestVolumeList(t *testing.T) {
	l := VolumeList{Volumes: []VolumeEntry{
		{Name: "snap1", VolumeInfo: VolumeInfo{Size: 10 << 30, BlockSize: 4 << 20, Flags: VolumeReadOnly}},
		{Name: "vm1", VolumeInfo: VolumeInfo{Size: 20 << 30, BlockSize: 4 << 20}},
	}}
	b := make([]byte, l.Len())
	if err := EncodeVolumeList(b, l); err != nil {
		t.Fatal(err)
	}
	golden(t, "volumelist.hex", b)
	got, err := DecodeVolumeList(b)
	if err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("DecodeVolumeList = %+v, %v; want %+v", got, err, l)
	}
	if l.Len() != ListHeaderLen+VolumeEntryLen("snap1")+VolumeEntryLen("vm1") || VolumeEntryLen("vm1") != 31 {
		t.Errorf("Len = %d, VolumeEntryLen(vm1) = %d", l.Len(), VolumeEntryLen("vm1"))
	}
}

func TestFit(t *testing.T) {
	names := []string{"a", "bb", "ccc"} // entries of 5, 6 and 7 bytes
	for _, c := range []struct{ room, want int }{
		{0, 0}, {ListHeaderLen, 0}, {ListHeaderLen + 4, 0}, {ListHeaderLen + 5, 1},
		{ListHeaderLen + 10, 1}, {ListHeaderLen + 11, 2}, {ListHeaderLen + 18, 3}, {1 << 20, 3},
	} {
		if got := FitObjects(names, c.room); got != c.want {
			t.Errorf("FitObjects(%d bytes) = %d, want %d", c.room, got, c.want)
		}
	}
	vols := []VolumeEntry{{Name: "a"}, {Name: "b"}}
	if got := FitVolumes(vols, ListHeaderLen+2*VolumeEntryLen("a")-1); got != 1 {
		t.Errorf("FitVolumes = %d, want 1", got)
	}
}

func TestListBad(t *testing.T) {
	for what, l := range map[string]ObjectList{
		"unsorted":          {Names: []string{"b", "a"}},
		"duplicate":         {Names: []string{"a", "a"}},
		"empty name":        {Names: []string{""}},
		"long name":         {Names: []string{strings.Repeat("x", NameFieldLen+1)}},
		"more and no entry": {More: true},
	} {
		if err := EncodeObjectList(make([]byte, 1024), l); !errors.Is(err, ErrBadPayload) {
			t.Errorf("encode %s: %v, want ErrBadPayload", what, err)
		}
	}
	l := ObjectList{Names: []string{"a", "b"}}
	if err := EncodeObjectList(make([]byte, l.Len()-1), l); !errors.Is(err, ErrBadPayload) {
		t.Errorf("encode into a short buffer: %v", err)
	}
	good := make([]byte, l.Len())
	if err := EncodeObjectList(good, l); err != nil {
		t.Fatal(err)
	}
	for what, edit := range map[string]func(b []byte) []byte{
		"short header":      func(b []byte) []byte { return b[:ListHeaderLen-1] },
		"lying count":       func(b []byte) []byte { b[0] = 3; return b },
		"huge count":        func(b []byte) []byte { b[3] = 0xff; return b },
		"name past the end": func(b []byte) []byte { b[ListHeaderLen] = 200; return b },
		"unsorted":          func(b []byte) []byte { b[ListHeaderLen+4] = 'c'; return b },
		"empty name":        func(b []byte) []byte { b[ListHeaderLen] = 0; return b },
		"more and no entry": func(b []byte) []byte { b[0], b[4] = 0, 1; return b },
	} {
		b := edit(append([]byte(nil), good...))
		if got, err := DecodeObjectList(b); !errors.Is(err, ErrBadPayload) {
			t.Errorf("decode %s: %+v, %v; want ErrBadPayload", what, got, err)
		}
	}
	v := make([]byte, ListHeaderLen+VolumeInfoLen)
	v[0] = 1 // one entry, cut after its VolumeInfo
	if got, err := DecodeVolumeList(v); !errors.Is(err, ErrBadPayload) {
		t.Errorf("decode a volume entry without its name: %+v, %v", got, err)
	}
}

func FuzzDecodeList(f *testing.F) {
	objs := ObjectList{Names: []string{"a", "b"}, More: true, RestBytes: 9}
	b := make([]byte, objs.Len())
	EncodeObjectList(b, objs)
	f.Add(b)
	vols := VolumeList{Volumes: []VolumeEntry{{Name: "v", VolumeInfo: VolumeInfo{Size: 1, BlockSize: 4096, Flags: 1}}}}
	b = make([]byte, vols.Len())
	EncodeVolumeList(b, vols)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := DecodeObjectList(b); err == nil {
			out := make([]byte, l.Len())
			if err := EncodeObjectList(out, l); err != nil {
				t.Fatalf("re-encode %+v: %v", l, err)
			}
			if again, err := DecodeObjectList(out); err != nil || !reflect.DeepEqual(again, l) {
				t.Fatalf("object list does not round-trip: %+v, %v", again, err)
			}
		}
		if l, err := DecodeVolumeList(b); err == nil {
			out := make([]byte, l.Len())
			if err := EncodeVolumeList(out, l); err != nil {
				t.Fatalf("re-encode %+v: %v", l, err)
			}
			if again, err := DecodeVolumeList(out); err != nil || !reflect.DeepEqual(again, l) {
				t.Fatalf("volume list does not round-trip: %+v, %v", again, err)
			}
		}
	})
}
