package protocol

// VolumeInfoLen is the size of mapperd's INFO reply for a client that
// gives room for it: struct { uint64 size; uint64 blocksize; uint64 flags; },
// 24 bytes. Its first 8 bytes are struct xseg_reply_info, so a client of
// the original protocol, whose buffer holds InfoLen bytes, reads the size
// alone; a buffer of 16 bytes gets the size and the block size.
const VolumeInfoLen = 24

// VolumeReadOnly is the flag of a snapshot or an image in VolumeInfo.
const VolumeReadOnly uint64 = 1

// VolumeInfo is what mapperd's INFO tells of a volume.
type VolumeInfo struct {
	Size uint64 // bytes
	// BlockSize is the size of the volume's objects: the unit its map
	// maps (4 MiB unless chosen at creation).
	BlockSize uint64
	// Flags: VolumeReadOnly.
	Flags uint64
}

// ReadOnly reports whether the volume takes no writes (a snapshot).
func (v VolumeInfo) ReadOnly() bool { return v.Flags&VolumeReadOnly != 0 }

// EncodeVolumeInfo writes as much of v as b holds (at least InfoLen bytes:
// the size; 16: and the block size; 24: and the flags). It returns how
// many bytes it wrote.
func EncodeVolumeInfo(b []byte, v VolumeInfo) (int, error) {
	if err := EncodeInfo(b, v.Size); err != nil {
		return 0, err
	}
	if len(b) < 2*InfoLen {
		return InfoLen, nil
	}
	le.PutUint64(b[InfoLen:], v.BlockSize)
	if len(b) < VolumeInfoLen {
		return 2 * InfoLen, nil
	}
	le.PutUint64(b[2*InfoLen:], v.Flags)
	return VolumeInfoLen, nil
}

// DecodeVolumeInfo reads an INFO reply of 8, 16 or 24 bytes; the fields
// it does not hold are 0.
func DecodeVolumeInfo(b []byte) (VolumeInfo, error) {
	size, err := DecodeInfo(b)
	if err != nil {
		return VolumeInfo{}, err
	}
	v := VolumeInfo{Size: size}
	if len(b) >= 2*InfoLen {
		v.BlockSize = le.Uint64(b[InfoLen:])
	}
	if len(b) >= VolumeInfoLen {
		v.Flags = le.Uint64(b[2*InfoLen:])
	}
	return v, nil
}
