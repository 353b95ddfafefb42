package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

const (
	// maxOptionBytes bounds the data of one option; every option the
	// server knows fits easily (names are at most 4096 bytes).
	maxOptionBytes = 64 << 10
	// maxOptionDiscard is the longest option the server skips (answering
	// NBD_REP_ERR_TOO_BIG) rather than dropping the client.
	maxOptionDiscard = 1 << 20
)

var be = binary.BigEndian

// handshake runs the fixed newstyle handshake and the option haggling. It
// reports whether the transmission phase was entered (c.export is then
// open); false with a nil error is a clean NBD_OPT_ABORT.
func (c *conn) handshake() (bool, error) {
	var greeting [18]byte
	be.PutUint64(greeting[0:], magicInit)
	be.PutUint64(greeting[8:], magicOpt)
	be.PutUint16(greeting[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := c.nc.Write(greeting[:]); err != nil {
		return false, fmt.Errorf("write greeting: %w", err)
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return false, fmt.Errorf("read client flags: %w", err)
	}
	clientFlags := be.Uint32(cf[:])
	if clientFlags&^(clientFixedNewstyle|clientNoZeroes) != 0 {
		return false, protocolError("unknown client flags %#x", clientFlags)
	}
	c.noZeroes = clientFlags&clientNoZeroes != 0

	for {
		var h [optHeaderSize]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return false, fmt.Errorf("read option: %w", err)
		}
		if m := be.Uint64(h[0:]); m != magicOpt {
			return false, protocolError("bad option magic %#x", m)
		}
		opt, length := be.Uint32(h[8:]), be.Uint32(h[12:])
		if length > maxOptionBytes {
			if length > maxOptionDiscard {
				return false, protocolError("option %d of %d bytes", opt, length)
			}
			if err := c.discard(uint64(length)); err != nil {
				return false, fmt.Errorf("skip option: %w", err)
			}
			if err := c.optReplyMsg(opt, repErrTooBig, "option data too long"); err != nil {
				return false, err
			}
			continue
		}
		if cap(c.optBuf) < int(length) {
			c.optBuf = make([]byte, length)
		}
		data := c.optBuf[:length]
		if _, err := io.ReadFull(c.br, data); err != nil {
			return false, fmt.Errorf("read option data: %w", err)
		}
		entered, done, err := c.option(opt, data)
		if err != nil || done {
			return entered, err
		}
	}
}

// option answers one option; done ends the haggling (transmission entered,
// or an abort).
func (c *conn) option(opt uint32, data []byte) (entered, done bool, err error) {
	if c.s.shutting.Load() && opt != optAbort {
		return false, false, c.optReplyMsg(opt, repErrShutdown, "server is shutting down")
	}
	switch opt {
	case optExportName:
		return c.optExportName(data)
	case optAbort:
		c.optReply(opt, repAck) // the client may already be gone
		return false, true, nil
	case optList:
		return false, false, c.optList(data)
	case optInfo, optGo:
		return c.optInfoGo(opt, data)
	case optStructuredReply:
		if len(data) != 0 {
			return false, false, c.optReplyMsg(opt, repErrInvalid, "STRUCTURED_REPLY takes no data")
		}
		c.structured = true
		return false, false, c.optReply(opt, repAck)
	case optListMetaContext, optSetMetaContext:
		return false, false, c.optMetaContext(opt, data)
	default:
		// NBD_OPT_STARTTLS lands here too: this server has no TLS.
		return false, false, c.optReplyMsg(opt, repErrUnsup, fmt.Sprintf("option %d not supported", opt))
	}
}

func (c *conn) optExportName(data []byte) (bool, bool, error) {
	name := string(data)
	exp, err := c.s.backend.Open(name)
	if err != nil {
		// NBD_OPT_EXPORT_NAME cannot fail politely: hang up.
		return false, true, fmt.Errorf("open export %q: %w", name, err)
	}
	c.enter(name, exp)
	var r [8 + 2 + 124]byte
	be.PutUint64(r[0:], c.size)
	be.PutUint16(r[8:], c.tflags)
	n := len(r)
	if c.noZeroes {
		n = 10
	}
	if _, err := c.nc.Write(r[:n]); err != nil {
		exp.Close()
		return false, true, fmt.Errorf("write export reply: %w", err)
	}
	return true, true, nil
}

func (c *conn) optList(data []byte) error {
	if len(data) != 0 {
		return c.optReplyMsg(optList, repErrInvalid, "LIST takes no data")
	}
	names, err := c.s.backend.List()
	if err != nil {
		return c.optReplyMsg(optList, optErrorOf(err), err.Error())
	}
	for _, name := range names {
		if len(name) > maxStringBytes {
			continue
		}
		var l [4]byte
		be.PutUint32(l[:], uint32(len(name)))
		if err := c.optReply(optList, repServer, l[:], []byte(name)); err != nil {
			return err
		}
	}
	return c.optReply(optList, repAck)
}

// parseInfoRequest splits the data of NBD_OPT_INFO and NBD_OPT_GO.
func parseInfoRequest(data []byte) (name string, infos []byte, ok bool) {
	if len(data) < 6 {
		return "", nil, false
	}
	nameLen := be.Uint32(data)
	if uint64(nameLen) > uint64(len(data)-6) || nameLen > maxStringBytes {
		return "", nil, false
	}
	rest := data[4+nameLen:]
	n := int(be.Uint16(rest))
	if len(rest) != 2+2*n {
		return "", nil, false
	}
	return string(data[4 : 4+nameLen]), rest[2:], true
}

func (c *conn) optInfoGo(opt uint32, data []byte) (bool, bool, error) {
	name, infos, ok := parseInfoRequest(data)
	if !ok {
		return false, false, c.optReplyMsg(opt, repErrInvalid, "malformed INFO/GO request")
	}
	exp, err := c.s.backend.Open(name)
	if err != nil {
		c.log.WithError(err).WithField("export", name).Debug("nbd: open export")
		return false, false, c.optReplyMsg(opt, optErrorOf(err), err.Error())
	}
	size, tflags, minB, prefB, maxB := c.describe(exp)
	var wantName, wantDesc bool
	for i := 0; i+1 < len(infos); i += 2 {
		switch be.Uint16(infos[i:]) {
		case infoName:
			wantName = true
		case infoDescription:
			wantDesc = true
		}
	}
	err = func() error {
		var p [12]byte
		be.PutUint16(p[0:], infoExport)
		be.PutUint64(p[2:], size)
		be.PutUint16(p[10:], tflags)
		if err := c.optReply(opt, repInfo, p[:12]); err != nil {
			return err
		}
		var b [14]byte
		be.PutUint16(b[0:], infoBlockSize)
		be.PutUint32(b[2:], minB)
		be.PutUint32(b[6:], prefB)
		be.PutUint32(b[10:], maxB)
		if err := c.optReply(opt, repInfo, b[:]); err != nil {
			return err
		}
		var t [2]byte
		if wantName {
			be.PutUint16(t[:], infoName)
			if err := c.optReply(opt, repInfo, t[:], []byte(name)); err != nil {
				return err
			}
		}
		if d, ok := exp.(Describer); ok && wantDesc {
			desc := d.Description()
			if len(desc) > maxStringBytes {
				desc = desc[:maxStringBytes]
			}
			be.PutUint16(t[:], infoDescription)
			if err := c.optReply(opt, repInfo, t[:], []byte(desc)); err != nil {
				return err
			}
		}
		return c.optReply(opt, repAck)
	}()
	if err != nil || opt == optInfo {
		exp.Close()
		return false, false, err
	}
	c.enter(name, exp)
	return true, true, nil
}

// describe computes what the server advertises for exp on this connection.
func (c *conn) describe(exp Export) (size uint64, tflags uint16, minB, prefB, maxB uint32) {
	minB, prefB, maxB = exp.BlockSizes()
	if minB == 0 {
		minB = 1
	}
	if prefB == 0 {
		prefB = max(4096, minB)
	}
	if maxB == 0 || maxB > c.s.cfg.MaxRequest {
		maxB = c.s.cfg.MaxRequest
	}
	maxB = max(maxB, minB)
	return exp.Size(), transmissionFlags(exp.Flags(), c.structured), minB, prefB, maxB
}

// transmissionFlags are the flags advertised for an export: what it offers,
// minus what a read-only export cannot do, plus DF with structured replies.
func transmissionFlags(f ExportFlags, structured bool) uint16 {
	t := uint16(f&exportFlagsMask) | flagHasFlags
	if f&ReadOnly != 0 {
		t &^= flagSendTrim | flagSendWriteZeroes
	}
	if t&flagSendWriteZeroes == 0 {
		t &^= flagSendFastZero
	}
	if structured {
		t |= flagSendDF
	}
	return t
}

// enter fixes the export of the transmission phase.
func (c *conn) enter(name string, exp Export) {
	c.export, c.name = exp, name
	c.size, c.tflags, c.minBlock, _, c.maxBlock = c.describe(exp)
	c.allocCtx = c.structured && c.metaSet && c.metaExport == name
}

// parseMetaRequest splits the data of LIST_META_CONTEXT and
// SET_META_CONTEXT.
func parseMetaRequest(data []byte) (name string, queries []string, ok bool) {
	if len(data) < 8 {
		return "", nil, false
	}
	nameLen := be.Uint32(data)
	if uint64(nameLen) > uint64(len(data)-8) || nameLen > maxStringBytes {
		return "", nil, false
	}
	name = string(data[4 : 4+nameLen])
	rest := data[4+nameLen:]
	n := be.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)/4) {
		return "", nil, false
	}
	queries = make([]string, 0, n)
	for range n {
		if len(rest) < 4 {
			return "", nil, false
		}
		l := be.Uint32(rest)
		if uint64(l) > uint64(len(rest)-4) || l > maxStringBytes {
			return "", nil, false
		}
		queries = append(queries, string(rest[4:4+l]))
		rest = rest[4+l:]
	}
	if len(rest) != 0 {
		return "", nil, false
	}
	return name, queries, true
}

