package xseg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The multi-process tests run this test binary again as a peer or a client
// (XSEG_TEST_ROLE), so that crashes are real SIGKILLs of real processes.
func TestMain(m *testing.M) {
	if role := os.Getenv("XSEG_TEST_ROLE"); role != "" {
		if err := runRole(role, strings.Fields(os.Getenv("XSEG_TEST_ARGS"))); err != nil {
			fmt.Fprintln(os.Stderr, role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runRole: args are dir, segment name, port, then role-specific ones.
// "ready" on stdout means the role is set up.
func runRole(role string, args []string) error {
	opts := Options{Dir: args[0]}
	s, err := Join(args[1], opts)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(args[2])
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	switch role {
	case "null", "stall":
		p, err := s.Bind(port)
		if err != nil {
			return err
		}
		go func() { <-term; p.Interrupt() }()
		fmt.Println("ready")
		for !p.interrupted.Load() {
			p.Wait(0)
			for {
				r, ok := p.Accept()
				if !ok {
					break
				}
				if role == "stall" {
					continue // it stays accepted, unanswered, until the kill
				}
				if r.Op() == OpRead && len(r.Data()) >= 8 {
					le.PutUint64(r.Data(), r.Offset())
				}
				r.SetServiced(r.Size())
				p.Respond(r, nil)
			}
		}
		return s.Leave()
	case "client":
		// Hold slots with buffers, submit some to port, then wait to die.
		c, err := s.BindDynamic()
		if err != nil {
			return err
		}
		hold, _ := strconv.Atoi(args[3])
		submit, _ := strconv.Atoi(args[4])
		for i := 0; i < hold+submit; i++ {
			r, err := c.Get()
			if err != nil {
				return err
			}
			if err := r.Prepare(OpWrite, "obj", 64<<10); err != nil {
				return err
			}
			if i >= hold {
				if err := c.Submit(r, port); err != nil {
					return err
				}
			}
		}
		fmt.Println("ready")
		<-term
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

type helper struct {
	cmd *exec.Cmd
}

// startRole starts a role process and waits for its "ready".
func startRole(t *testing.T, role string, args ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "XSEG_TEST_ROLE="+role, "XSEG_TEST_ARGS="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd}
	t.Cleanup(func() { h.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("%s did not get ready: %q %v", role, line, err)
	}
	return h
}

func (h *helper) kill() {
	if h.cmd.ProcessState == nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// TestMillionRequests pushes 1,000,000 requests through a null peer in
// another process and matches every reply to its request.
func TestMillionRequests(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 100_000
	}
	const depth = 64
	s, opts := newSegment(t, testGeometry)
	startRole(t, "null", opts.Dir, "test", "1")
	c, err := s.BindDynamic()
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, total)
	submit := func(r Request, seq int) {
		r.SetOffset(uint64(seq) * 4096)
		r.SetSize(8)
		r.SetPriv(uint64(seq))
		if err := c.Submit(r, 1); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	for ; next < depth; next++ {
		r, err := c.Get()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Prepare(OpRead, "obj", 8); err != nil {
			t.Fatal(err)
		}
		submit(r, next)
	}
	for done := 0; done < total; {
		c.Wait(5 * time.Second)
		got := false
		for {
			r, ok := c.Receive()
			if !ok {
				break
			}
			got = true
			seq := int(r.Priv())
			switch {
			case r.Err() != nil:
				t.Fatalf("request %d: %v", seq, r.Err())
			case seq >= total || seen[seq]:
				t.Fatalf("reply %d: unknown or duplicate", seq)
			case le.Uint64(r.Data()) != uint64(seq)*4096 || r.Serviced() != 8:
				t.Fatalf("reply %d: data %d serviced %d", seq, le.Uint64(r.Data()), r.Serviced())
			}
			seen[seq] = true
			done++
			if next < total {
				submit(r, next)
				next++
			} else {
				c.Put(r)
			}
		}
		if !got && s.Report(false).Ports[0].Queued == 0 && done < total {
			// Nothing arrived within the wait: a lost wake-up or a lost request.
			t.Fatalf("stalled after %d replies", done)
		}
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("request %d never replied", i)
		}
	}
	if rep := s.Report(false); rep.FreeRequests != int(testGeometry.Requests) {
		t.Fatalf("%d free slots at the end, want %d", rep.FreeRequests, testGeometry.Requests)
	}
}

// TestPeerKilled: SIGKILL a peer with 128 requests in flight (some
// accepted, some queued); each fails back with ErrPeerDied within a second,
// and a restarted peer serves the port again.
func TestPeerKilled(t *testing.T) {
	const inflight = 128
	s, opts := newSegment(t, testGeometry)
	peer := startRole(t, "stall", opts.Dir, "test", "2")
	c, _ := s.BindDynamic()
	for i := 0; i < inflight; i++ {
		r, err := c.Get()
		if err != nil {
			t.Fatal(err)
		}
		r.Prepare(OpWrite, "obj", 4096)
		r.SetPriv(uint64(i))
		if err := c.Submit(r, 2); err != nil {
			t.Fatal(err)
		}
	}
	// Let the peer accept some of them before it dies.
	deadline := time.Now().Add(5 * time.Second)
	for s.Report(false).Ports[0].Queued == inflight && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	killed := time.Now()
	peer.cmd.Process.Signal(syscall.SIGKILL)
	peer.cmd.Wait()
	failed := 0
	for failed < inflight {
		c.Wait(time.Second)
		if time.Since(killed) > time.Second {
			t.Fatalf("%d of %d requests failed back within 1 s", failed, inflight)
		}
		for {
			r, ok := c.Receive()
			if !ok {
				break
			}
			if !errors.Is(r.Err(), ErrPeerDied) {
				t.Fatalf("request %d: %v, want ErrPeerDied", r.Priv(), r.Err())
			}
			failed++
			c.Put(r)
		}
	}
	t.Logf("%d requests failed back %v after SIGKILL", failed, time.Since(killed))
	rep := s.Report(false)
	if rep.FreeRequests != int(testGeometry.Requests) || rep.BufferFree != testGeometry.BufferBytes {
		t.Fatalf("after recovery: %d free slots, %d free buffer bytes", rep.FreeRequests, rep.BufferFree)
	}
	startRole(t, "null", opts.Dir, "test", "2")
	r, _ := c.Get()
	r.Prepare(OpRead, "obj", 8)
	r.SetOffset(42)
	if err := c.Submit(r, 2); err != nil {
		t.Fatal(err)
	}
	c.Wait(5 * time.Second)
	r, ok := c.Receive()
	if !ok || r.Err() != nil || le.Uint64(r.Data()) != 42 {
		t.Fatalf("restarted peer: ok %v err %v", ok, r.Err())
	}
}

// TestClientKilled: SIGKILL a client holding slots and with requests in
// flight; its slots and buffers return to the pool.
func TestClientKilled(t *testing.T) {
	s, opts := newSegment(t, testGeometry)
	server, err := s.Bind(4)
	if err != nil {
		t.Fatal(err)
	}
	client := startRole(t, "client", opts.Dir, "test", "4", "100", "20")
	if free := s.Report(false).FreeRequests; free != int(testGeometry.Requests)-120 {
		t.Fatalf("%d free slots while the client holds 120", free)
	}
	client.cmd.Process.Signal(syscall.SIGKILL)
	client.cmd.Wait()
	// The monitor reclaims the client's port and the slots it held.
	deadline := time.Now().Add(time.Second)
	for s.Report(false).FreeRequests != int(testGeometry.Requests)-20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d free slots 1 s after the kill, want %d", s.Report(false).FreeRequests, testGeometry.Requests-20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Its 20 requests in flight are freed when served.
	for i := 0; i < 20; i++ {
		r, ok := server.Accept()
		if !ok {
			t.Fatalf("request %d of the dead client is missing", i)
		}
		server.Respond(r, nil)
	}
	rep := s.Report(false)
	if rep.FreeRequests != int(testGeometry.Requests) || rep.BufferFree != testGeometry.BufferBytes {
		t.Fatalf("after the replies: %d free slots, %d free buffer bytes", rep.FreeRequests, rep.BufferFree)
	}
}
