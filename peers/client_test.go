package peers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/xseg"
)

func TestClientCalls(t *testing.T) {
	opts := xseg.Options{Dir: t.TempDir()}
	if err := xseg.Create("c", xseg.Geometry{Ports: 8, StaticPorts: 4, Requests: 256, BufferBytes: 16 << 20}, opts); err != nil {
		t.Fatal(err)
	}
	seg, err := xseg.Join("c", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Leave()
	server, _ := seg.Bind(1)
	hold := make(chan struct{})
	stopped := make(chan struct{})
	go func() { // echoes the offset as serviced; holds requests of op SYNC until told
		defer close(stopped)
		var held []xseg.Request
		for !server.Interrupted() {
			server.Wait(0)
			for {
				r, ok := server.Accept()
				if !ok {
					break
				}
				if r.Op() == xseg.OpSync {
					held = append(held, r)
					continue
				}
				r.SetServiced(r.Offset())
				server.Respond(r, nil)
			}
			select {
			case <-hold:
				for _, r := range held {
					server.Respond(r, nil)
				}
				held = nil
			default:
			}
		}
	}()
	c, err := NewClient(seg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				r, err := c.Get()
				if err != nil {
					t.Error(err)
					return
				}
				r.Prepare(xseg.OpRead, "x", 0)
				r.SetOffset(uint64(g*1000 + i))
				rep, err := c.Call(context.Background(), r, 1)
				if err != nil || rep.Err() != nil || rep.Serviced() != uint64(g*1000+i) {
					t.Errorf("call %d/%d: %v %v serviced %d", g, i, err, rep.Err(), rep.Serviced())
					return
				}
				c.Put(rep)
			}
		}(g)
	}
	wg.Wait()

	// A call abandoned by its context: the late reply is put back.
	r, _ := c.Get()
	r.Prepare(xseg.OpSync, "x", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, r, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("abandoned call: %v", err)
	}
	close(hold)
	server.Interrupt()
	<-stopped
	deadline := time.Now().Add(2 * time.Second)
	for seg.Report(false).FreeRequests != 256 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if free := seg.Report(false).FreeRequests; free != 256 {
		t.Fatalf("%d free slots after the late reply, want 256", free)
	}
	r, _ = c.Get()
	if _, err := c.Call(context.Background(), r, 3); !errors.Is(err, xseg.ErrPortNotBound) {
		t.Fatalf("call to an unbound port: %v", err)
	}
	c.Put(r)
	c.Close()
}

// BenchmarkClientCall measures one Call round trip to a port served by a
// goroutine of the same process.
func BenchmarkClientCall(b *testing.B) {
	opts := xseg.Options{Dir: b.TempDir()}
	xseg.Create("c", xseg.Geometry{Ports: 8, StaticPorts: 4, Requests: 64, BufferBytes: 16 << 20}, opts)
	seg, _ := xseg.Join("c", opts)
	defer seg.Leave()
	server, _ := seg.Bind(1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for !server.Interrupted() {
			server.Wait(0)
			for r, ok := server.Accept(); ok; r, ok = server.Accept() {
				server.Respond(r, nil)
			}
		}
	}()
	defer func() { server.Interrupt(); <-stopped }()
	c, _ := NewClient(seg)
	defer c.Close()
	r, _ := c.Get()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := c.Call(context.Background(), r, 1)
		if err != nil || rep.Err() != nil {
			b.Fatal(err, rep.Err())
		}
		r = rep
	}
}
