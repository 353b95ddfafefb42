package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/archipelago-go/archipelago/bench/latency"
)

// The socket protocol: a request is a 32-byte header followed by sizeBytes
// of payload; the reply is a 32-byte header and no payload, like the reply
// to an XSEG WRITE. All fields are little-endian.
//
//	offset  request          reply
//	0       magic (u32)      magic (u32)
//	4       op (u32)         status (u32, 0: done)
//	8       tag (u64)        tag, echoed
//	16      submitNs (i64)   submitNs, echoed (0: request not timed)
//	24      sizeBytes (u32)  sizeBytes, echoed
//	28      reserved         reserved
//
// Echoing the submit time lets the reading goroutine compute latency
// without sharing a table with the writing one.
const (
	headerSize   = 32
	requestMagic = 0x51525358 // "XSRQ"
	replyMagic   = 0x50525358 // "XSRP"
	opWrite      = 1

	// socketBufferBytes sizes the user-space buffers on both ends: large
	// enough that a whole window of requests or replies goes out in one
	// write, which is what makes this baseline batch like a real transport.
	socketBufferBytes = 1 << 20
)

type header struct {
	magic, op uint32 // op holds the status in a reply
	tag       uint64
	submitNs  int64
	sizeBytes uint32
}

func (h *header) encode(b *[headerSize]byte) {
	binary.LittleEndian.PutUint32(b[0:], h.magic)
	binary.LittleEndian.PutUint32(b[4:], h.op)
	binary.LittleEndian.PutUint64(b[8:], h.tag)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.submitNs))
	binary.LittleEndian.PutUint32(b[24:], h.sizeBytes)
	binary.LittleEndian.PutUint32(b[28:], 0)
}

func (h *header) decode(b *[headerSize]byte) {
	h.magic = binary.LittleEndian.Uint32(b[0:])
	h.op = binary.LittleEndian.Uint32(b[4:])
	h.tag = binary.LittleEndian.Uint64(b[8:])
	h.submitNs = int64(binary.LittleEndian.Uint64(b[16:]))
	h.sizeBytes = binary.LittleEndian.Uint32(b[24:])
}

// runUnix measures round trips over a unix stream socket to a child server.
func runUnix(cfg config, cl *cleaner) (latency.Result, error) {
	dir, err := os.MkdirTemp("", "ipc-baseline-*")
	if err != nil {
		return latency.Result{}, fmt.Errorf("create socket directory: %w", err)
	}
	cl.add(func() { os.RemoveAll(dir) })
	socketPath := filepath.Join(dir, "server.sock")

	server, err := startChild([]string{unixServeCommand, "--socket", socketPath})
	if err != nil {
		return latency.Result{}, err
	}
	cl.add(server.kill)
	conn, err := net.Dial("unix", socketPath)
	if err != nil {
		return latency.Result{}, fmt.Errorf("connect to server: %w", err)
	}
	// A connected socket no longer needs its name: remove it now so that
	// even a SIGKILL leaves nothing behind.
	os.RemoveAll(dir)

	m, err := unixLoop(cfg, conn) // closes conn: the server sees EOF and exits
	if err != nil {
		return latency.Result{}, err
	}
	if err := server.wait(); err != nil {
		return latency.Result{}, err
	}
	return m.Result(cfg.mode, cfg.iodepth, cfg.sizeBytes, cfg.sampleEvery), nil
}

