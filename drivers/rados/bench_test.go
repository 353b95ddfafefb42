//go:build ceph

package rados

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers/drivertest"
)

// The benchmarks do what "rados bench" does, through this driver: 4 KiB
// objects, 16 operations in flight (16 goroutines, one blocking librados
// call each). Compare with, on the same cluster:
//
//	rados -c CONF -p archipelago bench 10 write -b 4096 -t 16 --no-cleanup
//	rados -c CONF -p archipelago bench 10 rand -t 16
//	rados -c CONF -p archipelago cleanup
//
// or run both side by side, with the ratio:
//
//	go test -tags 'ceph pacific' -run TestCompareRadosBench -rados.compare 10s ./drivers/rados/

const (
	benchObjectBytes = 4096
	benchDepth       = 16
	benchReadObjects = 4096
)

var compareFor = flag.Duration("rados.compare", 0,
	"run TestCompareRadosBench, each phase for this long")

// runDepth runs op(i) for i in [0, n) from benchDepth goroutines, stopping
// early when stop closes; it returns how many ran.
func runDepth(n int64, stop <-chan struct{}, op func(i int64) error) (int64, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range benchDepth {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return min(next.Load(), n), firstErr
}

func BenchmarkWrite4K(b *testing.B) {
	s := openStore(b, "bench")
	ctx := context.Background()
	data := pattern(benchObjectBytes, 1)
	b.SetBytes(benchObjectBytes)
	b.ResetTimer()
	_, err := runDepth(int64(b.N), nil, func(i int64) error {
		return s.Write(ctx, "bench-"+strconv.FormatInt(i, 10), data, 0, 0)
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkRead4K(b *testing.B) {
	s := openStore(b, "bench")
	ctx := context.Background()
	data := pattern(benchObjectBytes, 2)
	if _, err := runDepth(benchReadObjects, nil, func(i int64) error {
		return s.Write(ctx, "bench-"+strconv.FormatInt(i, 10), data, 0, 0)
	}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchObjectBytes)
	b.ResetTimer()
	_, err := runDepth(int64(b.N), nil, func(i int64) error {
		buf := make([]byte, benchObjectBytes)
		return s.Read(ctx, "bench-"+strconv.Itoa(rand.IntN(benchReadObjects)), buf, 0)
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// radosBench runs "rados bench" in namespace ns and returns its average
// IOPS.
func radosBench(t *testing.T, ns string, args ...string) float64 {
	t.Helper()
	cmdArgs := append([]string{"-c", testConf, "-p", testPool, "-N", ns, "bench"}, args...)
	cmdArgs = append(cmdArgs, "--format", "json")
	out, err := exec.Command("rados", cmdArgs...).Output()
	if err != nil {
		t.Fatalf("rados %s: %v", strings.Join(cmdArgs, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var result struct {
		AverageIOPS string `json:"average_iops"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &result); err != nil {
		t.Fatalf("rados bench output: %v: %s", err, out)
	}
	iops, err := strconv.ParseFloat(result.AverageIOPS, 64)
	if err != nil {
		t.Fatalf("rados bench average_iops %q: %v", result.AverageIOPS, err)
	}
	return iops
}

// driverPhase runs op from benchDepth goroutines for d and returns ops/s.
func driverPhase(t *testing.T, d time.Duration, op func(i int64) error) float64 {
	t.Helper()
	stop := make(chan struct{})
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	start := time.Now()
	n, err := runDepth(1<<62, stop, op)
	if err != nil {
		t.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// asyncPhase keeps benchDepth operations in flight on the asynchronous
// path for d, polling q as a blocker port does, and returns ops/s.
// start(i, slot, done) starts operation i on q in slot (0 to
// benchDepth-1), which no other operation in flight uses.
func asyncPhase(t *testing.T, d time.Duration, q *drivertest.QueueDriver, start func(i int64, slot int, done func(error)) error) float64 {
	t.Helper()
	free := make([]int, 0, benchDepth)
	for slot := range benchDepth {
		free = append(free, slot)
	}
	var failed error
	began := time.Now()
	deadline := began.Add(d)
	var n int64
	for ; time.Now().Before(deadline); n++ {
		if err := q.WaitUntil(func() bool { return len(free) > 0 }, time.Second); err != nil {
			t.Fatal(err)
		}
		slot := free[len(free)-1]
		free = free[:len(free)-1]
		if err := start(n, slot, func(err error) {
			if err != nil {
				failed = err
			}
			free = append(free, slot)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.WaitUntil(func() bool { return len(free) == benchDepth }, time.Second); err != nil {
		t.Fatal(err)
	}
	if failed != nil {
		t.Fatal(failed)
	}
	return float64(n) / time.Since(began).Seconds()
}

// TestCompareRadosBench measures this driver against "rados bench" (librados
// aio from C++, the same cluster, the same moment) and logs the ratio. Run
// it with -rados.compare DURATION.
func TestCompareRadosBench(t *testing.T) {
	needCluster(t)
	if *compareFor <= 0 {
		t.Skip("set -rados.compare 10s to compare with rados bench")
	}
	secs := strconv.Itoa(max(1, int(compareFor.Seconds())))
	d := time.Duration(max(1, int(compareFor.Seconds()))) * time.Second

	benchNS := freshNamespace(t)
	baseWrite := radosBench(t, benchNS, secs, "write", "-b", strconv.Itoa(benchObjectBytes), "-t", strconv.Itoa(benchDepth), "--no-cleanup")
	baseRead := radosBench(t, benchNS, secs, "rand", "-t", strconv.Itoa(benchDepth))
	// Free the memstore before the driver's turn.
	if out, err := exec.Command("rados", "-c", testConf, "-p", testPool, "-N", benchNS, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("rados cleanup: %v: %s", err, out)
	}

	s := openStore(t, "bench")
	ctx := context.Background()
	data := pattern(benchObjectBytes, 3)
	var written atomic.Int64
	ourWrite := driverPhase(t, d, func(i int64) error {
		written.Add(1)
		return s.Write(ctx, "bench-"+strconv.FormatInt(i, 10), data, 0, 0)
	})
	objects := int(written.Load())
	ourRead := driverPhase(t, d, func(int64) error {
		buf := make([]byte, benchObjectBytes)
		return s.Read(ctx, "bench-"+strconv.Itoa(rand.IntN(objects)), buf, 0)
	})
	if _, err := runDepth(int64(objects), nil, func(i int64) error {
		return s.Delete(ctx, "bench-"+strconv.FormatInt(i, 10))
	}); err != nil {
		t.Logf("cleanup: %v", err)
	}
	// The asynchronous path, from one goroutine.
	q := newQueue(t, s)
	written.Store(0)
	aioWrite := asyncPhase(t, d, q, func(i int64, _ int, done func(error)) error {
		written.Add(1)
		return q.StartWrite(ctx, "aio-"+strconv.FormatInt(i, 10), data, 0, 0, done)
	})
	objects = int(written.Load())
	bufs := make([][]byte, benchDepth)
	for i := range bufs {
		bufs[i] = make([]byte, benchObjectBytes)
	}
	aioRead := asyncPhase(t, d, q, func(_ int64, slot int, done func(error)) error {
		return q.StartRead(ctx, "aio-"+strconv.Itoa(rand.IntN(objects)), bufs[slot], 0, done)
	})
	if _, err := runDepth(int64(objects), nil, func(i int64) error {
		return s.Delete(ctx, "aio-"+strconv.FormatInt(i, 10))
	}); err != nil {
		t.Logf("cleanup: %v", err)
	}

	report := func(phase string, ours, base float64) string {
		return fmt.Sprintf("%-9s driver %8.0f ops/s   rados bench %8.0f ops/s   ratio %.2f", phase, ours, base, ours/base)
	}
	t.Log("4 KiB objects, 16 in flight, " + d.String() + " per phase:")
	t.Log(report("write", ourWrite, baseWrite))
	t.Log(report("read", ourRead, baseRead))
	t.Log(report("aio write", aioWrite, baseWrite))
	t.Log(report("aio read", aioRead, baseRead))
}
