package protocol

import (
	"errors"
	"testing"
)

func TestVolumeInfo(t *testing.T) {
	v := VolumeInfo{Size: 1 << 40, BlockSize: 4 << 20, Flags: VolumeReadOnly}
	b := make([]byte, VolumeInfoLen)
	if n, err := EncodeVolumeInfo(b, v); err != nil || n != VolumeInfoLen {
		t.Fatalf("EncodeVolumeInfo = %d, %v", n, err)
	}
	golden(t, "volinfo.hex", b)
	if got, err := DecodeVolumeInfo(b); err != nil || got != v {
		t.Fatalf("DecodeVolumeInfo = %+v, %v", got, err)
	}
	// An original client's 8-byte buffer gets the size; the size is what
	// DecodeInfo reads from the long form too.
	short := make([]byte, InfoLen)
	if n, err := EncodeVolumeInfo(short, v); err != nil || n != InfoLen {
		t.Fatalf("EncodeVolumeInfo into 8 bytes = %d, %v", n, err)
	}
	if got, err := DecodeVolumeInfo(short); err != nil || got != (VolumeInfo{Size: v.Size}) {
		t.Fatalf("DecodeVolumeInfo of 8 bytes = %+v, %v", got, err)
	}
	// A buffer of the earlier 16-byte form gets size and block size.
	mid := make([]byte, 16)
	if n, err := EncodeVolumeInfo(mid, v); err != nil || n != 16 {
		t.Fatalf("EncodeVolumeInfo into 16 bytes = %d, %v", n, err)
	}
	if got, err := DecodeVolumeInfo(mid); err != nil || got != (VolumeInfo{Size: v.Size, BlockSize: v.BlockSize}) || got.ReadOnly() {
		t.Fatalf("DecodeVolumeInfo of 16 bytes = %+v, %v", got, err)
	}
	if size, _ := DecodeInfo(b); size != v.Size {
		t.Errorf("DecodeInfo of the long form = %d", size)
	}
	if _, err := EncodeVolumeInfo(make([]byte, 7), v); !errors.Is(err, ErrBadPayload) {
		t.Errorf("7-byte buffer: %v", err)
	}
	if _, err := DecodeVolumeInfo(make([]byte, 7)); !errors.Is(err, ErrBadPayload) {
		t.Errorf("decode 7 bytes: %v", err)
	}
}
