package peers

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/xseg"
)

// Handler serves the requests a peer accepts.
type Handler interface {
	// Serve performs r and returns nil, or the error to fail it with: a
	// syscall.Errno in its chain travels to the client as is, any other
	// error as EIO (Errno says which). The runtime sends the reply after
	// Serve returns; Serve must not respond itself.
	//
	// Serve runs on up to Inflight goroutines per port at once. r's target
	// and data are shared memory, valid until Serve returns.
	//
	// ctx ends when the peer starts draining. Requests already accepted are
	// still expected to be served: use ctx only to abandon waits that can
	// last (a blocking lock), not to cut work short.
	Serve(ctx context.Context, r xseg.Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r xseg.Request) error

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, r xseg.Request) error { return f(ctx, r) }

// Errno returns the errno a reply carries for a handler's error: the
// syscall.Errno in err's chain, ETIMEDOUT for a context deadline,
// ECANCELED for a cancelled context, EIO for anything else; 0 for nil.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return errnoOf(err)
}

// errnoOf is Errno for a non-nil error, apart so that Errno(nil) does not
// allocate the variable errors.As needs.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno != 0:
		return errno
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, context.Canceled):
		return syscall.ECANCELED
	}
	return syscall.EIO
}

// Server serves ports with a Handler. It is the serving core of a peer,
// without flags, signals or systemd; Peer wraps it.
type Server struct {
	// Handler serves each request.
	Handler Handler
	// Inflight is how many requests are served at once on each port;
	// DefaultInflight when 0.
	Inflight int
	// HandOff is how long a request runs on the goroutine that accepted
	// it before another goroutine takes over waiting on the port (unless
	// the handler calls HandOff first); DefaultHandOff when 0.
	HandOff time.Duration
	// Log receives one event per failed request (warning for EIO, debug for
	// other errnos) and, at trace level, one per request. Nil logs nothing.
	Log *logrus.Entry
}

// DefaultHandOff is how long a request may run on the goroutine that
// accepted it before another goroutine takes over waiting on the port.
const DefaultHandOff = 4 * time.Millisecond

// Serve serves requests on ports until ctx ends, then stops accepting,
// waits for every accepted request to be answered and returns. It
// interrupts the ports when ctx ends, so they cannot be served again; the
// caller releases them (requests still queued then fail back to their
// clients with xseg.ErrPeerDied).
//
// Each port has Inflight goroutines. One of them at a time, the leader,
// waits on the port, and serves what it accepts itself: a quick request
// costs no hand-off between goroutines. (On a host with few cores a
// hand-off per request costs more than a page-cache read: handing each
// request to another goroutine served 4 KiB reads from tmpfs 15 to 25
// times slower at iodepth 1, and a timer armed per request cost a third
// of the rate.)
// The leadership passes to an idle goroutine, so the next requests are
// accepted while this one runs, when the handler calls HandOff (it knows
// it is about to wait: a network, a disk flush, a lock), or when a
// watcher sees the request still running after HandOff. Slow requests
// thus run up to Inflight at once.
func (s *Server) Serve(ctx context.Context, ports ...*xseg.Port) {
	inflight := s.Inflight
	if inflight <= 0 {
		inflight = DefaultInflight
	}
	wt := NewWatcher(s.HandOff)
	defer InterruptWhenDone(ctx, ports)()
	var wg sync.WaitGroup
	for _, p := range ports {
		pw := &portWorkers{srv: s, port: p, log: s.Log}
		if pw.log != nil {
			pw.log = pw.log.WithField("port", p.Number())
		}
		pw.slot = wt.Slot(pw.leader.Unlock)
		for range inflight {
			w := &worker{ports: pw}
			w.ctx = context.WithValue(ctx, workerKey{}, w)
			wg.Go(w.run)
		}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() { wt.Run(watchCtx) })
	wg.Wait()
	stopWatch()
	watching.Wait()
}

// InterruptWhenDone interrupts ports once ctx ends, so that their
// serving loops stop; the returned func cancels that (call it when the
// loops have returned).
func InterruptWhenDone(ctx context.Context, ports []*xseg.Port) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		for _, p := range ports {
			p.Interrupt()
		}
	})
}

