package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUnknownOptionContinues: an option the server does not know gets
// NBD_REP_ERR_UNSUP and the haggling goes on to a working GO.
func TestUnknownOptionContinues(t *testing.T) {
	b := newMemBackend()
	b.add("disk", 1<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})
	c := dialRaw(t, sock)
	c.greeting()
	s := new(script)
	s.u32(clientFixedNewstyle)
	s.opt(0x7777, []byte("some data the server must skip"))
	s.opt(optStartTLS, nil)
	c.send(s)
	for _, want := range []uint32{0x7777, optStartTLS} {
		if r := c.optReply(); r.opt != want || r.typ != repErrUnsup {
			t.Fatalf("reply to option %#x: %+v", want, r)
		}
	}
	c.send(new(script).opt(optGo, infoData("disk")))
	for _, r := range c.untilFinal() {
		if r.typ&(1<<31) != 0 {
			t.Fatalf("GO after unknown options: %#x %s", r.typ, r.data)
		}
	}
	c.send(new(script).req(0, CmdRead, 7, 0, 512, nil))
	if r := c.readReply(512); r.errno != 0 || r.handle != 7 || len(r.payload) != 512 {
		t.Fatalf("read: %v", r)
	}
}

// TestRefusedRequestsKeepTheStream: refused requests (with payloads the
// server must skip) leave the connection usable.
func TestRefusedRequestsKeepTheStream(t *testing.T) {
	b := newMemBackend()
	d := b.add("disk", 1<<20, memAllFlags)
	b.add("ro", 1<<20, ReadOnly)
	sock, _ := startServer(t, b, Config{MaxRequest: 64 << 10})
	for _, structured := range []bool{false, true} {
		c := dialRaw(t, sock)
		c.connect("disk", structured)
		s := new(script)
		s.req(0, CmdWrite, 1, 1<<20-10, 20, make([]byte, 20))              // past the end: ENOSPC
		s.req(0, CmdWrite, 2, 0, 128<<10, make([]byte, 128<<10))           // too long: EINVAL, payload skipped
		s.req(0, CmdRead, 3, 0, 128<<10, nil)                              // too long
		s.req(0, 99, 4, 0, 0, nil)                                         // unknown command
		s.req(1<<9, CmdFlush, 5, 0, 0, nil)                                // unknown flag
		s.req(0, CmdWrite, 6, 4096, 5, []byte("after"))                    // still in step
		s.req(0, CmdRead, 7, 1<<20, 1, nil)                                // past the end: EINVAL
		s.req(CmdFlagReqOne, CmdBlockStatus, 8, 0, 4096, nil)              // needs a meta context when simple
		s.req(CmdFlagNoHole|CmdFlagFastZero, CmdWrite, 9, 0, 1, []byte{1}) // flags of another command
		c.send(s)
		want := map[uint64]uint32{1: errnoNoSpc, 2: errnoInval, 3: errnoInval, 4: errnoInval, 5: errnoInval, 6: 0, 7: errnoInval, 8: 0, 9: errnoInval}
		if !structured {
			want[8] = errnoInval
		}
		for range len(want) {
			r := c.readReply(0)
			if w, ok := want[r.handle]; !ok || r.errno != w {
				t.Errorf("structured=%v: reply %v, want errno %d", structured, r, w)
			}
			if r.structured && r.flags&replyFlagDone == 0 {
				t.Errorf("structured=%v: reply %v is not final", structured, r)
			}
			delete(want, r.handle)
		}
		got := make([]byte, 5)
		d.mu.Lock()
		d.readAt(got, 4096)
		d.mu.Unlock()
		if string(got) != "after" {
			t.Errorf("structured=%v: write after refused ones wrote %q", structured, got)
		}
		c.send(new(script).req(0, CmdDisc, 10, 0, 0, nil))
		if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after DISC: %v, want EOF", err)
		}
	}
	b.checkNoLeaks(t)
}

// TestReadErrors: a backend error reaches the client as the right errno,
// with an offset when structured.
func TestReadErrors(t *testing.T) {
	b := newMemBackend()
	d := b.add("disk", 1<<20, memAllFlags)
	d.failOff, d.failLen = 70000, 1
	sock, _ := startServer(t, b, Config{})

	c := dialRaw(t, sock)
	c.connect("disk", false)
	c.send(new(script).req(0, CmdRead, 1, 65536, 8192, nil))
	if r := c.readReply(8192); r.errno != errnoIO || len(r.payload) != 0 {
		t.Fatalf("simple read error: %v", r)
	}

	c = dialRaw(t, sock)
	c.connect("disk", true)
	c.send(new(script).req(0, CmdRead, 1, 65536, 8192, nil))
	rs := c.readStructured()
	if len(rs) != 1 || rs[0].typ != replyTypeErrorOffset || rs[0].errno != errnoIO {
		t.Fatalf("structured read error: %v", rs)
	}
	p := rs[0].payload
	msgLen := binary.BigEndian.Uint16(p[4:])
	if off := binary.BigEndian.Uint64(p[6+msgLen:]); off != 70000 {
		t.Fatalf("error offset %d, want 70000", off)
	}
}

