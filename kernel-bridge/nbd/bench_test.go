package nbd

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

// benchBackend serves reads and writes from one flat array with pooled
// buffers, so the benchmarks measure the server, not the backend.
type benchBackend struct {
	data []byte
	pool sync.Pool
}

type benchBuffer struct {
	b    []byte
	pool *sync.Pool
}

func (b *benchBuffer) Bytes() []byte { return b.b }
func (b *benchBuffer) Release()      { b.pool.Put(b) }

func (b *benchBackend) List() ([]string, error)                      { return nil, nil }
func (b *benchBackend) Open(string) (Export, error)                  { return b, nil }
func (b *benchBackend) Size() uint64                                 { return uint64(len(b.data)) }
func (b *benchBackend) Flags() ExportFlags                           { return CanFlush | CanFUA }
func (b *benchBackend) BlockSizes() (_, _, _ uint32)                 { return }
func (b *benchBackend) Close() error                                 { return nil }
func (b *benchBackend) BlockStatus(uint64, uint64) ([]Extent, error) { return nil, nil }

func (b *benchBackend) Buffer(n int) (Buffer, error) {
	buf := b.pool.Get().(*benchBuffer)
	if cap(buf.b) < n {
		buf.b = make([]byte, n)
	}
	buf.b = buf.b[:n]
	return buf, nil
}

func (b *benchBackend) Start(cmd *Command) {
	switch cmd.Type {
	case CmdRead:
		copy(cmd.Buf.Bytes(), b.data[cmd.Offset:])
	case CmdWrite:
		copy(b.data[cmd.Offset:], cmd.Buf.Bytes()[:cmd.Length])
	}
	cmd.Done(nil)
}

// benchIO runs b.N commands of size bytes at queue depth qd over a unix
// socket.
func benchIO(b *testing.B, typ uint16, size, qd int, structured bool) {
	bb := &benchBackend{data: make([]byte, 64<<20)}
	for i := range bb.data {
		bb.data[i] = byte(i | 1)
	}
	bb.pool.New = func() any { return &benchBuffer{pool: &bb.pool} }
	sock, _ := startServer(b, bb, Config{})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	c := &rawClient{t: b, nc: nc}
	c.connect("", structured)

	slots := make(chan struct{}, qd)
	done := make(chan error, 1)
	go func() {
		// Reply reader: header, then data for reads.
		hdrLen := 16
		if structured && typ == CmdRead {
			hdrLen = 28 // chunk header + offset
		}
		hdr := make([]byte, hdrLen)
		data := make([]byte, size)
		for range b.N {
			if _, err := io.ReadFull(nc, hdr); err != nil {
				done <- err
				return
			}
			if typ == CmdRead {
				if _, err := io.ReadFull(nc, data); err != nil {
					done <- err
					return
				}
			}
			<-slots
		}
		done <- nil
	}()
	req := make([]byte, requestHeaderSize+size)
	payload := 0
	if typ == CmdWrite {
		payload = size
	}
	binary.BigEndian.PutUint32(req, magicRequest)
	binary.BigEndian.PutUint16(req[6:], typ)
	binary.BigEndian.PutUint32(req[24:], uint32(size))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		slots <- struct{}{}
		binary.BigEndian.PutUint64(req[8:], uint64(i))
		binary.BigEndian.PutUint64(req[16:], uint64(i*size)%(64<<20-uint64(size)))
		if _, err := nc.Write(req[:requestHeaderSize+payload]); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRead4KQD1(b *testing.B)            { benchIO(b, CmdRead, 4096, 1, false) }
func BenchmarkRead4KQD32(b *testing.B)           { benchIO(b, CmdRead, 4096, 32, false) }
func BenchmarkRead4KQD32Structured(b *testing.B) { benchIO(b, CmdRead, 4096, 32, true) }
func BenchmarkWrite4KQD32(b *testing.B)          { benchIO(b, CmdWrite, 4096, 32, false) }
func BenchmarkRead1MQD8(b *testing.B)            { benchIO(b, CmdRead, 1<<20, 8, true) }
func BenchmarkWrite1MQD8(b *testing.B)           { benchIO(b, CmdWrite, 1<<20, 8, false) }
