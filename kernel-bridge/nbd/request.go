package nbd

import (
	"fmt"
	"io"
	"sync"

	"github.com/sirupsen/logrus"
)

// minDiscardLimit is the longest refused WRITE payload the server always
// reads and drops rather than hanging up: the spec asks servers not to treat
// lengths below 32 MiB as an attack.
const minDiscardLimit = 32 << 20

// request is a decoded request header.
type request struct {
	flags  uint16
	typ    uint16
	handle uint64
	offset uint64
	length uint32
}

// parseRequest decodes a request header; ok is false for a bad magic,
// after which the stream cannot be trusted.
func parseRequest(h []byte) (r request, ok bool) {
	if be.Uint32(h[0:]) != magicRequest {
		return r, false
	}
	return request{
		flags:  be.Uint16(h[4:]),
		typ:    be.Uint16(h[6:]),
		handle: be.Uint64(h[8:]),
		offset: be.Uint64(h[16:]),
		length: be.Uint32(h[24:]),
	}, true
}

// exportLimits is what validate checks a request against.
type exportLimits struct {
	size       uint64
	tflags     uint16
	minBlock   uint32
	maxBlock   uint32
	structured bool
	allocCtx   bool
}

func (c *conn) limits() exportLimits {
	return exportLimits{c.size, c.tflags, c.minBlock, c.maxBlock, c.structured, c.allocCtx}
}

// validate decides whether a request may go to the backend; it returns the
// error the client gets otherwise. It is a pure function of the request and
// what was negotiated.
func validate(r request, l exportLimits) *requestError {
	f := r.flags
	if r.typ > CmdBlockStatus || r.typ == CmdDisc {
		return errUnknownCmd
	}
	if f&^knownCmdFlags != 0 {
		return errBadFlags
	}
	if f&CmdFlagFUA != 0 && l.tflags&flagSendFUA == 0 {
		return errBadFlags
	}
	if f&(CmdFlagNoHole|CmdFlagFastZero) != 0 && r.typ != CmdWriteZeroes {
		return errBadFlags
	}
	if f&CmdFlagDF != 0 && (r.typ != CmdRead || !l.structured) {
		return errBadFlags
	}
	if f&CmdFlagReqOne != 0 && r.typ != CmdBlockStatus {
		return errBadFlags
	}
	readOnly := l.tflags&flagReadOnly != 0
	pastEnd := r.offset > l.size || uint64(r.length) > l.size-r.offset
	unaligned := l.minBlock > 1 && (r.offset%uint64(l.minBlock) != 0 || r.length%l.minBlock != 0)
	switch r.typ {
	case CmdRead:
		switch {
		case pastEnd:
			return errPastEnd
		case r.length > l.maxBlock:
			return errTooLong
		case unaligned:
			return errUnaligned
		}
	case CmdWrite:
		switch {
		case readOnly:
			return errReadOnly
		case pastEnd:
			return errWritePastEnd
		case r.length > l.maxBlock:
			return errTooLong
		case unaligned:
			return errUnaligned
		}
	case CmdFlush:
		if l.tflags&flagSendFlush == 0 {
			return errNotAdvertised
		}
	case CmdTrim:
		switch {
		case readOnly:
			return errReadOnly
		case l.tflags&flagSendTrim == 0:
			return errNotAdvertised
		case pastEnd:
			return errPastEnd
		case unaligned:
			return errUnaligned
		}
	case CmdWriteZeroes:
		switch {
		case readOnly:
			return errReadOnly
		case l.tflags&flagSendWriteZeroes == 0:
			return errNotAdvertised
		case f&CmdFlagFastZero != 0 && l.tflags&flagSendFastZero == 0:
			return errBadFlags
		case pastEnd:
			return errWritePastEnd
		case unaligned:
			return errUnaligned
		}
	case CmdCache:
		switch {
		case l.tflags&flagSendCache == 0:
			return errNotAdvertised
		case pastEnd:
			return errPastEnd
		case r.length > l.maxBlock:
			return errTooLong
		case unaligned:
			return errUnaligned
		}
	case CmdBlockStatus:
		switch {
		case !l.allocCtx:
			return errNoMetaContext
		case pastEnd || r.length == 0:
			return errPastEnd
		}
	}
	return nil
}

var commandPool sync.Pool

func init() {
	// Done is bound once per pooled command, so a request allocates no
	// closure.
	commandPool.New = func() any {
		cmd := new(Command)
		cmd.Done = cmd.done
		return cmd
	}
}

func (c *conn) getCommand(r request) *Command {
	cmd := commandPool.Get().(*Command)
	cmd.conn = c
	cmd.Type, cmd.Flags = r.typ, r.flags&^(CmdFlagDF|CmdFlagReqOne)
	cmd.Offset, cmd.Length = r.offset, r.length
	cmd.handle = r.handle
	cmd.df = r.flags&CmdFlagDF != 0
	cmd.reqOne = r.flags&CmdFlagReqOne != 0
	cmd.pending.Store(true)
	return cmd
}

func putCommand(cmd *Command) {
	cmd.conn, cmd.Buf = nil, nil
	if cap(cmd.hdr) > 64<<10 {
		cmd.hdr, cmd.spans = nil, nil
	}
	if cap(cmd.iov) > 1024 {
		cmd.iov = nil
	}
	if cap(cmd.extents) > 1024 {
		cmd.extents = nil
	}
	commandPool.Put(cmd)
}

