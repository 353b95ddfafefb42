package xseg

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testGeometry is small, so tests create segments quickly.
var testGeometry = Geometry{Ports: 16, StaticPorts: 8, Requests: 256, BufferBytes: 16 << 20}

// newSegment creates and joins a fresh segment in a temporary directory.
func newSegment(t testing.TB, g Geometry) (*Segment, Options) {
	t.Helper()
	opts := Options{Dir: t.TempDir()}
	if err := Create("test", g, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Join("test", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Leave() })
	return s, opts
}

func TestCreateJoinDestroy(t *testing.T) {
	s, opts := newSegment(t, testGeometry)
	if s.Geometry() != testGeometry {
		t.Fatalf("geometry %+v, want %+v", s.Geometry(), testGeometry)
	}
	fi, err := os.Stat(filepath.Join(opts.Dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("segment mode %v, want 0660", fi.Mode().Perm())
	}
	if err := Create("test", testGeometry, opts); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	rep := s.Report(false)
	if rep.FreeRequests != int(testGeometry.Requests) || rep.BufferFree != testGeometry.BufferBytes {
		t.Errorf("fresh segment: %d free requests, %d free buffer bytes", rep.FreeRequests, rep.BufferFree)
	}
	want := testGeometry
	if _, err := Join("test", Options{Dir: opts.Dir, Expect: &want, NoMonitor: true}); err != nil {
		t.Errorf("join with the right geometry: %v", err)
	}
	want.Requests = 512
	if _, err := Join("test", Options{Dir: opts.Dir, Expect: &want}); !errors.Is(err, ErrGeometryMismatch) {
		t.Errorf("join with another geometry: %v, want ErrGeometryMismatch", err)
	}
	if err := Destroy("test", opts); err != nil {
		t.Fatal(err)
	}
	if err := Destroy("test", opts); !errors.Is(err, ErrNotFound) {
		t.Errorf("second destroy: %v, want ErrNotFound", err)
	}
	if _, err := Join("test", opts); !errors.Is(err, ErrNotFound) {
		t.Errorf("join destroyed: %v, want ErrNotFound", err)
	}
}

func TestBadNamesAndGeometry(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	for _, name := range []string{"", ".hidden", "a/b", "../x", "sp ace", string(make([]byte, 201))} {
		if err := Create(name, testGeometry, opts); !errors.Is(err, ErrBadName) {
			t.Errorf("create %q: %v, want ErrBadName", name, err)
		}
	}
	for _, g := range []Geometry{
		{Ports: 4, StaticPorts: 5, Requests: 16, BufferBytes: 16 << 20},
		{Ports: 4, Requests: 1 << 21, BufferBytes: 16 << 20},
		{Ports: 4, Requests: 16, BufferBytes: 1000},
		{Ports: 1 << 17, Requests: 16, BufferBytes: 16 << 20},
	} {
		if err := Create("g", g, opts); !errors.Is(err, ErrBadGeometry) {
			t.Errorf("create %+v: %v, want ErrBadGeometry", g, err)
		}
	}
}

func TestJoinRejectsDamagedFiles(t *testing.T) {
	_, opts := newSegment(t, testGeometry)
	path := filepath.Join(opts.Dir, "test")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string]func([]byte) []byte{
		"wrong magic":   func(b []byte) []byte { b[0] = 'Y'; return b },
		"version":       func(b []byte) []byte { b[hVersion] = 9; return b },
		"checksum":      func(b []byte) []byte { b[hPorts]++; return b },
		"truncated":     func(b []byte) []byte { return b[:len(b)-4096] },
		"header only":   func(b []byte) []byte { return b[:100] },
		"empty":         func(b []byte) []byte { return b[:0] },
		"grown":         func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
		"zeroed header": func(b []byte) []byte { clear(b[:headerSize]); return b },
	}
	for what, f := range damage {
		name := "bad"
		b := f(bytes.Clone(good))
		if err := os.WriteFile(filepath.Join(opts.Dir, name), b, 0o660); err != nil {
			t.Fatal(err)
		}
		_, err := Join(name, opts)
		want := ErrCorrupt
		if what == "version" {
			want = ErrVersion
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: join error %v, want %v", what, err, want)
		}
	}
}