// TestGarbageAndVanishingClients: clients that send garbage, lie about
// lengths or go away mid-request neither crash the server nor leak.
func TestGarbageAndVanishingClients(t *testing.T) {
	b := newMemBackend()
	b.async = true
	b.add("disk", 1<<20, memAllFlags)
	sock, srv := startServer(t, b, Config{HandshakeTimeout: 500 * time.Millisecond})
	cases := map[string]func(c *rawClient){
		"garbage greeting": func(c *rawClient) {
			c.greeting()
			c.nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		},
		"bad option magic": func(c *rawClient) {
			c.greeting()
			c.send((&script{}).u32(clientFixedNewstyle).u64(0x1122334455667788).u32(1).u32(0))
		},
		"huge option": func(c *rawClient) {
			c.greeting()
			c.send((&script{}).u32(clientFixedNewstyle).u64(magicOpt).u32(optGo).u32(0xffffffff))
		},
		"vanish in option": func(c *rawClient) {
			c.greeting()
			c.send((&script{}).u32(clientFixedNewstyle).u64(magicOpt).u32(optGo).u32(100).u32(5))
		},
		"bad request magic": func(c *rawClient) {
			c.connect("disk", true)
			c.send(new(script).req(0, CmdRead, 1, 0, 4096, nil))
			c.nc.Write(make([]byte, 28))
		},
		"write lies about its length": func(c *rawClient) {
			c.connect("disk", false)
			c.send(new(script).req(0, CmdWrite, 1, 0, 65536, []byte("only a few bytes")))
		},
		"write far too long": func(c *rawClient) {
			c.connect("disk", false)
			c.send(new(script).req(0, CmdWrite, 1, 0, 0xffffffff, []byte("x")))
		},
		"vanish with reads in flight": func(c *rawClient) {
			c.connect("disk", true)
			s := new(script)
			for i := range 64 {
				s.req(0, CmdRead, uint64(i), 0, 65536, nil)
			}
			c.send(s)
		},
		"half a header": func(c *rawClient) {
			c.connect("disk", false)
			c.nc.Write([]byte{0x25, 0x60, 0x95, 0x13, 0, 0})
		},
		"silent": func(c *rawClient) {}, // handshake timeout
	}
	for name, do := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, sock)
			do(c)
			if name == "silent" || name == "vanish in option" {
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := io.Copy(io.Discard, c.nc) // the server hangs up
				if err != nil {
					t.Errorf("server did not close a silent client: %v", err)
				}
			}
			c.nc.Close()
		})
	}
	// The server still works, and nothing leaked.
	c := dialRaw(t, sock)
	c.connect("disk", true)
	c.send(new(script).req(0, CmdRead, 1, 0, 4096, nil))
	if rs := c.readStructured(); rs[len(rs)-1].errno != 0 {
		t.Fatalf("read after the bad clients: %v", rs)
	}
	c.send(new(script).req(0, CmdDisc, 2, 0, 0, nil))
	waitConns(t, srv, 0)
	b.checkNoLeaks(t)
}

func waitConns(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		got := len(srv.conns)
		srv.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaxConnections: one connection over the limit is closed at once.
func TestMaxConnections(t *testing.T) {
	b := newMemBackend()
	b.add("disk", 1<<20, memAllFlags)
	sock, srv := startServer(t, b, Config{MaxConnections: 2})
	c1, c2 := dialRaw(t, sock), dialRaw(t, sock)
	c1.greeting()
	c2.greeting()
	waitConns(t, srv, 2)
	c3 := dialRaw(t, sock)
	if n, err := c3.nc.Read(make([]byte, 18)); err != io.EOF {
		t.Fatalf("third connection: read %d bytes, %v; want EOF", n, err)
	}
	c1.nc.Close()
	waitConns(t, srv, 1)
	dialRaw(t, sock).connect("disk", false)
}

// gatedBackend holds every command until released, to see what is in
// flight.
type gatedBackend struct {
	*memBackend
	mu      sync.Mutex
	started []*Command
	errs    []error
}

type gatedExport struct {
	*memExport
	g *gatedBackend
}

func (g *gatedBackend) Open(name string) (Export, error) {
	e, err := g.memBackend.Open(name)
	if err != nil {
		return nil, err
	}
	return &gatedExport{e.(*memExport), g}, nil
}

func (e *gatedExport) Start(cmd *Command) {
	err := e.d.do(cmd)
	e.g.mu.Lock()
	e.g.started = append(e.g.started, cmd)
	e.g.errs = append(e.g.errs, err)
	e.g.mu.Unlock()
}

func (g *gatedBackend) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.started)
}

