// Package peertest owns what the peers' tests share: a small segment in a
// temporary directory, and a client that sends one request at a time.
package peertest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Geometry is a segment small enough for tests.
var Geometry = xseg.Geometry{Ports: 32, StaticPorts: 8, Requests: 512, BufferBytes: 64 << 20}

// Segment creates a segment named "test" in a temporary directory, joins
// it and returns it with the directory. It is left when the test ends.
func Segment(t testing.TB) (*xseg.Segment, string) {
	t.Helper()
	dir := t.TempDir()
	if err := xseg.Create("test", Geometry, xseg.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	s, err := xseg.Join("test", xseg.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Leave() })
	return s, dir
}

// Timeout bounds how long a client waits for one reply.
const Timeout = 10 * time.Second

// Client sends requests to one port from a dynamic port of its own.
type Client struct {
	Port *xseg.Port
	Dst  int
}

// NewClient binds a dynamic port of s to send to dst.
func NewClient(t testing.TB, s *xseg.Segment, dst int) *Client {
	t.Helper()
	p, err := s.BindDynamic()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Release() })
	return &Client{Port: p, Dst: dst}
}

// Req is one request to send.
type Req struct {
	Op     xseg.Op
	Target string
	Offset uint64
	Size   uint64
	Flags  xseg.Flags
	// Data is copied into the request's buffer.
	Data []byte
	// DataLen is the buffer's length; max(len(Data), Size) when 0.
	DataLen uint64
}

// Reply is what came back.
type Reply struct {
	Err      error  // nil if served, else the errno or xseg.ErrPeerDied
	Serviced uint64 // bytes the server did
	Data     []byte // a copy of the data buffer
}

// Submit prepares and submits req; the reply comes back to c.Port.
func (c *Client) Submit(req Req) (xseg.Request, error) {
	r, err := c.Port.Get()
	if err != nil {
		return r, err
	}
	n := req.DataLen
	if n == 0 {
		n = max(uint64(len(req.Data)), req.Size)
	}
	if err := r.Prepare(req.Op, req.Target, n); err != nil {
		c.Port.Put(r)
		return xseg.Request{}, err
	}
	copy(r.Data(), req.Data)
	r.SetOffset(req.Offset)
	r.SetSize(req.Size)
	r.SetFlags(req.Flags)
	if err := c.Port.Submit(r, c.Dst); err != nil {
		c.Port.Put(r)
		return xseg.Request{}, err
	}
	return r, nil
}

// Receive waits up to Timeout for the next reply, copies it out and puts
// the request back.
func (c *Client) Receive() (Reply, xseg.Request, error) {
	deadline := time.Now().Add(Timeout)
	for {
		if r, ok := c.Port.Receive(); ok {
			rep := Reply{Err: r.Err(), Serviced: r.Serviced(), Data: append([]byte(nil), r.Data()...)}
			return rep, r, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Reply{}, xseg.Request{}, errors.New("no reply within " + Timeout.String())
		}
		c.Port.Wait(left)
	}
}

// Do sends req and waits for its reply.
func (c *Client) Do(req Req) (Reply, error) {
	if _, err := c.Submit(req); err != nil {
		return Reply{}, fmt.Errorf("submit %s %q: %w", req.Op, req.Target, err)
	}
	rep, r, err := c.Receive()
	if err != nil {
		return rep, fmt.Errorf("%s %q: %w", req.Op, req.Target, err)
	}
	c.Port.Put(r)
	return rep, nil
}

// MustDo is Do failing the test on a transport error.
func (c *Client) MustDo(t testing.TB, req Req) Reply {
	t.Helper()
	rep, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// NameData is a name payload (COPY, SNAPSHOT, RENAME) for name.
func NameData(t testing.TB, name string) []byte {
	b := make([]byte, protocol.NameLen)
	if err := protocol.EncodeName(b, name); err != nil {
		t.Fatal(err)
	}
	return b
}

// CloneData is a CLONE payload: parent ("" for a new empty volume) and size.
func CloneData(t testing.TB, parent string, size uint64) []byte {
	b := make([]byte, protocol.CloneLen)
	if err := protocol.EncodeClone(b, protocol.Clone{Parent: parent, Size: size}); err != nil {
		t.Fatal(err)
	}
	return b
}
