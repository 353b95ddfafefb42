package xseg

import (
	"testing"
)

// BenchmarkRoundTrip measures a request's whole path inside one process:
// submit, accept, respond, receive, with a server goroutine and iodepth 64.
// bench/ipc.sh measures the same path between processes.
func BenchmarkRoundTrip(b *testing.B) {
	s, _ := newSegment(b, Geometry{Ports: 4, StaticPorts: 2, Requests: 1024, BufferBytes: 16 << 20})
	server, _ := s.Bind(0)
	client, _ := s.BindDynamic()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for !server.Interrupted() {
			server.Wait(0)
			for {
				r, ok := server.Accept()
				if !ok {
					break
				}
				server.Respond(r, nil)
			}
		}
	}()
	defer func() { server.Interrupt(); <-stopped }()
	const depth = 64
	for i := 0; i < depth; i++ {
		r, _ := client.Get()
		client.Submit(r, 0)
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		client.Wait(0)
		for {
			r, ok := client.Receive()
			if !ok {
				break
			}
			done++
			client.Submit(r, 0)
		}
	}
}