// unixLoop keeps cfg.iodepth requests in flight on conn, which it closes
// when the run is over. This goroutine
// reads replies and hands each request's tag to a writer goroutine, which
// submits a new request with it. The writer flushes only when it has no tag
// to use, so requests go out in batches as large as the replies that freed
// them, and the reader reads replies in batches through its buffer.
func unixLoop(cfg config, conn net.Conn) (*latency.Meter, error) {
	m := latency.NewMeter(cfg.warmup, cfg.duration)
	free := make(chan uint64, cfg.iodepth) // tags of requests not in flight
	for tag := range cfg.iodepth {
		free <- uint64(tag)
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		err := writeRequests(conn, cfg, m, free, stop)
		if err != nil {
			conn.Close() // wake the reader
		}
		writerDone <- err
	}()

	r := bufio.NewReaderSize(conn, socketBufferBytes)
	var buf [headerSize]byte
	var reply header
	var readErr error
	for {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			readErr = fmt.Errorf("read reply: %w", err)
			break
		}
		now := m.Now()
		reply.decode(&buf)
		if reply.magic != replyMagic || reply.op != 0 || reply.tag >= uint64(cfg.iodepth) {
			readErr = fmt.Errorf("bad reply from server: magic %#x status %d tag %d", reply.magic, reply.op, reply.tag)
			break
		}
		m.Done(1)
		if reply.submitNs != 0 {
			m.Record(reply.submitNs, now)
		}
		if !m.Tick(now) {
			break
		}
		free <- reply.tag // never blocks: at most iodepth tags exist
	}
	// Closing the connection wakes a writer blocked on a full socket and
	// tells the server to exit; what is still in flight is not counted.
	close(stop)
	conn.Close()
	writeErr := <-writerDone
	switch {
	case readErr == nil:
		return m, nil
	case writeErr != nil && !errors.Is(writeErr, net.ErrClosed):
		return nil, fmt.Errorf("write request: %w", writeErr) // the first failure
	default:
		return nil, readErr
	}
}

func writeRequests(conn net.Conn, cfg config, m *latency.Meter, free <-chan uint64, stop <-chan struct{}) error {
	w := bufio.NewWriterSize(conn, socketBufferBytes)
	payload := make([]byte, cfg.sizeBytes)
	for i := range payload {
		payload[i] = byte(i)
	}
	timed := latency.NewSampler(cfg.sampleEvery)
	req := header{magic: requestMagic, op: opWrite, sizeBytes: uint32(cfg.sizeBytes)}
	var buf [headerSize]byte
	for {
		select {
		case req.tag = <-free:
		default:
			if err := w.Flush(); err != nil {
				return err
			}
			select {
			case req.tag = <-free:
			case <-stop:
				return nil
			}
		}
		req.submitNs = 0
		if timed.Next() {
			req.submitNs = m.Now()
		}
		req.encode(&buf)
		if _, err := w.Write(buf[:]); err != nil {
			return err
		}
		if _, err := w.Write(payload); err != nil {
			return err
		}
	}
}

// serveUnixMain is the child side of the unix mode: it listens on the
// socket named by --socket, serves the one connection that comes, and
// exits when the client closes it.
func serveUnixMain(args []string) error {
	fs := flag.NewFlagSet(unixServeCommand, flag.ContinueOnError)
	socketPath := fs.String("socket", "", "unix socket path to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ready, err := inheritedFile(readyFD, "ready", os.ModeNamedPipe)
	if err != nil {
		return fmt.Errorf("unix server: %w", err)
	}
	if *socketPath == "" {
		return errors.New("unix server: --socket is required")
	}
	ln, err := net.Listen("unix", *socketPath)
	if err != nil {
		return fmt.Errorf("unix server: listen: %w", err)
	}
	if err := serverReady(ready); err != nil {
		ln.Close()
		return fmt.Errorf("unix server: %w", err)
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return fmt.Errorf("unix server: accept: %w", err)
	}
	defer conn.Close()
	if err := serveUnix(conn); err != nil {
		return fmt.Errorf("unix server: %w", err)
	}
	return nil
}

// serveUnix answers requests on conn until the client goes away. It
// flushes its replies only before a read that could block, so replies to a
// batch of requests go back in one write.
func serveUnix(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, socketBufferBytes)
	w := bufio.NewWriterSize(conn, socketBufferBytes)
	var buf [headerSize]byte
	var h header
	for {
		if r.Buffered() < headerSize {
			if err := w.Flush(); err != nil {
				return clientGone(err)
			}
		}
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return clientGone(err)
		}
		h.decode(&buf)
		if h.magic != requestMagic || h.op != opWrite {
			return fmt.Errorf("bad request: magic %#x op %d", h.magic, h.op)
		}
		if n := int(h.sizeBytes); n > 0 {
			if r.Buffered() < n {
				if err := w.Flush(); err != nil {
					return clientGone(err)
				}
			}
			if _, err := r.Discard(n); err != nil {
				return clientGone(err)
			}
		}
		h.magic, h.op = replyMagic, 0
		h.encode(&buf)
		if _, err := w.Write(buf[:]); err != nil {
			return clientGone(err)
		}
	}
}

// clientGone turns the errors of a client that closed its end at the end
// of a run into nil.
func clientGone(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}
