package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares b with testdata/name (hex, 32 bytes a line).
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < len(b); i += 32 {
		sb.WriteString(hex.EncodeToString(b[i:min(i+32, len(b))]) + "\n")
	}
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if sb.String() != string(want) {
		t.Errorf("%s differs from the golden bytes:\n%s", name, sb.String())
	}
}

func TestNameAndInfo(t *testing.T) {
	b := bytes.Repeat([]byte{0xff}, NameLen)
	if err := EncodeName(b, "vol1_snap"); err != nil {
		t.Fatal(err)
	}
	golden(t, "name.hex", b)
	if got, err := DecodeName(b); err != nil || got != "vol1_snap" {
		t.Fatalf("DecodeName = %q, %v", got, err)
	}
	if err := EncodeName(b, strings.Repeat("x", 257)); !errors.Is(err, ErrBadPayload) {
		t.Errorf("long name: %v", err)
	}
	if _, err := DecodeName(b[:NameLen-1]); !errors.Is(err, ErrBadPayload) {
		t.Errorf("short buffer: %v", err)
	}
	b[NameFieldLen] = 0xff // length 255 -> fine; make it 511
	b[NameFieldLen+1] = 1
	if _, err := DecodeName(b); !errors.Is(err, ErrBadPayload) {
		t.Errorf("name length 511: %v", err)
	}
	info := make([]byte, InfoLen)
	EncodeInfo(info, 10<<30)
	golden(t, "info.hex", info)
	if n, err := DecodeInfo(info); err != nil || n != 10<<30 {
		t.Fatalf("DecodeInfo = %d, %v", n, err)
	}
}

func TestClone(t *testing.T) {
	b := make([]byte, CloneLen)
	c := Clone{Parent: "image-snap", Size: 20 << 30}
	if err := EncodeClone(b, c); err != nil {
		t.Fatal(err)
	}
	golden(t, "clone.hex", b)
	if got, err := DecodeClone(b); err != nil || got != c {
		t.Fatalf("DecodeClone = %+v, %v", got, err)
	}
}

func TestMap(t *testing.T) {
	segs := []Segment{
		{Object: "vol_0000000000000001_0000000000000000", Flags: 0, Offset: 4096, Size: 4190208},
		{Object: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Flags: SegmentZero | SegmentReadOnly, Offset: 0, Size: 4096},
	}
	b := make([]byte, MapLen(len(segs)))
	if err := EncodeMap(b, segs); err != nil {
		t.Fatal(err)
	}
	golden(t, "map.hex", b)
	got, err := DecodeMap(b)
	if err != nil || !reflect.DeepEqual(got, segs) {
		t.Fatalf("DecodeMap = %+v, %v", got, err)
	}
	if err := EncodeMap(b[:MapLen(1)], segs); !errors.Is(err, ErrBadPayload) {
		t.Errorf("map into a short buffer: %v", err)
	}
	b[0] = 3 // claims more segments than the buffer holds
	if _, err := DecodeMap(b); !errors.Is(err, ErrBadPayload) {
		t.Errorf("map with a lying count: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	b := make([]byte, MapLen(1))
	EncodeMap(b, []Segment{{Object: "o", Size: 1}})
	f.Add(b)
	f.Add(make([]byte, CloneLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		if segs, err := DecodeMap(b); err == nil {
			out := make([]byte, MapLen(len(segs)))
			if err := EncodeMap(out, segs); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if again, _ := DecodeMap(out); !reflect.DeepEqual(again, segs) {
				t.Fatal("map does not round-trip")
			}
		}
		if c, err := DecodeClone(b); err == nil {
			out := make([]byte, CloneLen)
			if EncodeClone(out, c) != nil {
				t.Fatal("clone does not re-encode")
			}
		}
		DecodeName(b)
		DecodeInfo(b)
	})
}
