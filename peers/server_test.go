package peers_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/internal/peertest"
	"github.com/archipelago-go/archipelago/xseg"
)

// serve runs a Server on a fresh port 1 of s until the test ends or the
// returned stop is called; stop waits for Serve to return.
func serve(t *testing.T, s *xseg.Segment, srv *peers.Server) (stop func()) {
	t.Helper()
	p, err := s.Bind(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Serve(ctx, p)
		close(done)
	}()
	stop = func() {
		cancel()
		<-done
		p.Release()
	}
	t.Cleanup(stop)
	return stop
}

func TestHandlerErrorsBecomeErrnoReplies(t *testing.T) {
	s, _ := peertest.Segment(t)
	srv := &peers.Server{Handler: peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error {
		switch r.TargetString() {
		case "ok":
			r.SetServiced(r.Size())
			return nil
		case "enoent":
			return fmt.Errorf("object: %w", syscall.ENOENT)
		case "plain":
			return errors.New("something broke")
		case "deadline":
			return fmt.Errorf("lock: %w", context.DeadlineExceeded)
		case "cancel":
			return context.Canceled
		case "panic":
			panic("handler bug")
		}
		return syscall.EOPNOTSUPP
	})}
	serve(t, s, srv)
	c := peertest.NewClient(t, s, 1)
	for _, tc := range []struct {
		target string
		want   error
	}{
		{"ok", nil},
		{"enoent", syscall.ENOENT},
		{"plain", syscall.EIO},
		{"deadline", syscall.ETIMEDOUT},
		{"cancel", syscall.ECANCELED},
		{"panic", syscall.EIO},
		{"other", syscall.EOPNOTSUPP},
		{"ok", nil}, // still serving after a panic
	} {
		rep := c.MustDo(t, peertest.Req{Op: xseg.OpRead, Target: tc.target, Size: 512})
		if !errors.Is(rep.Err, tc.want) || (tc.want == nil) != (rep.Err == nil) {
			t.Errorf("%s: reply error %v, want %v", tc.target, rep.Err, tc.want)
		}
		if tc.want == nil && rep.Serviced != 512 {
			t.Errorf("%s: serviced %d, want 512", tc.target, rep.Serviced)
		}
	}
}

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.EAGAIN, syscall.EAGAIN},
		{fmt.Errorf("x: %w", syscall.ENOSPC), syscall.ENOSPC},
		{context.DeadlineExceeded, syscall.ETIMEDOUT},
		{fmt.Errorf("wait: %w", context.Canceled), syscall.ECANCELED},
		{errors.New("x"), syscall.EIO},
	} {
		if got := peers.Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestDrainServesEveryAcceptedRequest stops a server while its handler
// holds requests: Serve must not return before each is answered, the
// handlers see their context end, and requests queued but not accepted
// fail back as not executed once the port is released.
func TestDrainServesEveryAcceptedRequest(t *testing.T) {
	s, _ := peertest.Segment(t)
	const inflight = 4
	var entered atomic.Int32
	release := make(chan struct{})
	var cancelled atomic.Int32
	srv := &peers.Server{Inflight: inflight, HandOff: time.Millisecond, Handler: peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error {
		entered.Add(1)
		<-release
		if ctx.Err() != nil {
			cancelled.Add(1)
		}
		r.SetServiced(r.Size())
		return nil
	})}
	p, err := s.Bind(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, p); close(done) }()

	c := peertest.NewClient(t, s, 1)
	const queued = 3
	for i := range inflight + queued {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpWrite, Target: fmt.Sprint("obj", i), Size: 4096}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all workers busy", func() bool { return entered.Load() == inflight })
	cancel()
	select {
	case <-done:
		t.Fatal("Serve returned with requests still being served")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	if got := cancelled.Load(); got != inflight {
		t.Errorf("%d handlers saw their context end, want %d", got, inflight)
	}
	if got := entered.Load(); got != inflight {
		t.Errorf("%d requests accepted after the stop, want none", got-inflight)
	}
	served, died := 0, 0
	for range inflight {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
		if rep.Err != nil {
			t.Errorf("accepted request failed: %v", rep.Err)
		}
		served++
	}
	p.Release()
	for range queued {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
		if !errors.Is(rep.Err, xseg.ErrPeerDied) {
			t.Errorf("queued request: %v, want ErrPeerDied", rep.Err)
		}
		died++
	}
	t.Logf("%d served while draining, %d failed back unexecuted", served, died)
}

