package nbd

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	phaseHandshake = iota
	phaseTransmission
)

// readBufferBytes sizes the reader's buffer: big enough to take many
// request headers (and small WRITE payloads) per read system call; larger
// payloads go straight from the socket into the backend's buffer.
const readBufferBytes = 32 << 10

// unixSendBufferBytes is the send buffer asked for a unix-socket
// connection (the kernel doubles it, up to net.core.wmem_max). The default
// (net.core.wmem_default, 208 KiB here) does not hold one 256 KiB READ
// reply, so each such reply blocked in its writev until the client had
// read part of it: nbdcopy out of a 1 GiB volume went from about 980 to
// 1,100 MiB/s with 1 MiB. It bounds the memory a client that stops reading
// pins in the kernel per connection; TCP connections keep the kernel's
// autotuning, which asking for a size would turn off.
const unixSendBufferBytes = 1 << 20

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	log *logrus.Entry

	// negotiated during the handshake
	structured  bool
	metaSet     bool   // base:allocation selected by the last SET_META_CONTEXT
	metaExport  string // for this export name
	noZeroes    bool
	optBuf      []byte
	optReplyBuf []byte

	// fixed once the transmission phase starts
	export   Export
	name     string
	size     uint64
	tflags   uint16
	minBlock uint32
	maxBlock uint32
	allocCtx bool // BLOCK_STATUS allowed

	// in-flight accounting; the reader waits on cond at the limit, and
	// for the drain before it closes the export
	mu       sync.Mutex
	cond     sync.Cond
	inflight int
	phase    int
	shutting bool

	// reply side
	wmu  sync.Mutex
	werr error

	hdr [requestHeaderSize]byte
}

func newConn(s *Server, nc net.Conn) *conn {
	id := s.nextID.Add(1)
	c := &conn{
		s:   s,
		nc:  nc,
		br:  bufio.NewReaderSize(nc, readBufferBytes),
		log: s.log.WithFields(logrus.Fields{"conn": id, "remote": remoteName(nc)}),
	}
	c.cond.L = &c.mu
	if uc, ok := nc.(*net.UnixConn); ok {
		if err := uc.SetWriteBuffer(unixSendBufferBytes); err != nil {
			c.log.WithError(err).Debug("nbd: send buffer")
		}
	}
	return c
}

func (c *conn) serve() error {
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	entered, err := c.handshake()
	if !entered {
		if err != nil {
			if c.isShutting() {
				return ErrServerClosed
			}
			c.log.WithError(err).Debug("nbd: handshake failed")
		}
		return err
	}
	c.log = c.log.WithField("export", c.name)
	defer c.export.Close()

	c.mu.Lock()
	c.phase = phaseTransmission
	if c.shutting {
		c.mu.Unlock()
		return ErrServerClosed
	}
	c.nc.SetDeadline(time.Time{})
	c.mu.Unlock()
	c.log.WithFields(logrus.Fields{"size": c.size, "structured": c.structured}).Debug("nbd: transmission")

	err = c.transmit()
	c.drain()
	if err != nil && c.isShutting() {
		return ErrServerClosed
	}
	if err != nil && !errors.Is(err, ErrProtocol) {
		c.log.WithError(err).Debug("nbd: connection lost")
	}
	return err
}

func (c *conn) isShutting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shutting
}

// beginShutdown makes the connection refuse new commands with ESHUTDOWN;
// an idle connection (or one still in the handshake) is woken up to close,
// a busy one when its last command completes.
func (c *conn) beginShutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shutting = true
	if c.phase == phaseHandshake || c.inflight == 0 {
		c.nc.SetReadDeadline(time.Now())
	}
}

// acquire counts a command in flight, waiting while the limit is reached;
// it reports false once the server is shutting down.
func (c *conn) acquire() bool {
	c.mu.Lock()
	for c.inflight >= c.s.cfg.MaxInFlight && !c.shutting {
		c.cond.Wait()
	}
	ok := !c.shutting
	if ok {
		c.inflight++
	}
	c.mu.Unlock()
	return ok
}

func (c *conn) release() {
	c.mu.Lock()
	c.inflight--
	if c.inflight == 0 && c.shutting {
		c.nc.SetReadDeadline(time.Now())
	}
	c.cond.Signal()
	c.mu.Unlock()
}

// drain waits until every command in flight has completed.
func (c *conn) drain() {
	c.mu.Lock()
	for c.inflight > 0 {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

// protocolError wraps ErrProtocol with what the client did.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// discard skips n bytes of input the server will not use.
func (c *conn) discard(n uint64) error {
	for n > 0 {
		step := int(min(n, 1<<30))
		if _, err := c.br.Discard(step); err != nil {
			return err
		}
		n -= uint64(step)
	}
	return nil
}
