package mapper

import (
	"fmt"
	"testing"
)

// benchVolume is a 1 TiB volume (262144 blocks of 4 MiB) with 4 GiB
// written: 1024 blocks copied up, spread evenly over the volume.
func benchVolume(b *testing.B) *Map {
	m, err := Create("vol", 1<<40, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	stride := m.Len() / 1024
	var cus []CopyUp
	for i := range uint64(1024) {
		_, c, err := MapWrite(m, i*stride*uint64(m.BlockSize), 4096)
		if err != nil {
			b.Fatal(err)
		}
		cus = append(cus, c...)
	}
	if m, err = ApplyCopyUps(m, cus); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSnapshot: the in-memory snapshot of a 1 TiB volume with 4 GiB
// written (the storage I/O is BenchmarkSnapshotPlan).
func BenchmarkSnapshot(b *testing.B) {
	m := benchVolume(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Snapshot(m, "snap", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotDense is the baseline the chunked table was chosen
// against: the same snapshot over one dense []Entry.
func BenchmarkSnapshotDense(b *testing.B) {
	m := benchVolume(b)
	dense := make([]Entry, m.Len())
	for i, e := range m.All() {
		dense[i] = e
	}
	b.ReportAllocs()
	for b.Loop() {
		src := make([]Entry, len(dense))
		copy(src, dense)
		for i := range src {
			src[i].Flags &^= EntryWritable
		}
		snap := make([]Entry, len(src))
		copy(snap, src)
		_ = snap
	}
}

// BenchmarkClone: cloning the snapshot of that volume, to 1 TiB and to
// 2 TiB.
func BenchmarkClone(b *testing.B) {
	r, err := Snapshot(benchVolume(b), "snap", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []uint64{1 << 40, 2 << 40} {
		b.Run(fmt.Sprintf("%dTiB", size>>40), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Clone(r.Snapshot, "clone", size, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshotWritten shows that the snapshot's cost does not grow
// with the data written.
func BenchmarkSnapshotWritten(b *testing.B) {
	for _, blocks := range []uint64{0, 1024, 16384, 262144} {
		b.Run(fmt.Sprintf("%dGiB", blocks*4>>10), func(b *testing.B) {
			m, _ := Create("vol", 1<<40, 0, nil)
			if blocks > 0 {
				_, cus, err := MapWrite(m, 0, blocks*uint64(m.BlockSize))
				if err != nil {
					b.Fatal(err)
				}
				if m, err = ApplyCopyUps(m, cus); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Snapshot(m, "snap", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshotPlan: encoding the snapshot's storage I/O (32 MiB of
// snapshot map for 1 TiB, and the source's changed entries).
func BenchmarkSnapshotPlan(b *testing.B) {
	r, err := Snapshot(benchVolume(b), "snap", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := r.Plan(); len(p.Phases) != 4 {
			b.Fatal(len(p.Phases))
		}
	}
}

// BenchmarkMapRead and BenchmarkMapWrite: the MAPR/MAPW path of a 4 KiB
// I/O on a written block.
func BenchmarkMapRead(b *testing.B) {
	m := benchVolume(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MapRead(m, 0, 4096); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMapWrite(b *testing.B) {
	m := benchVolume(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, cus, err := MapWrite(m, 0, 4096); err != nil || len(cus) != 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyUp: MapWrite of a shared block, its plan, and applying it to
// the 1 TiB map.
func BenchmarkCopyUp(b *testing.B) {
	r, err := Snapshot(benchVolume(b), "snap", nil)
	if err != nil {
		b.Fatal(err)
	}
	m := r.Source
	b.ReportAllocs()
	for b.Loop() {
		_, cus, err := MapWrite(m, 0, 4096)
		if err != nil || len(cus) != 1 {
			b.Fatal(err)
		}
		_ = CopyUpPlan(m, cus)
		if _, err := ApplyCopyUps(m, cus); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeV2: loading the 32 MiB map of a 1 TiB volume.
func BenchmarkDecodeV2(b *testing.B) {
	m := benchVolume(b)
	data, err := EncodeEntries(nil, m, 0, m.Len())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeV2("vol", m.Header, data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate: a thin 1 TiB volume, and its memory.
func BenchmarkCreate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Create("vol", 1<<40, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}
