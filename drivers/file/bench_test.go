package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchSpan is the object size the benchmarks spread 4 KiB requests over.
const benchSpan = 4 << 20

// BenchmarkRead4K reads 4 KiB blocks of one object through the store and
// reports the time against plain pread(2) on the same file (x-pread).
func BenchmarkRead4K(b *testing.B) {
	s := newStore(b, Options{}, false)
	ctx := b.Context()
	if err := s.Write(ctx, "bench", make([]byte, benchSpan), 0, 0); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.Read(ctx, "bench", p, int64(i*4096%benchSpan)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportBaseline(b, s, "x-pread", func(f *os.File, off int64) error { _, err := f.ReadAt(p, off); return err })
}

// BenchmarkWrite4K writes 4 KiB blocks of one object through the store and
// reports the time against plain pwrite(2) on the same file (x-pwrite).
func BenchmarkWrite4K(b *testing.B) {
	s := newStore(b, Options{}, false)
	ctx := b.Context()
	p := make([]byte, 4096)
	for i := range p {
		p[i] = byte(i)
	}
	if err := s.Write(ctx, "bench", p, 0, 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.Write(ctx, "bench", p, int64(i*4096%benchSpan), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportBaseline(b, s, "x-pwrite", func(f *os.File, off int64) error { _, err := f.WriteAt(p, off); return err })
}

// reportBaseline times b.N plain calls of op on the benchmark's file and
// reports the store's time per call as a multiple of it, in unit.
func reportBaseline(b *testing.B, s *Store, unit string, op func(f *os.File, off int64) error) {
	storeNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	f, err := os.OpenFile(filepath.Join(s.Dir(), fanOut("bench"), "bench"), os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	for i := range b.N {
		if err := op(f, int64(i*4096%benchSpan)); err != nil {
			b.Fatal(err)
		}
	}
	baseNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ReportMetric(storeNs/baseNs, unit)
}
