package nbd

import (
	"bytes"
	"errors"
)

// holeBlock is the granularity at which a READ reply looks for zeroes to
// send as NBD_REPLY_TYPE_OFFSET_HOLE instead of data.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// maxErrorMessage bounds the error text sent in an error chunk.
const maxErrorMessage = 256

// span is one reply message under construction: a header in cmd.hdr and
// the data (from the backend's buffer) that follows it.
type span struct {
	hdrOff, hdrEnd int
	data           []byte
}

// reply sends the reply of cmd with result err (nil for success): a simple
// reply unless structured replies were negotiated and the reply needs
// them (READ, BLOCK_STATUS, and errors, which then carry a message).
func (c *conn) reply(cmd *Command, err error) {
	errno := errnoOf(err)
	cmd.hdr, cmd.spans = cmd.hdr[:0], cmd.spans[:0]
	switch {
	case !c.structured || errno == 0 && cmd.Type != CmdRead && cmd.Type != CmdBlockStatus:
		cmd.appendSimple(errno)
	case errno != 0:
		cmd.appendError(errno, err)
	case cmd.Type == CmdBlockStatus:
		cmd.appendBlockStatus()
	default:
		cmd.appendRead()
	}
	c.send(cmd)
}

func (cmd *Command) appendSimple(errno uint32) {
	off := len(cmd.hdr)
	cmd.hdr = be.AppendUint32(cmd.hdr, magicSimpleReply)
	cmd.hdr = be.AppendUint32(cmd.hdr, errno)
	cmd.hdr = be.AppendUint64(cmd.hdr, cmd.handle)
	var data []byte
	if errno == 0 && cmd.Type == CmdRead && cmd.Length > 0 {
		data = cmd.Buf.Bytes()[:cmd.Length]
	}
	cmd.spans = append(cmd.spans, span{off, len(cmd.hdr), data})
}

// appendChunk adds a structured reply chunk header whose payload is the
// extra header bytes the caller appends next plus data.
func (cmd *Command) appendChunk(flags, typ uint16, length uint32) {
	cmd.hdr = be.AppendUint32(cmd.hdr, magicStructReply)
	cmd.hdr = be.AppendUint16(cmd.hdr, flags)
	cmd.hdr = be.AppendUint16(cmd.hdr, typ)
	cmd.hdr = be.AppendUint64(cmd.hdr, cmd.handle)
	cmd.hdr = be.AppendUint32(cmd.hdr, length)
}

func (cmd *Command) appendError(errno uint32, err error) {
	msg := err.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	off := len(cmd.hdr)
	var oe *OffsetError
	if cmd.Type == CmdRead && errors.As(err, &oe) &&
		oe.Offset >= cmd.Offset && oe.Offset-cmd.Offset < uint64(cmd.Length) {
		cmd.appendChunk(replyFlagDone, replyTypeErrorOffset, uint32(6+len(msg)+8))
		cmd.hdr = be.AppendUint32(cmd.hdr, errno)
		cmd.hdr = be.AppendUint16(cmd.hdr, uint16(len(msg)))
		cmd.hdr = append(cmd.hdr, msg...)
		cmd.hdr = be.AppendUint64(cmd.hdr, oe.Offset)
	} else {
		cmd.appendChunk(replyFlagDone, replyTypeError, uint32(6+len(msg)))
		cmd.hdr = be.AppendUint32(cmd.hdr, errno)
		cmd.hdr = be.AppendUint16(cmd.hdr, uint16(len(msg)))
		cmd.hdr = append(cmd.hdr, msg...)
	}
	cmd.spans = append(cmd.spans, span{off, len(cmd.hdr), nil})
}

func (cmd *Command) appendBlockStatus() {
	off := len(cmd.hdr)
	cmd.appendChunk(replyFlagDone, replyTypeBlockStatus, uint32(4+8*len(cmd.extents)))
	cmd.hdr = be.AppendUint32(cmd.hdr, metaIDAllocation)
	for _, e := range cmd.extents {
		cmd.hdr = be.AppendUint32(cmd.hdr, e.Length)
		cmd.hdr = be.AppendUint32(cmd.hdr, e.Flags)
	}
	cmd.spans = append(cmd.spans, span{off, len(cmd.hdr), nil})
}

// appendRead builds the structured reply of a successful READ: runs of
// whole 4 KiB blocks (aligned in the export) that are all zero become
// OFFSET_HOLE chunks, the rest OFFSET_DATA chunks, neighbours coalesced;
// with DF it is one OFFSET_DATA chunk.
func (cmd *Command) appendRead() {
	if cmd.Length == 0 {
		off := len(cmd.hdr)
		cmd.appendChunk(replyFlagDone, replyTypeNone, 0)
		cmd.spans = append(cmd.spans, span{off, len(cmd.hdr), nil})
		return
	}
	data := cmd.Buf.Bytes()[:cmd.Length]
	if cmd.df || len(data) < holeBlock {
		cmd.appendReadChunk(0, data, false, true)
		return
	}
	// The first block ends at the next aligned boundary; a partial block
	// at either end is data.
	runStart, runZero := 0, false
	pos := min(int((holeBlock-cmd.Offset%holeBlock)%holeBlock), len(data))
	for pos < len(data) {
		end := min(pos+holeBlock, len(data))
		zero := end-pos == holeBlock && bytes.Equal(data[pos:end], zeroBlock[:])
		if pos == 0 {
			runZero = zero
		} else if zero != runZero {
			cmd.appendReadChunk(runStart, data[runStart:pos], runZero, false)
			runStart, runZero = pos, zero
		}
		pos = end
	}
	cmd.appendReadChunk(runStart, data[runStart:], runZero, true)
}

// appendReadChunk adds one content chunk for data, which starts rel bytes
// into the request.
func (cmd *Command) appendReadChunk(rel int, data []byte, hole, last bool) {
	var flags uint16
	if last {
		flags = replyFlagDone
	}
	off := len(cmd.hdr)
	if hole {
		cmd.appendChunk(flags, replyTypeOffsetHole, 12)
		cmd.hdr = be.AppendUint64(cmd.hdr, cmd.Offset+uint64(rel))
		cmd.hdr = be.AppendUint32(cmd.hdr, uint32(len(data)))
		data = nil
	} else {
		cmd.appendChunk(flags, replyTypeOffsetData, uint32(8+len(data)))
		cmd.hdr = be.AppendUint64(cmd.hdr, cmd.Offset+uint64(rel))
	}
	cmd.spans = append(cmd.spans, span{off, len(cmd.hdr), data})
}

// send writes the spans of cmd's reply with one writev under the
// connection's write lock. A failed write closes the connection, which
// ends the reader; later replies are dropped.
func (c *conn) send(cmd *Command) {
	cmd.iov = cmd.iov[:0]
	for _, s := range cmd.spans {
		cmd.iov = append(cmd.iov, cmd.hdr[s.hdrOff:s.hdrEnd])
		if len(s.data) > 0 {
			cmd.iov = append(cmd.iov, s.data)
		}
	}
	c.wmu.Lock()
	if c.werr == nil {
		cmd.bufs = cmd.iov
		if _, err := cmd.bufs.WriteTo(c.nc); err != nil {
			c.werr = err
			c.nc.Close()
			c.log.WithError(err).Debug("nbd: write reply")
		}
	}
	c.wmu.Unlock()
	cmd.bufs = nil
	clear(cmd.iov)
	cmd.iov = cmd.iov[:0]
	for i := range cmd.spans {
		cmd.spans[i].data = nil
	}
}