// releaseAll completes the held commands, newest first.
func (g *gatedBackend) releaseAll() {
	g.mu.Lock()
	cmds, errs := g.started, g.errs
	g.started, g.errs = nil, nil
	g.mu.Unlock()
	for i := len(cmds) - 1; i >= 0; i-- {
		cmds[i].Done(errs[i])
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInFlightLimitAndOrder: no more than MaxInFlight commands reach the
// backend at once, and replies go out in completion order.
func TestInFlightLimitAndOrder(t *testing.T) {
	g := &gatedBackend{memBackend: newMemBackend()}
	g.add("disk", 1<<20, memAllFlags)
	sock, _ := startServer(t, g, Config{MaxInFlight: 4})
	c := dialRaw(t, sock)
	c.connect("disk", false)
	s := new(script)
	for i := range 6 {
		s.req(0, CmdRead, uint64(i), uint64(i)*4096, 4096, nil)
	}
	c.send(s)
	waitFor(t, "4 commands in flight", func() bool { return g.inFlight() == 4 })
	time.Sleep(20 * time.Millisecond)
	if n := g.inFlight(); n != 4 {
		t.Fatalf("%d commands in flight, limit 4", n)
	}
	g.releaseAll()
	for _, want := range []uint64{3, 2, 1, 0} {
		if r := c.readReply(4096); r.handle != want || r.errno != 0 {
			t.Fatalf("reply %v, want handle %d", r, want)
		}
	}
	waitFor(t, "the last 2 commands", func() bool { return g.inFlight() == 2 })
	g.releaseAll()
	for _, want := range []uint64{5, 4} {
		if r := c.readReply(4096); r.handle != want {
			t.Fatalf("reply %v, want handle %d", r, want)
		}
	}
}

// TestShutdown: in-flight commands finish, new ones get ESHUTDOWN, the
// connection closes, and Serve returns.
func TestShutdown(t *testing.T) {
	g := &gatedBackend{memBackend: newMemBackend()}
	g.add("disk", 1<<20, memAllFlags)
	srv := NewServer(g, Config{Log: testLog()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, nc: nc}
	c.connect("disk", true)
	idle := dialRawTCP(t, l.Addr().String())
	idle.connect("disk", false)

	c.send(new(script).req(0, CmdWrite, 1, 0, 5, []byte("hello")))
	waitFor(t, "the write in flight", func() bool { return g.inFlight() == 1 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	waitFor(t, "shutdown to start", srv.shutting.Load)
	// The idle connection is closed at once.
	if _, err := io.Copy(io.Discard, idle.nc); err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	// A new command on the busy one is refused.
	c.send(new(script).req(0, CmdRead, 2, 0, 512, nil))
	if rs := c.readStructured(); rs[0].handle != 2 || rs[0].errno != errnoShutdown {
		t.Fatalf("command during shutdown: %v", rs)
	}
	if err := (<-served); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a command in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.releaseAll()
	if r := c.readReply(0); r.handle != 1 || r.errno != 0 {
		t.Fatalf("in-flight write: %v", r)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("connection after shutdown: %v", err)
	}
	g.checkNoLeaks(t)
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func dialRawTCP(t *testing.T, addr string) *rawClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, nc: nc}
}

// TestShutdownTimeout: a backend that never completes does not hold
// Shutdown past its context.
func TestShutdownTimeout(t *testing.T) {
	g := &gatedBackend{memBackend: newMemBackend()}
	g.add("disk", 1<<20, memAllFlags)
	sock := t.TempDir() + "/s"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(g, Config{Log: testLog()})
	go srv.Serve(l)
	c := dialRaw(t, sock)
	c.connect("disk", false)
	c.send(new(script).req(0, CmdFlush, 1, 0, 0, nil))
	waitFor(t, "the flush in flight", func() bool { return g.inFlight() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	g.releaseAll() // late completion must not crash
	g.checkNoLeaks(t)
}

// TestBackendErrors: the errno a client sees for a backend's error.
func TestBackendErrors(t *testing.T) {
	b := newMemBackend()
	b.add("disk", 1<<20, memAllFlags)
	sock, _ := startServer(t, b, Config{})
	c := dialRaw(t, sock)
	c.connect("disk", false)
	c.send(new(script).req(CmdFlagFastZero|CmdFlagNoHole, CmdWriteZeroes, 1, 0, 4096, nil))
	if r := c.readReply(0); r.errno != uint32(syscall.ENOTSUP) {
		t.Fatalf("fast zero: %v", r)
	}
}

// TestUnixSendBuffer: a unix-socket connection gets a send buffer that
// holds a whole 256 KiB READ reply, where net.core.wmem_max allows one.
func TestUnixSendBuffer(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	srv := NewServer(newMemBackend(), Config{Log: testLog()})
	newConn(srv, a)
	raw, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var serr error
	raw.Control(func(fd uintptr) { got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) })
	if serr != nil {
		t.Fatal(serr)
	}
	want := 256<<10 + 64
	if data, err := os.ReadFile("/proc/sys/net/core/wmem_max"); err == nil {
		if max, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			want = min(want, 2*max)
		}
	}
	if got < want {
		t.Errorf("SO_SNDBUF %d, want %d", got, want)
	}
}

// socketPair returns the two ends of a connected unix stream socket pair.
func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}