func TestRequestLifecycle(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, err := s.Bind(3)
	if err != nil {
		t.Fatal(err)
	}
	client, err := s.BindDynamic()
	if err != nil {
		t.Fatal(err)
	}
	if client.Number() < int(testGeometry.StaticPorts) {
		t.Fatalf("dynamic port %d is static", client.Number())
	}
	r, err := client.Get()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Prepare(OpWrite, "volume-1", 5000); err != nil {
		t.Fatal(err)
	}
	copy(r.Data(), "hello")
	r.SetOffset(4096)
	r.SetSize(5000)
	r.SetFlags(FlagFUA)
	r.SetPriv(77)
	if err := client.Submit(r, 3); err != nil {
		t.Fatal(err)
	}
	if err := client.Put(r); !errors.Is(err, ErrNotHeld) {
		t.Errorf("put after submit: %v, want ErrNotHeld", err)
	}
	server.Wait(time.Second)
	got, ok := server.Accept()
	if !ok {
		t.Fatal("server accepted nothing")
	}
	if got.Op() != OpWrite || got.TargetString() != "volume-1" || got.Offset() != 4096 || got.Size() != 5000 ||
		got.Flags() != FlagFUA || string(got.Data()[:5]) != "hello" || got.Source() != client.Number() {
		t.Fatalf("accepted request differs: op %v target %q off %d size %d", got.Op(), got.Target(), got.Offset(), got.Size())
	}
	got.SetServiced(5000)
	if err := server.Respond(got, nil); err != nil {
		t.Fatal(err)
	}
	client.Wait(time.Second)
	rep, ok := client.Receive()
	if !ok {
		t.Fatal("no reply")
	}
	if rep.Err() != nil || rep.Serviced() != 5000 || rep.Priv() != 77 {
		t.Fatalf("reply: err %v serviced %d priv %d", rep.Err(), rep.Serviced(), rep.Priv())
	}
	// The same slot serves again, and a failure carries its errno.
	if err := rep.Prepare(OpRead, "missing", 0); err != nil {
		t.Fatal(err)
	}
	client.Submit(rep, 3)
	got, _ = server.Accept()
	server.Respond(got, syscall.ENOENT)
	rep, _ = client.Receive()
	if !errors.Is(rep.Err(), syscall.ENOENT) {
		t.Fatalf("failed reply: %v, want ENOENT", rep.Err())
	}
	client.Put(rep)
	report := s.Report(false)
	if report.FreeRequests != int(testGeometry.Requests) || report.BufferFree != testGeometry.BufferBytes {
		t.Fatalf("after put: %d free requests, %d free buffer bytes", report.FreeRequests, report.BufferFree)
	}
	var sp PortReport
	for _, p := range report.Ports {
		if p.Port == 3 {
			sp = p
		}
	}
	if sp.Submitted != 2 || sp.Served != 1 || sp.Failed != 1 || sp.InFlight != 0 || sp.OwnerPID != uint32(os.Getpid()) {
		t.Fatalf("port 3 counters: %+v", sp)
	}
}

