package nbd

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of Config.
const (
	DefaultMaxConnections   = 1024
	DefaultMaxInFlight      = 128
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxRequest       = 32 << 20
)

// Config holds the server's limits. Zero values take the defaults.
type Config struct {
	// MaxConnections bounds the connections served at once; one more is
	// closed as soon as it is accepted.
	MaxConnections int
	// MaxInFlight bounds the commands in flight on one connection; the
	// connection's reader waits (and so the client) while it is reached.
	MaxInFlight int
	// HandshakeTimeout bounds the whole option haggling of a connection.
	HandshakeTimeout time.Duration
	// MaxRequest is the largest READ, WRITE or CACHE length the server
	// accepts (the advertised maximum block size, unless the export's is
	// smaller).
	MaxRequest uint32
	// Log receives the server's events; nil logs through the standard
	// logrus logger.
	Log *logrus.Entry
}

func (c Config) withDefaults() Config {
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxRequest == 0 {
		c.MaxRequest = DefaultMaxRequest
	}
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return c
}

// Server serves NBD connections against a Backend. Its methods are safe
// for concurrent use.
type Server struct {
	backend Backend
	cfg     Config
	log     *logrus.Entry

	// inlineBlockStatus answers BLOCK_STATUS on the reader goroutine, so
	// that golden transcripts are deterministic (tests only).
	inlineBlockStatus bool

	shutting atomic.Bool
	nextID   atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	gone      chan struct{} // closed and replaced whenever a connection ends
}

// NewServer returns a server of backend's exports.
func NewServer(backend Backend, cfg Config) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		backend:   backend,
		cfg:       cfg,
		log:       cfg.Log,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		gone:      make(chan struct{}),
	}
}

// Serve accepts connections on l and serves each on its own goroutine
// until Shutdown, when it returns ErrServerClosed. It closes l when it
// returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.WithError(err).Warn("nbd: accept failed; retrying")
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go func() {
			if err := s.ServeConn(nc); err != nil && !errors.Is(err, ErrServerClosed) {
				s.log.WithError(err).WithField("remote", nc.RemoteAddr().String()).Debug("nbd: connection ended")
			}
		}()
	}
}

// isTemporary reports accept errors worth retrying (out of descriptors,
// a connection aborted before it was accepted).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// ServeConn serves one connection until the client disconnects, the
// connection fails, or Shutdown has drained it; it closes nc. It returns
// nil after a clean disconnect (NBD_CMD_DISC or NBD_OPT_ABORT).
func (s *Server) ServeConn(nc net.Conn) error {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		nc.Close()
		return ErrServerClosed
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		nc.Close()
		s.log.WithField("remote", remoteName(nc)).Warn("nbd: too many connections; closed a new one")
		return ErrTooManyConnections
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		close(s.gone)
		s.gone = make(chan struct{})
		s.mu.Unlock()
	}()
	return c.serve()
}

// Shutdown stops the server gracefully: it closes the listeners, drops
// connections still in the handshake, answers new commands with ESHUTDOWN,
// waits for the commands in flight, and closes every connection. If ctx
// ends first, it closes the remaining connections at once and returns
// ctx's error (commands the backend has not completed keep their
// goroutines until it does).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.beginShutdown()
	}
	s.mu.Unlock()

	for {
		s.mu.Lock()
		n, gone := len(s.conns), s.gone
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-gone:
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.nc.Close()
			}
			s.mu.Unlock()
			return ctx.Err()
		}
	}
}

func remoteName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "local"
}
