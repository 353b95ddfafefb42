// Package latency records request latencies into a fixed-size histogram and
// reads percentiles back from it, cheaply enough to record every request of
// a benchmark running at millions of requests per second.
//
// The histogram is log-linear, after HdrHistogram: durations below 256 ns
// are kept exactly, and above that each power of two is split into 128
// equal buckets, so a reported value is within 1/128 (0.8%) of a recorded
// one. The buckets cover every time.Duration, so nothing overflows; a
// sub-microsecond shared-memory round trip and a multi-second stall are
// both resolved.
package latency

import (
	"math"
	"math/bits"
	"time"
)

const (
	subBucketBits = 7
	subBuckets    = 1 << subBucketBits // buckets per power of two
	// numBuckets covers durations up to 2^63-1 ns: the largest shift is
	// 63-(subBucketBits+1), and each shift adds subBuckets buckets.
	numBuckets = (63-subBucketBits-1)*subBuckets + 2*subBuckets
)

// Recorder is a latency histogram. The zero value is empty and ready to use.
// A Recorder is about 58 KiB, so keep it behind a pointer.
//
// A Recorder is not safe for concurrent use: give each recording goroutine
// its own and Merge them when the run is over.
type Recorder struct {
	counts [numBuckets]uint64
	count  uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

// bucketOf returns the bucket that holds a duration of ns nanoseconds (ns ≥ 0).
// Values below 2*subBuckets map to themselves; above that, the top
// subBucketBits+1 bits select the bucket within the value's power of two.
func bucketOf(ns uint64) int {
	shift := bits.Len64(ns) - (subBucketBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift<<subBucketBits + int(ns>>uint(shift))
}

// bucketBounds returns the smallest and largest duration, in nanoseconds,
// that bucketOf maps to bucket i.
func bucketBounds(i int) (low, high uint64) {
	shift := i>>subBucketBits - 1
	if shift < 0 {
		shift = 0
	}
	mantissa := uint64(i - shift<<subBucketBits)
	low = mantissa << uint(shift)
	return low, low + 1<<uint(shift) - 1
}

// Record adds one latency. Negative durations count as zero. It does not
// allocate and costs a few nanoseconds.
func (r *Recorder) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	r.counts[bucketOf(uint64(d))]++
	if r.count == 0 || d < r.min {
		r.min = d
	}
	if d > r.max {
		r.max = d
	}
	r.count++
	r.sum += d
}

// Count returns how many latencies were recorded.
func (r *Recorder) Count() uint64 { return r.count }

// Min returns the smallest recorded latency, or 0 if none was recorded.
func (r *Recorder) Min() time.Duration { return r.min }

// Max returns the largest recorded latency, or 0 if none was recorded.
func (r *Recorder) Max() time.Duration { return r.max }

// Mean returns the average recorded latency, or 0 if none was recorded.
func (r *Recorder) Mean() time.Duration {
	if r.count == 0 {
		return 0
	}
	return r.sum / time.Duration(r.count)
}

// Percentile returns the latency that p percent of the recorded latencies
// do not exceed: Percentile(50) is the median, Percentile(99.9) the 99.9th
// percentile, Percentile(100) the maximum. p is clamped to [0, 100]. The
// result is the upper edge of the histogram bucket holding that rank
// (within 0.8% above the true value), clamped to the recorded minimum and
// maximum. It returns 0 if nothing was recorded.
func (r *Recorder) Percentile(p float64) time.Duration {
	if r.count == 0 {
		return 0
	}
	if math.IsNaN(p) || p < 0 {
		p = 0
	}
	if p > 100 {
		p = 100
	}
	// The rank of the value we want, counting from 1.
	rank := uint64(math.Ceil(p / 100 * float64(r.count)))
	rank = max(rank, 1)
	rank = min(rank, r.count)
	var seen uint64
	for i, c := range r.counts {
		seen += c
		if seen >= rank {
			_, high := bucketBounds(i)
			d := time.Duration(min(high, math.MaxInt64))
			return max(r.min, min(d, r.max))
		}
	}
	return r.max // unreachable: the counts sum to r.count
}

// Merge adds every latency recorded in other to r.
func (r *Recorder) Merge(other *Recorder) {
	if other.count == 0 {
		return
	}
	for i, c := range other.counts {
		r.counts[i] += c
	}
	if r.count == 0 || other.min < r.min {
		r.min = other.min
	}
	r.max = max(r.max, other.max)
	r.count += other.count
	r.sum += other.sum
}
