package latency

import (
	"fmt"
	"time"
)

// Meter keeps the clock and counts of one closed-loop run. The loop counts
// each completed round trip with Done and calls Tick with a fresh clock
// reading now and then; Tick opens the measured window at the first
// reading after the warm-up and closes it at the first reading Duration
// later, so ops/s is the exact ratio of round trips to time between two
// readings. A Meter belongs to one goroutine, except Now, which any may call.
type Meter struct {
	base     time.Time
	warmup   int64
	duration int64

	ops       uint64
	measuring bool
	openNs    int64
	openOps   uint64
	closeNs   int64
	closeOps  uint64

	Latencies Recorder
}

// NewMeter starts a run's clock.
func NewMeter(warmup, duration time.Duration) *Meter {
	return &Meter{base: time.Now(), warmup: int64(warmup), duration: int64(duration)}
}

// Now returns nanoseconds since the run began, always positive so that 0
// can mean "not timed". It reads only the monotonic clock.
func (m *Meter) Now() int64 { return int64(time.Since(m.base)) + 1 }

// Done counts n completed round trips.
func (m *Meter) Done(n int) { m.ops += uint64(n) }

// Tick takes a clock reading and reports whether the run should go on.
func (m *Meter) Tick(now int64) bool {
	if !m.measuring {
		if now < m.warmup {
			return true
		}
		m.measuring, m.openNs, m.openOps = true, now, m.ops
	}
	if now-m.openNs < m.duration {
		return true
	}
	m.closeNs, m.closeOps = now, m.ops
	return false
}

// Record adds the latency of a timed request; only requests completed
// inside the window count.
func (m *Meter) Record(submitNs, replyNs int64) {
	if m.measuring && submitNs > 0 {
		m.Latencies.Record(time.Duration(replyNs - submitNs))
	}
}

// Result is what a run reports, the same fields for every benchmark tool
// of the project, so scripts can put them side by side.
type Result struct {
	Mode            string  `json:"mode"`
	IODepth         int     `json:"iodepth"`
	SizeBytes       int     `json:"size"`
	DurationSeconds float64 `json:"duration_s"`
	Ops             uint64  `json:"ops"`
	OpsPerSec       float64 `json:"ops_per_sec"`
	MiBPerSec       float64 `json:"mib_per_sec"`
	P50Micros       float64 `json:"p50_us"`
	P99Micros       float64 `json:"p99_us"`
	P999Micros      float64 `json:"p999_us"`
	Errors          uint64  `json:"errors"`
	Samples         uint64  `json:"latency_samples"`
	SampleEvery     int     `json:"latency_sample_every"`
}

// Result summarises the measured window.
func (m *Meter) Result(mode string, iodepth, sizeBytes, sampleEvery int) Result {
	seconds := float64(m.closeNs-m.openNs) / 1e9
	ops := m.closeOps - m.openOps
	micros := func(p float64) float64 { return float64(m.Latencies.Percentile(p)) / float64(time.Microsecond) }
	return Result{
		Mode: mode, IODepth: iodepth, SizeBytes: sizeBytes, DurationSeconds: seconds,
		Ops: ops, OpsPerSec: float64(ops) / seconds, MiBPerSec: float64(ops) * float64(sizeBytes) / seconds / (1 << 20),
		P50Micros: micros(50), P99Micros: micros(99), P999Micros: micros(99.9),
		Samples: m.Latencies.Count(), SampleEvery: sampleEvery,
	}
}

// Text is the human form of a result.
func (r Result) Text() string {
	s := fmt.Sprintf("%-6s iodepth %-4d size %-8d %12.0f ops/s", r.Mode, r.IODepth, r.SizeBytes, r.OpsPerSec)
	if r.SizeBytes > 0 {
		s += fmt.Sprintf(" %9.1f MiB/s", r.MiBPerSec)
	}
	s += fmt.Sprintf("   p50 %.2f µs  p99 %.2f µs  p99.9 %.2f µs", r.P50Micros, r.P99Micros, r.P999Micros)
	if r.Errors > 0 {
		s += fmt.Sprintf("   %d errors", r.Errors)
	}
	return s
}

// Sampler picks which requests to time: every N-th submitted. Requests are
// interchangeable and nothing in the loops recurs with period N, so the
// systematic sample is as good as a random one and cheaper.
type Sampler struct{ every, left int }

// NewSampler times one request in every.
func NewSampler(every int) *Sampler { return &Sampler{every: every, left: 1} }

// Next reports whether to time the request about to be submitted.
func (s *Sampler) Next() bool {
	if s.left--; s.left > 0 {
		return false
	}
	s.left = s.every
	return true
}

// Ops returns the round trips counted so far, warm-up included.
func (m *Meter) Ops() uint64 { return m.ops }