func TestSubmitErrors(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	client, _ := s.BindDynamic()
	r, _ := client.Get()
	if err := client.Submit(r, 99); !errors.Is(err, ErrNoSuchPort) {
		t.Errorf("submit to port 99: %v, want ErrNoSuchPort", err)
	}
	if err := client.Submit(r, -1); !errors.Is(err, ErrNoSuchPort) {
		t.Errorf("submit to port -1: %v, want ErrNoSuchPort", err)
	}
	if err := client.Submit(r, 2); !errors.Is(err, ErrPortNotBound) {
		t.Errorf("submit to unbound port: %v, want ErrPortNotBound", err)
	}
	if err := r.Prepare(OpRead, string(make([]byte, MaxTargetLen+1)), 0); !errors.Is(err, ErrTargetTooLong) {
		t.Errorf("long target: %v, want ErrTargetTooLong", err)
	}
	if err := r.Prepare(OpRead, "x", testGeometry.BufferBytes+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize data: %v, want ErrTooLarge", err)
	}
	if err := r.Prepare(OpRead, "x", testGeometry.BufferBytes); err != nil {
		t.Errorf("data of the whole buffer space: %v", err)
	}
	r2, _ := client.Get()
	if err := r2.Prepare(OpRead, "x", 4096); !errors.Is(err, ErrNoBufferSpace) {
		t.Errorf("prepare with the buffer space taken: %v, want ErrNoBufferSpace", err)
	}
	if _, err := s.Bind(3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bind(3); !errors.Is(err, ErrPortBusy) {
		t.Errorf("second bind of port 3: %v, want ErrPortBusy", err)
	}
	if _, err := s.Bind(int(testGeometry.StaticPorts)); !errors.Is(err, ErrNoSuchPort) {
		t.Errorf("static bind of a dynamic port: %v, want ErrNoSuchPort", err)
	}
	var held []Request
	for {
		r, err := client.Get()
		if err != nil {
			if !errors.Is(err, ErrNoFreeRequests) {
				t.Fatalf("get: %v, want ErrNoFreeRequests", err)
			}
			break
		}
		held = append(held, r)
	}
	if len(held) != int(testGeometry.Requests)-2 {
		t.Fatalf("got %d slots, want %d", len(held), testGeometry.Requests-2)
	}
}

// TestForwardAndPath sends a request through a forwarding port and a
// resubmitting port and checks that the reply unwinds along its path.
func TestForwardAndPath(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	a, _ := s.BindDynamic()
	mid, _ := s.Bind(1)
	fwd, _ := s.Bind(2)
	end, _ := s.Bind(3)
	r, _ := a.Get()
	r.Prepare(OpPing, "p", 0)
	if err := a.Submit(r, 1); err != nil {
		t.Fatal(err)
	}
	m, _ := mid.Accept()
	if err := mid.Submit(m, 2); err != nil { // mid wants the reply back
		t.Fatal(err)
	}
	f, _ := fwd.Accept()
	if err := fwd.Forward(f, 3); err != nil { // fwd steps aside
		t.Fatal(err)
	}
	e, ok := end.Accept()
	if !ok {
		t.Fatal("end got nothing")
	}
	end.Respond(e, nil)
	if _, ok := fwd.Receive(); ok {
		t.Fatal("the forwarding port got a reply")
	}
	back, ok := mid.Receive()
	if !ok || back.Err() != nil {
		t.Fatal("mid got no reply")
	}
	mid.Respond(back, nil)
	final, ok := a.Receive()
	if !ok || final.Err() != nil {
		t.Fatalf("client: ok %v err %v", ok, final.Err())
	}
	a.Put(final)
}

// TestReleaseFailsBack: a server that releases its port fails back what
// was queued to it, and replies to a released client are freed.
func TestReleaseFailsBack(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, _ := s.Bind(1)
	client, _ := s.BindDynamic()
	for i := 0; i < 3; i++ {
		r, _ := client.Get()
		r.Prepare(OpRead, "t", 8192)
		client.Submit(r, 1)
	}
	served, _ := server.Accept()
	server.Release()
	for i := 0; i < 3; i++ {
		r, ok := client.Receive()
		if !ok || !errors.Is(r.Err(), ErrPeerDied) {
			t.Fatalf("reply %d: ok %v err %v, want ErrPeerDied", i, ok, r.Err())
		}
		client.Put(r)
	}
	if err := server.Respond(served, nil); !errors.Is(err, ErrNotHeld) {
		t.Errorf("respond after release: %v, want ErrNotHeld", err)
	}
	// A released client: the reply to its request frees the slot.
	server, err := s.Bind(1)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := client.Get()
	r.Prepare(OpRead, "t", 4096)
	client.Submit(r, 1)
	client.Release()
	got, _ := server.Accept()
	server.Respond(got, nil)
	rep := s.Report(false)
	if rep.FreeRequests != int(testGeometry.Requests) || rep.BufferFree != testGeometry.BufferBytes {
		t.Fatalf("after release: %d free slots, %d free buffer bytes", rep.FreeRequests, rep.BufferFree)
	}
}

func TestWaitWakes(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, _ := s.Bind(1)
	server.SetSpin(0)
	client, _ := s.BindDynamic()
	done := make(chan time.Duration)
	go func() {
		begin := time.Now()
		server.Wait(0)
		done <- time.Since(begin)
	}()
	time.Sleep(50 * time.Millisecond)
	r, _ := client.Get()
	client.Submit(r, 1)
	select {
	case d := <-done:
		if d < 40*time.Millisecond {
			t.Fatalf("Wait returned after %v, before the submit", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake on submit")
	}
	if w := s.Report(false).Ports[0].Wakeups; w != 1 {
		t.Errorf("wakeups %d, want 1", w)
	}
	go func() { server.Wait(0); done <- 0 }()
	server.Accept()
	time.Sleep(20 * time.Millisecond)
	server.Interrupt()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Interrupt did not wake Wait")
	}
}

// TestWaitForWakes: WaitFor returns when its ready turns true and the
// port's wake word is woken, from a sleep as well as from polling.
func TestWaitForWakes(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, _ := s.Bind(1)
	for _, spin := range []time.Duration{0, time.Second} {
		server.SetSpin(spin)
		var ready atomic.Bool
		done := make(chan time.Duration)
		go func() {
			begin := time.Now()
			server.WaitFor(0, ready.Load)
			done <- time.Since(begin)
		}()
		time.Sleep(50 * time.Millisecond)
		ready.Store(true)
		Wake(server.WakeWord())
		select {
		case d := <-done:
			if d < 40*time.Millisecond {
				t.Fatalf("spin %v: WaitFor returned after %v, before ready", spin, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("spin %v: WaitFor did not wake", spin)
		}
		// Ready already: no wait at all.
		server.WaitFor(0, ready.Load)
	}
}

// TestSpinAdapts: a port polls for its whole spin time while its waits
// end within it, briefly once most outlast it, and fully again after a
// run of short waits.
func TestSpinAdapts(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, _ := s.Bind(1)
	client, _ := s.BindDynamic()
	const spin = 2 * time.Millisecond
	server.SetSpin(spin)
	if got := server.spinFor(); got != spin {
		t.Fatalf("new port polls %v, want %v", got, spin)
	}
	// Waits that time out after the spin time: nothing came within it.
	for range 8 {
		server.Wait(2 * spin)
	}
	if got := server.spinFor(); got != spin/20 {
		t.Fatalf("after long waits the port polls %v, want %v", got, spin/20)
	}
	// Waits that a request ends at once.
	for range 8 {
		r, err := client.Get()
		if err != nil {
			t.Fatal(err)
		}
		client.Submit(r, 1)
		server.Wait(0)
		got, _ := server.Accept()
		server.Respond(got, nil)
		client.Wait(0)
		rep, _ := client.Receive()
		client.Put(rep)
	}
	if got := server.spinFor(); got != spin {
		t.Fatalf("after short waits the port polls %v, want %v", got, spin)
	}
}

func TestBufferPool(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	p := &s.pool
	sizes := []uint64{1, 4096, 4097, 65536, 200000, 256 << 10, (256 << 10) + 1, 1 << 20, 4 << 20}
	type buf struct{ off, capacity uint64 }
	var got []buf
	for _, n := range sizes {
		off, c, ok := p.alloc(n)
		if !ok || c < n || off%BufferUnit != 0 {
			t.Fatalf("alloc %d: off %d cap %d ok %v", n, off, c, ok)
		}
		for _, b := range got {
			if off < b.off+b.capacity && b.off < off+c {
				t.Fatalf("alloc %d overlaps an earlier buffer", n)
			}
		}
		got = append(got, buf{off, c})
	}
	for _, b := range got {
		p.release(b.off, b.capacity)
	}
	if p.free() != testGeometry.BufferBytes {
		t.Fatalf("free %d after releasing all, want %d", p.free(), testGeometry.BufferBytes)
	}
	// Fill with 4 KiB buffers, then nothing more fits.
	n := 0
	for {
		if _, _, ok := p.alloc(4096); !ok {
			break
		}
		n++
	}
	if n != int(testGeometry.BufferBytes/BufferUnit) || p.free() != 0 {
		t.Fatalf("%d buffers of 4 KiB, %d free", n, p.free())
	}
}

func TestBufferPoolReusesFreedBuffersFirst(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	p := &s.pool
	// A process doing one request after another keeps using the same few
	// buffers at the bottom of buffer space, whatever their sizes.
	top := uint64(0)
	for range 1000 {
		var held [][2]uint64
		for _, n := range []uint64{4096, 1 << 20, 300 << 10, 8192} {
			off, c, ok := p.alloc(n)
			if !ok {
				t.Fatalf("alloc %d failed", n)
			}
			held = append(held, [2]uint64{off, c})
			top = max(top, off+c)
		}
		for _, b := range held {
			p.release(b[0], b[1])
		}
	}
	if top > 4<<20 {
		t.Fatalf("1000 rounds of 4 buffers spread over %d bytes of buffer space", top)
	}
	// A buffer freed below others is the next one handed out.
	a, ca, _ := p.alloc(4096)
	b, cb, _ := p.alloc(4096)
	p.release(a, ca)
	if c, _, _ := p.alloc(4096); c != a {
		t.Fatalf("after freeing the buffer at %d, alloc gave %d", a, c)
	}
	p.release(b, cb)
}

func TestFreeRun(t *testing.T) {
	cases := []struct {
		v, u, pos uint64
		ok        bool
	}{
		{0, 1, 0, true},
		{1, 1, 1, true},
		{0b1011, 2, 4, true},
		{^uint64(0) >> 1, 1, 63, true},
		{^uint64(0) >> 1, 2, 0, false},
		{0, 64, 0, true},
		{1 << 40, 40, 0, true},
		{1 << 40, 41, 41, false},
	}
	for _, c := range cases {
		pos, ok := freeRun(c.v, c.u)
		if ok != c.ok || (ok && pos != c.pos) {
			t.Errorf("freeRun(%b, %d) = %d,%v want %d,%v", c.v, c.u, pos, ok, c.pos, c.ok)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10\n")
	if start, ok := parseStat(line); !ok || start != 987654 {
		t.Fatalf("parseStat = %d,%v", start, ok)
	}
	zombie := []byte("1234 (x) Z 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 0 0\n")
	if _, ok := parseStat(zombie); ok {
		t.Fatal("a zombie counts as alive")
	}
	if _, ok := parseStat([]byte("garbage")); ok {
		t.Fatal("garbage counts as alive")
	}
	self, err := currentProc()
	if err != nil || !alive(self.pid, self.start) || alive(self.pid, self.start+1) {
		t.Fatalf("own liveness: %+v %v", self, err)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	page := make([]byte, headerSize)
	g := testGeometry
	l := computeLayout(g)
	encodeHeader(page, header{Version: LayoutVersion, Geometry: g, Layout: l})
	f.Add(page, int64(l.size))
	f.Add(page[:64], int64(64))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		check := func(b []byte) {
			h, err := decodeHeader(b, size)
			if err != nil {
				return
			}
			// Whatever passes must describe a consistent, in-bounds layout.
			if h.Geometry.validate() != nil || h.Layout != computeLayout(h.Geometry) || int64(h.Layout.size) != size {
				t.Fatalf("accepted an inconsistent header: %+v", h)
			}
			if h.Layout.buffers+h.Geometry.BufferBytes != h.Layout.size || h.Layout.ports < headerSize {
				t.Fatalf("layout out of bounds: %+v", h.Layout)
			}
		}
		check(b)
		// Re-sign the mutated header, so the fuzzer gets past the checksum
		// to the field checks.
		if len(b) >= headerSize {
			signed := bytes.Clone(b)
			le.PutUint32(signed[checksumOffset:], crc32.Checksum(signed[:checksumOffset], crcTable))
			check(signed)
		}
	})
}

// TestChildrenKeepParentBuffer: sub-requests borrow their parent's buffer;
// when the parent's server goes away, the parent fails back only after its
// last child is done, so no child ever writes into a reused buffer.
func TestChildrenKeepParentBuffer(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	client, _ := s.BindDynamic()
	middle, _ := s.Bind(1)
	blocker, _ := s.Bind(2)

	r, _ := client.Get()
	r.Prepare(OpWrite, "vol", 8192)
	copy(r.Data(), "0123456789")
	client.Submit(r, 1)
	parent, _ := middle.Accept()
	var kids []Request
	for i := uint64(0); i < 2; i++ {
		k, _ := middle.Get()
		if err := k.PrepareChild(OpWrite, "obj", parent, i*4096, 4096); err != nil {
			t.Fatal(err)
		}
		if err := middle.Submit(k, 2); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k)
	}
	if string(kids[0].Data()[:4]) != "0123" || len(kids[1].Data()) != 4096 {
		t.Fatal("child does not see its window of the parent's buffer")
	}
	if err := middle.Respond(parent, nil); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("respond with children in flight: %v, want ErrNotHeld", err)
	}
	bad, _ := middle.Get()
	if err := bad.PrepareChild(OpRead, "x", parent, 4096, 8192); err == nil {
		t.Fatal("a window past the parent's buffer was accepted")
	}
	middle.Put(bad)

	middle.Release() // the middle peer goes away with both children out
	first, _ := blocker.Accept()
	blocker.Respond(first, nil)
	if _, ok := client.Receive(); ok {
		t.Fatal("parent failed back while a child still used its buffer")
	}
	second, _ := blocker.Accept()
	copy(second.Data(), "written by the blocker")
	blocker.Respond(second, nil)
	got, ok := client.Receive()
	if !ok || !errors.Is(got.Err(), ErrPeerDied) {
		t.Fatalf("parent after its last child: ok %v err %v", ok, got.Err())
	}
	client.Put(got)
	if rep := s.Report(false); rep.FreeRequests != int(testGeometry.Requests) || rep.BufferFree != testGeometry.BufferBytes {
		t.Fatalf("%d free slots, %d free buffer bytes", rep.FreeRequests, rep.BufferFree)
	}
}

// TestStrandedFailsBackOnce: a request its dead server popped off the ring
// but never claimed is failed back to its client exactly once, and its
// slot stays the client's until the client puts it back.
func TestStrandedFailsBackOnce(t *testing.T) {
	s, _ := newSegment(t, testGeometry)
	server, _ := s.Bind(2)
	client, _ := s.BindDynamic()
	r, _ := client.Get()
	r.Prepare(OpWrite, "obj", 4096)
	if err := client.Submit(r, 2); err != nil {
		t.Fatal(err)
	}
	// The server takes it off its ring and dies before it claims it.
	if _, ok := server.rings.requests.Pop(); !ok {
		t.Fatal("nothing queued")
	}
	if _, ok := s.recoverPort(2, s.port(2).owner.Load()); !ok {
		t.Fatal("port 2 not recovered")
	}
	client.Wait(time.Second)
	got, ok := client.Receive()
	if !ok || !errors.Is(got.Err(), ErrPeerDied) {
		t.Fatalf("reply: ok %v, err %v; want ErrPeerDied", ok, got.Err())
	}
	if _, again := client.Receive(); again {
		t.Fatal("a second reply")
	}
	if free := s.Report(false).FreeRequests; free != int(testGeometry.Requests)-1 {
		t.Fatalf("%d free slots while the client holds its reply, want %d", free, testGeometry.Requests-1)
	}
	client.Put(got)
	if free := s.Report(false).FreeRequests; free != int(testGeometry.Requests) {
		t.Fatalf("%d free slots at the end, want %d", free, testGeometry.Requests)
	}
}
