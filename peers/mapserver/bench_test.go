package mapserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// BenchmarkSnapshotClone measures SNAPSHOT of a 1 TiB volume and CLONE of
// that snapshot, through the peer (a mapserver and two filed blockers
// over a segment, in this process; maps and data in TMPDIR), with 0, 1
// and 4 GiB of the volume written. Written means copied up: every block
// of the range has an object of its own (created sparse: the data in it
// does not matter to these operations, which write maps only). Each
// iteration makes a fresh volume, untimed. The figures to read are
// snapshot-ms and clone-ms; they must stay well under a second and not
// grow with the data written.
//
//	go test -run '^$' -bench SnapshotClone -benchtime 3x ./peers/mapserver/
func BenchmarkSnapshotClone(b *testing.B) {
	const size = 1 << 40
	for _, written := range []uint64{0, 1 << 30, 4 << 30} {
		b.Run(fmt.Sprintf("written=%dGiB", written>>30), func(b *testing.B) {
			dataDir, mapDir := dirs(b)
			h := newHost(b, dataDir, mapDir, "bench")
			var snapshots, clones time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				vol := fmt.Sprintf("vol%d", i)
				must(b, "create", h.create(vol, size, 0))
				for off := uint64(0); off < written; off += 1 << 30 {
					if _, err := h.mapIO(xseg.OpMapWrite, vol, off, 1<<30); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				must(b, "snapshot", h.snapshot(vol, vol+"-snap"))
				mid := time.Now()
				must(b, "clone", h.clone(vol+"-snap", vol+"-clone", 0))
				snapshots += mid.Sub(start)
				clones += time.Since(mid)
			}
			b.ReportMetric(float64(snapshots.Microseconds())/1000/float64(b.N), "snapshot-ms")
			b.ReportMetric(float64(clones.Microseconds())/1000/float64(b.N), "clone-ms")
		})
	}
}

// BenchmarkMapReadCached measures a MAPR of one 4 KiB block of an open
// volume: a round trip through the segment to the peer and back, with no
// blocker I/O (what vlmcd pays when its own cache misses). The client
// waits on its own port, as vlmcd's event loop does. BenchmarkPing is the
// same round trip with nothing done, the baseline.
func BenchmarkMapReadCached(b *testing.B) {
	dataDir, mapDir := dirs(b)
	h := newHost(b, dataDir, mapDir, "bench")
	must(b, "create", h.create("vol", 1<<40, 0))
	if _, err := h.mapIO(xseg.OpMapWrite, "vol", 0, 64<<20); err != nil {
		b.Fatal(err)
	}
	c := peertest.NewClient(b, h.seg, mapperPort)
	reads := h.maps.count(xseg.OpRead)
	for i := 0; b.Loop(); i++ {
		rep, err := c.Do(peertest.Req{Op: xseg.OpMapRead, Target: "vol", Offset: uint64(i%32) << 21, Size: 4096, DataLen: uint64(protocol.MapLen(1))})
		if err != nil || rep.Err != nil {
			b.Fatal(err, rep.Err)
		}
	}
	if h.maps.count(xseg.OpRead) != reads {
		b.Fatal("MAPR of an open volume read the map blocker")
	}
}

func BenchmarkPing(b *testing.B) {
	dataDir, mapDir := dirs(b)
	h := newHost(b, dataDir, mapDir, "bench")
	c := peertest.NewClient(b, h.seg, mapperPort)
	for b.Loop() {
		if rep, err := c.Do(peertest.Req{Op: xseg.OpPing, Target: "vol"}); err != nil || rep.Err != nil {
			b.Fatal(err, rep.Err)
		}
	}
}