// HandOff tells the runtime that the request being served on ctx is about
// to wait (a network round trip, a disk flush, a lock): another goroutine
// takes over accepting requests now rather than after Server.HandOff.
// It does nothing when the request was handed off already, or when ctx
// is not a Handler's.
func HandOff(ctx context.Context) {
	if w, ok := ctx.Value(workerKey{}).(*worker); ok {
		w.handOff()
	}
}

type workerKey struct{}

// portWorkers are the goroutines serving one port.
type portWorkers struct {
	srv  *Server
	port *xseg.Port
	log  *logrus.Entry
	// leader is held by the goroutine that waits on the port (xseg allows
	// one waiter per port). The leader unlocks it when it stops; whoever
	// hands the leadership off (through slot) unlocks it for the leader.
	leader sync.Mutex
	slot   *Slot
}

// worker is one goroutine of a port.
type worker struct {
	ports *portWorkers
	ctx   context.Context // the Server's, carrying the worker for HandOff
	start int64           // clock reading of the request it leads with
}

func (w *worker) run() {
	pw := w.ports
	for {
		pw.leader.Lock()
		for {
			r, ok := pw.next(w.ctx)
			if !ok {
				pw.leader.Unlock()
				return
			}
			w.start = pw.slot.Begin()
			pw.serve(w.ctx, r)
			if !pw.slot.End(w.start) {
				break // handed off: queue to lead again
			}
		}
	}
}

// handOff gives the leadership away if w still holds it for its request.
func (w *worker) handOff() { w.ports.slot.HandOff(w.start) }

// next waits for and accepts a request; false once the peer drains and
// nothing more is accepted. It checks ctx as well as the port: a handler
// woken by ctx's end may come back here before the port is interrupted.
func (pw *portWorkers) next(ctx context.Context) (xseg.Request, bool) {
	for !pw.port.Interrupted() && ctx.Err() == nil {
		if r, ok := pw.port.Accept(); ok {
			return r, true
		}
		pw.port.Wait(0)
	}
	return xseg.Request{}, false
}

// serve runs the handler on r and responds. A panicking handler fails the
// request with EIO and leaves the peer up.
func (pw *portWorkers) serve(ctx context.Context, r xseg.Request) {
	Answer(pw.port, pw.log, r, ServeRecovered(ctx, pw.srv.Handler, r, pw.log))
}

// ServeRecovered runs h.Serve on r; a panic becomes an error (EIO), logged
// on log (nil logs nothing) with its stack, and leaves the peer up.
func ServeRecovered(ctx context.Context, h Handler, r xseg.Request, log *logrus.Entry) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if log != nil {
				log.WithFields(requestFields(r)).Errorf("handler panic: %v\n%s", v, debug.Stack())
			}
			err = fmt.Errorf("handler panic: %v", v)
		}
	}()
	return h.Serve(ctx, r)
}

// Answer responds to r on port with err's errno (Errno) and logs it on log
// as a Server does (nil logs nothing): failures with EIO as warnings, other
// failures at debug level, every request at trace level.
func Answer(port *xseg.Port, log *logrus.Entry, r xseg.Request, err error) {
	errno := Errno(err)
	if log != nil {
		logRequest(log, r, err, errno)
	}
	var reply error
	if errno != 0 {
		reply = errno
	}
	if rerr := port.Respond(r, reply); rerr != nil && log != nil {
		log.WithError(rerr).WithField("op", r.Op().String()).Warn("reply not sent")
	}
}

func logRequest(log *logrus.Entry, r xseg.Request, err error, errno syscall.Errno) {
	switch {
	case err == nil:
		if log.Logger.IsLevelEnabled(logrus.TraceLevel) {
			log.WithFields(requestFields(r)).Trace("served")
		}
	case errno == syscall.EIO:
		log.WithFields(requestFields(r)).WithError(err).Warn("failed")
	case log.Logger.IsLevelEnabled(logrus.DebugLevel):
		log.WithFields(requestFields(r)).WithError(err).WithField("errno", errno.Error()).Debug("failed")
	}
}

func requestFields(r xseg.Request) logrus.Fields {
	return logrus.Fields{
		"op": r.Op().String(), "target": r.TargetString(),
		"offset": r.Offset(), "size": r.Size(), "flags": uint32(r.Flags()),
	}
}
