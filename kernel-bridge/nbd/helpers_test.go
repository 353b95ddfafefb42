package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// script builds what a client sends.
type script struct{ bytes.Buffer }

func (s *script) u16(v uint16) *script { s.Write(binary.BigEndian.AppendUint16(nil, v)); return s }
func (s *script) u32(v uint32) *script { s.Write(binary.BigEndian.AppendUint32(nil, v)); return s }
func (s *script) u64(v uint64) *script { s.Write(binary.BigEndian.AppendUint64(nil, v)); return s }

func (s *script) opt(opt uint32, data []byte) *script {
	s.u64(magicOpt).u32(opt).u32(uint32(len(data)))
	s.Write(data)
	return s
}

func infoData(name string, infos ...uint16) []byte {
	var d script
	d.u32(uint32(len(name)))
	d.WriteString(name)
	d.u16(uint16(len(infos)))
	for _, i := range infos {
		d.u16(i)
	}
	return d.Bytes()
}

func metaData(name string, queries ...string) []byte {
	var d script
	d.u32(uint32(len(name)))
	d.WriteString(name)
	d.u32(uint32(len(queries)))
	for _, q := range queries {
		d.u32(uint32(len(q)))
		d.WriteString(q)
	}
	return d.Bytes()
}

func (s *script) req(flags, typ uint16, handle, off uint64, length uint32, payload []byte) *script {
	s.u32(magicRequest).u16(flags).u16(typ).u64(handle).u64(off).u32(length)
	s.Write(payload)
	return s
}

// goScript is the usual start of a session: fixed newstyle, structured
// replies and base:allocation when structured, then NBD_OPT_GO.
func goScript(name string, structured bool) *script {
	s := new(script)
	s.u32(clientFixedNewstyle)
	if structured {
		s.opt(optStructuredReply, nil)
		s.opt(optSetMetaContext, metaData(name, metaBaseAllocation))
	}
	s.opt(optGo, infoData(name, infoBlockSize))
	return s
}

// fakeConn is a net.Conn whose input is a fixed byte stream and whose
// output is collected; deadlines are ignored.
type fakeConn struct {
	r   io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

func (f *fakeConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// runScript serves one connection whose client sends in, and returns what
// the server wrote.
func runScript(t testing.TB, b Backend, in []byte) ([]byte, error) {
	srv := NewServer(b, Config{Log: testLog()})
	srv.inlineBlockStatus = true
	fc := &fakeConn{r: bytes.NewReader(in)}
	err := srv.ServeConn(fc)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return bytes.Clone(fc.out.Bytes()), err
}

// startServer serves b on a unix socket in a temporary directory until the
// test ends; it returns the socket path.
func startServer(t testing.TB, b Backend, cfg Config) (string, *Server) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log == nil {
		cfg.Log = testLog()
	}
	srv := NewServer(b, cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return sock, srv
}

// rawClient speaks the protocol by hand, for the cases real clients will
// not produce.
type rawClient struct {
	t  testing.TB
	nc net.Conn
}

func dialRaw(t testing.TB, sock string) *rawClient {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, nc: nc}
}

func (c *rawClient) send(s *script) {
	c.t.Helper()
	if _, err := c.nc.Write(s.Bytes()); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *rawClient) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.nc, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func (c *rawClient) greeting() {
	c.t.Helper()
	g := c.read(18)
	if binary.BigEndian.Uint64(g) != magicInit || binary.BigEndian.Uint64(g[8:]) != magicOpt {
		c.t.Fatalf("bad greeting % x", g)
	}
}

type optReplyMsg struct {
	opt, typ uint32
	data     []byte
}

func (c *rawClient) optReply() optReplyMsg {
	c.t.Helper()
	h := c.read(20)
	if m := binary.BigEndian.Uint64(h); m != magicOptReply {
		c.t.Fatalf("bad option reply magic %#x", m)
	}
	r := optReplyMsg{opt: binary.BigEndian.Uint32(h[8:]), typ: binary.BigEndian.Uint32(h[12:])}
	r.data = c.read(int(binary.BigEndian.Uint32(h[16:])))
	return r
}

// goReplies reads option replies up to the final one and returns them.
func (c *rawClient) untilFinal() []optReplyMsg {
	c.t.Helper()
	var all []optReplyMsg
	for {
		r := c.optReply()
		all = append(all, r)
		if r.typ == repAck || r.typ&(1<<31) != 0 {
			return all
		}
	}
}

// connect does the handshake of goScript and returns the export size and
// transmission flags.
func (c *rawClient) connect(name string, structured bool) (uint64, uint16) {
	c.t.Helper()
	c.greeting()
	c.send(goScript(name, structured))
	if structured {
		if r := c.optReply(); r.typ != repAck {
			c.t.Fatalf("STRUCTURED_REPLY: reply %#x", r.typ)
		}
		rs := c.untilFinal()
		if len(rs) != 2 || rs[0].typ != repMetaContext || rs[1].typ != repAck {
			c.t.Fatalf("SET_META_CONTEXT replies %+v", rs)
		}
	}
	var size uint64
	var flags uint16
	for _, r := range c.untilFinal() {
		if r.typ&(1<<31) != 0 {
			c.t.Fatalf("GO failed: %#x %s", r.typ, r.data)
		}
		if r.typ == repInfo && binary.BigEndian.Uint16(r.data) == infoExport {
			size, flags = binary.BigEndian.Uint64(r.data[2:]), binary.BigEndian.Uint16(r.data[10:])
		}
	}
	return size, flags
}

// reply is one decoded simple reply or structured chunk.
type reply struct {
	structured bool
	flags      uint16
	typ        uint16
	handle     uint64
	errno      uint32
	payload    []byte // chunk payload, or simple-reply data
}

func (r reply) String() string {
	return fmt.Sprintf("{structured:%v flags:%d type:%d handle:%d errno:%d payload:%d bytes}", r.structured, r.flags, r.typ, r.handle, r.errno, len(r.payload))
}

// readReply reads one simple reply (with dataLen bytes of data when it
// reports success) or one structured chunk.
func (c *rawClient) readReply(dataLen int) reply {
	c.t.Helper()
	h := c.read(4)
	switch m := binary.BigEndian.Uint32(h); m {
	case magicSimpleReply:
		rest := c.read(12)
		r := reply{errno: binary.BigEndian.Uint32(rest), handle: binary.BigEndian.Uint64(rest[4:])}
		if r.errno == 0 && dataLen > 0 {
			r.payload = c.read(dataLen)
		}
		return r
	case magicStructReply:
		rest := c.read(16)
		r := reply{structured: true, flags: binary.BigEndian.Uint16(rest), typ: binary.BigEndian.Uint16(rest[2:]),
			handle: binary.BigEndian.Uint64(rest[4:])}
		r.payload = c.read(int(binary.BigEndian.Uint32(rest[12:])))
		if r.typ&(1<<15) != 0 {
			r.errno = binary.BigEndian.Uint32(r.payload)
		}
		return r
	default:
		c.t.Fatalf("bad reply magic %#x", m)
		return reply{}
	}
}

// readStructured reads the chunks of one structured reply up to DONE.
func (c *rawClient) readStructured() []reply {
	c.t.Helper()
	var rs []reply
	for {
		r := c.readReply(0)
		rs = append(rs, r)
		if !r.structured || r.flags&replyFlagDone != 0 {
			return rs
		}
	}
}

// pattern fills n bytes with a pattern that depends on the offset, so a
// misplaced block shows.
func pattern(off uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		x := off + uint64(i)
		p[i] = byte(x*7 + x>>9 + 1)
	}
	return p
}
