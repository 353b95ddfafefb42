package protocol

// VolumeInfoLen is the size of mapperd's INFO reply for a client that
// gives room for it: struct { uint64 size; uint64 blocksize; }, 16 bytes.
// Its first 8 bytes are struct xseg_reply_info, so a client of the original
// protocol, whose buffer holds InfoLen bytes, reads the size alone.
const VolumeInfoLen = 16

// VolumeInfo is what mapperd's INFO tells of a volume.
type VolumeInfo struct {
	Size uint64 // bytes
	// BlockSize is the size of the volume's objects: the unit its map
	// maps (4 MiB unless chosen at creation).
	BlockSize uint64
}

// EncodeVolumeInfo writes v into b: the size alone if b holds fewer than
// VolumeInfoLen bytes (but at least InfoLen), both fields otherwise. It
// returns how many bytes it wrote.
func EncodeVolumeInfo(b []byte, v VolumeInfo) (int, error) {
	if err := EncodeInfo(b, v.Size); err != nil {
		return 0, err
	}
	if len(b) < VolumeInfoLen {
		return InfoLen, nil
	}
	le.PutUint64(b[InfoLen:], v.BlockSize)
	return VolumeInfoLen, nil
}

// DecodeVolumeInfo reads an INFO reply of InfoLen or VolumeInfoLen bytes;
// BlockSize is 0 when b holds the size alone.
func DecodeVolumeInfo(b []byte) (VolumeInfo, error) {
	size, err := DecodeInfo(b)
	if err != nil {
		return VolumeInfo{}, err
	}
	v := VolumeInfo{Size: size}
	if len(b) >= VolumeInfoLen {
		v.BlockSize = le.Uint64(b[InfoLen:])
	}
	return v, nil
}
