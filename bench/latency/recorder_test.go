package latency

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBuckets checks that buckets tile the durations without gaps or
// overlaps and that every bucket is narrower than 1/128 of its values.
func TestBuckets(t *testing.T) {
	var wantLow uint64
	for i := 0; i < numBuckets; i++ {
		low, high := bucketBounds(i)
		if low != wantLow {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, wantLow)
		}
		if high < low {
			t.Fatalf("bucket %d: high %d < low %d", i, high, low)
		}
		if width := high - low + 1; width > 1 && float64(width) > float64(low)/subBuckets {
			t.Fatalf("bucket %d [%d,%d] is wider than 1/%d of its values", i, low, high, subBuckets)
		}
		for _, v := range []uint64{low, high, low + (high-low)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		wantLow = high + 1
	}
	if wantLow != 1<<63 {
		t.Fatalf("buckets end at %d, want 2^63", wantLow)
	}
}

func TestEmpty(t *testing.T) {
	var r Recorder
	if r.Percentile(50) != 0 || r.Count() != 0 || r.Mean() != 0 || r.Max() != 0 {
		t.Fatal("empty recorder reports non-zero values")
	}
}

func TestSmallValuesAreExact(t *testing.T) {
	var r Recorder
	for ns := 1; ns <= 100; ns++ {
		r.Record(time.Duration(ns))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {1, 1}, {50, 50}, {99, 99}, {99.9, 100}, {100, 100}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if r.Min() != 1 || r.Max() != 100 || r.Mean() != 50 {
		t.Errorf("min/max/mean = %v/%v/%v, want 1ns/100ns/50ns", r.Min(), r.Max(), r.Mean())
	}
}

// TestPercentilesAgainstSort compares the histogram with exact percentiles
// of a sorted sample spread over six orders of magnitude.
func TestPercentilesAgainstSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]time.Duration, 200000)
	var r Recorder
	for i := range samples {
		// Log-uniform between 100 ns and 100 ms.
		d := time.Duration(math.Exp(math.Log(100) + rng.Float64()*math.Log(1e6)))
		samples[i] = d
		r.Record(d)
	}
	slices.Sort(samples)
	for _, p := range []float64{0, 10, 50, 90, 99, 99.9, 99.99, 100} {
		rank := max(int(math.Ceil(p/100*float64(len(samples)))), 1)
		want := samples[rank-1]
		got := r.Percentile(p)
		if got < want || float64(got-want) > float64(want)/subBuckets {
			t.Errorf("Percentile(%v) = %v, exact %v: off by more than 1/%d", p, got, want, subBuckets)
		}
	}
	if r.Percentile(100) != samples[len(samples)-1] {
		t.Errorf("Percentile(100) = %v, want the maximum %v", r.Percentile(100), samples[len(samples)-1])
	}
}

func TestExtremes(t *testing.T) {
	var r Recorder
	r.Record(-time.Second)
	r.Record(time.Duration(math.MaxInt64))
	if got := r.Percentile(0); got != 0 {
		t.Errorf("negative duration recorded as %v, want 0", got)
	}
	if got := r.Percentile(100); got != math.MaxInt64 {
		t.Errorf("largest duration read back as %v", got)
	}
	if got := r.Percentile(math.NaN()); got != 0 {
		t.Errorf("Percentile(NaN) = %v, want the minimum", got)
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Recorder
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Recorder
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(new(Recorder))
	if merged != all {
		t.Fatal("merging two halves differs from recording everything in one")
	}
}

func BenchmarkRecord(b *testing.B) {
	r := new(Recorder)
	d := time.Duration(0)
	for b.Loop() {
		d += 37
		r.Record(d & (1<<24 - 1))
	}
}