// transmit reads requests until the client disconnects or the connection
// fails. Commands start on this goroutine; their replies go out from
// whichever goroutine completes them.
func (c *conn) transmit() error {
	discardLimit := uint64(max(c.maxBlock, minDiscardLimit))
	for {
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			if err == io.EOF {
				return fmt.Errorf("client closed without NBD_CMD_DISC: %w", err)
			}
			return fmt.Errorf("read request: %w", err)
		}
		r, ok := parseRequest(c.hdr[:])
		if !ok {
			c.log.WithField("magic", fmt.Sprintf("%#x", be.Uint32(c.hdr[:]))).Warn("nbd: bad request magic; dropping the client")
			return protocolError("bad request magic %#x", be.Uint32(c.hdr[:]))
		}
		if r.typ == CmdDisc {
			return nil
		}
		// Only a WRITE carries a payload, whatever else is wrong with it.
		payload := uint64(0)
		if r.typ == CmdWrite {
			payload = uint64(r.length)
		}
		cmd := c.getCommand(r)
		if !c.acquire() {
			if err := c.refuse(cmd, payload, discardLimit, errShutdown); err != nil {
				return err
			}
			continue
		}
		if rerr := validate(r, c.limits()); rerr != nil {
			if c.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
				c.log.WithFields(logFields(r)).WithField("errno", rerr.errno).Debug("nbd: refused request: ", rerr.msg)
			}
			if err := c.refuseInFlight(cmd, payload, discardLimit, rerr); err != nil {
				return err
			}
			continue
		}
		if err := c.start(cmd); err != nil {
			return err
		}
	}
}

// start hands a valid command to the backend.
func (c *conn) start(cmd *Command) error {
	switch cmd.Type {
	case CmdRead, CmdWrite:
		if cmd.Length == 0 {
			cmd.done(nil)
			return nil
		}
		n := int(cmd.Length)
		buf, err := c.export.Buffer(n)
		if err == nil && len(buf.Bytes()) < n {
			buf.Release()
			err = errShortBuffer
		}
		if err != nil {
			if cmd.Type == CmdWrite {
				if derr := c.discard(uint64(n)); derr != nil {
					c.abandon(cmd)
					return fmt.Errorf("skip write payload: %w", derr)
				}
			}
			cmd.done(err)
			return nil
		}
		cmd.Buf = buf
		if cmd.Type == CmdWrite {
			if _, err := io.ReadFull(c.br, buf.Bytes()[:n]); err != nil {
				c.abandon(cmd)
				return fmt.Errorf("read write payload: %w", err)
			}
		}
		c.export.Start(cmd)
	case CmdTrim, CmdWriteZeroes, CmdCache:
		if cmd.Length == 0 {
			cmd.done(nil)
			return nil
		}
		c.export.Start(cmd)
	case CmdFlush:
		c.export.Start(cmd)
	case CmdBlockStatus:
		if c.s.inlineBlockStatus {
			c.blockStatus(cmd)
		} else {
			go c.blockStatus(cmd)
		}
	}
	return nil
}

// refuse answers a command that is not counted in flight (the server is
// shutting down), first skipping its payload.
func (c *conn) refuse(cmd *Command, payload, limit uint64, rerr *requestError) error {
	if payload > limit {
		putCommand(cmd)
		return protocolError("refused write of %d bytes", payload)
	}
	if err := c.discard(payload); err != nil {
		putCommand(cmd)
		return fmt.Errorf("skip write payload: %w", err)
	}
	c.reply(cmd, rerr)
	putCommand(cmd)
	return nil
}

// refuseInFlight is refuse for a command already counted in flight.
func (c *conn) refuseInFlight(cmd *Command, payload, limit uint64, rerr *requestError) error {
	if payload > limit {
		c.abandon(cmd)
		return protocolError("refused write of %d bytes", payload)
	}
	if err := c.discard(payload); err != nil {
		c.abandon(cmd)
		return fmt.Errorf("skip write payload: %w", err)
	}
	cmd.done(rerr)
	return nil
}

// abandon drops a command that will get no reply (the connection is
// going away).
func (c *conn) abandon(cmd *Command) {
	if cmd.Buf != nil {
		cmd.Buf.Release()
	}
	cmd.pending.Store(false)
	putCommand(cmd)
	c.release()
}

// done is every Command's Done: it writes the reply, gives the buffer back
// and frees the command's place in flight.
func (cmd *Command) done(err error) {
	if !cmd.pending.CompareAndSwap(true, false) {
		panic("nbd: Command.Done called twice")
	}
	c := cmd.conn
	c.reply(cmd, err)
	if cmd.Buf != nil {
		cmd.Buf.Release()
	}
	putCommand(cmd)
	c.release()
}

// blockStatus runs on a goroutine of its own: answering it may take a map
// lookup that should not hold up the reader.
func (c *conn) blockStatus(cmd *Command) {
	ext, err := c.export.BlockStatus(cmd.Offset, uint64(cmd.Length))
	if err == nil {
		cmd.extents = normalizeExtents(cmd.extents[:0], ext, cmd.Length, cmd.reqOne)
		if len(cmd.extents) == 0 {
			err = errBadExtents
		}
	}
	cmd.done(err)
}

// normalizeExtents appends to dst the backend's extents cut to length,
// without empty ones, with neighbours of equal flags merged, and only the
// first one when reqOne.
func normalizeExtents(dst, ext []Extent, length uint32, reqOne bool) []Extent {
	left := length
	for _, e := range ext {
		if left == 0 {
			break
		}
		if e.Length == 0 {
			continue
		}
		e.Length = min(e.Length, left)
		e.Flags &= StateHole | StateZero
		left -= e.Length
		if n := len(dst); n > 0 && dst[n-1].Flags == e.Flags {
			dst[n-1].Length += e.Length
			continue
		}
		dst = append(dst, e)
	}
	if reqOne && len(dst) > 1 {
		dst = dst[:1]
	}
	return dst
}

func logFields(r request) logrus.Fields {
	return logrus.Fields{"op": r.typ, "offset": r.offset, "length": r.length, "flags": r.flags}
}