func (c *conn) optMetaContext(opt uint32, data []byte) error {
	set := opt == optSetMetaContext
	if set {
		c.metaSet = false // replaced even when the request fails
	}
	if !c.structured {
		return c.optReplyMsg(opt, repErrInvalid, "structured replies not negotiated")
	}
	name, queries, ok := parseMetaRequest(data)
	if !ok {
		return c.optReplyMsg(opt, repErrInvalid, "malformed meta context request")
	}
	match := !set && len(queries) == 0
	for _, q := range queries {
		ns, leaf, ok := strings.Cut(q, ":")
		if !ok {
			return c.optReplyMsg(opt, repErrInvalid, "meta context query without a namespace")
		}
		if ns != "base" {
			continue
		}
		if leaf == "allocation" || (!set && leaf == "") {
			match = true
		}
	}
	if match {
		var id [4]byte
		if set {
			be.PutUint32(id[:], metaIDAllocation)
			c.metaSet, c.metaExport = true, name
		}
		if err := c.optReply(opt, repMetaContext, id[:], []byte(metaBaseAllocation)); err != nil {
			return err
		}
	}
	return c.optReply(opt, repAck)
}

// optReply sends one option reply whose payload is the concatenation of
// parts.
func (c *conn) optReply(opt, typ uint32, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := c.optReplyBuf[:0]
	b = be.AppendUint64(b, magicOptReply)
	b = be.AppendUint32(b, opt)
	b = be.AppendUint32(b, typ)
	b = be.AppendUint32(b, uint32(n))
	for _, p := range parts {
		b = append(b, p...)
	}
	c.optReplyBuf = b
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("write option reply: %w", err)
	}
	return nil
}

func (c *conn) optReplyMsg(opt, typ uint32, msg string) error {
	if len(msg) > maxStringBytes {
		msg = msg[:maxStringBytes]
	}
	return c.optReply(opt, typ, []byte(msg))
}