// TestSlowRequestsRunConcurrently checks the hand-off: requests that
// outlast HandOff are served Inflight at a time, never more.
func TestSlowRequestsRunConcurrently(t *testing.T) {
	s, _ := peertest.Segment(t)
	const inflight, requests = 4, 16
	const delay = 30 * time.Millisecond
	var running, peak atomic.Int32
	srv := &peers.Server{Inflight: inflight, Handler: peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error {
		raisePeak(&peak, running.Add(1))
		time.Sleep(delay)
		running.Add(-1)
		return nil
	})}
	serve(t, s, srv)
	c := peertest.NewClient(t, s, 1)
	start := time.Now()
	for range requests {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpPing}); err != nil {
			t.Fatal(err)
		}
	}
	for range requests {
		rep, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
		if rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	elapsed := time.Since(start)
	if got := peak.Load(); got != inflight {
		t.Errorf("peak concurrency %d, want %d", got, inflight)
	}
	// Serial would take requests*delay; Inflight at a time a quarter.
	if limit := requests / inflight * delay * 5 / 2; elapsed > limit {
		t.Errorf("%d requests of %v with inflight %d took %v, want under %v", requests, delay, inflight, elapsed, limit)
	}
}

// TestQuickRequestsStayOnOneGoroutine: quick requests are served by the
// goroutine that accepted them, so a burst is never served concurrently.
func TestQuickRequestsStayOnOneGoroutine(t *testing.T) {
	s, _ := peertest.Segment(t)
	var running, peak atomic.Int32
	srv := &peers.Server{HandOff: time.Second, Handler: peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error {
		raisePeak(&peak, running.Add(1))
		time.Sleep(10 * time.Microsecond)
		running.Add(-1)
		return nil
	})}
	serve(t, s, srv)
	c := peertest.NewClient(t, s, 1)
	for range 64 {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpPing}); err != nil {
			t.Fatal(err)
		}
	}
	for range 64 {
		_, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
	}
	if peak.Load() != 1 {
		t.Errorf("peak concurrency %d, want 1", peak.Load())
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

func raisePeak(peak *atomic.Int32, n int32) {
	for {
		old := peak.Load()
		if n <= old || peak.CompareAndSwap(old, n) {
			return
		}
	}
}

// TestHandOffLetsTheNextRequestIn: a handler that calls HandOff before it
// waits lets the next request be accepted at once, however long
// Server.HandOff is.
func TestHandOffLetsTheNextRequestIn(t *testing.T) {
	s, _ := peertest.Segment(t)
	release := make(chan struct{})
	var entered atomic.Int32
	srv := &peers.Server{Inflight: 4, HandOff: time.Hour, Handler: peers.HandlerFunc(func(ctx context.Context, r xseg.Request) error {
		if r.TargetString() == "slow" {
			peers.HandOff(ctx)
			peers.HandOff(ctx) // twice is harmless
			entered.Add(1)
			<-release
		}
		return nil
	})}
	serve(t, s, srv)
	c := peertest.NewClient(t, s, 1)
	for range 3 {
		if _, err := c.Submit(peertest.Req{Op: xseg.OpPing, Target: "slow"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three slow requests running", func() bool { return entered.Load() == 3 })
	// The fourth goroutine serves quick requests meanwhile.
	for range 10 {
		if rep := c.MustDo(t, peertest.Req{Op: xseg.OpPing, Target: "quick"}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	close(release)
	for range 3 {
		_, r, err := c.Receive()
		if err != nil {
			t.Fatal(err)
		}
		c.Port.Put(r)
	}
	peers.HandOff(context.Background()) // outside a handler: nothing
}

// BenchmarkServerRoundTrip measures a round trip through Server with a
// handler that does nothing, client and server in one process, 16 in
// flight: the runtime's cost per request over xseg's.
func BenchmarkServerRoundTrip(b *testing.B) {
	s, _ := peertest.Segment(b)
	p, err := s.Bind(1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&peers.Server{Handler: peers.HandlerFunc(func(context.Context, xseg.Request) error { return nil })}).Serve(ctx, p)
		close(done)
	}()
	defer func() { cancel(); <-done; p.Release() }()
	c := peertest.NewClient(b, s, 1)
	const depth = 16
	b.ResetTimer()
	inflight := 0
	for i := 0; i < b.N || inflight > 0; {
		for ; inflight < depth && i < b.N; i++ {
			if _, err := c.Submit(peertest.Req{Op: xseg.OpPing}); err != nil {
				b.Fatal(err)
			}
			inflight++
		}
		c.Port.Wait(0)
		for {
			r, ok := c.Port.Receive()
			if !ok {
				break
			}
			c.Port.Put(r)
			inflight--
		}
	}
}
