package nbd

import (
	"net"
	"sync/atomic"
)

// Backend opens exports by name.
type Backend interface {
	// List names the exports for NBD_OPT_LIST (may return nil).
	List() ([]string, error)
	// Open opens the named export for one connection; an unknown name
	// returns an error wrapping ErrUnknownExport (the server answers
	// NBD_REP_ERR_UNKNOWN); other errors map to NBD_REP_ERR_* (see
	// ErrExportDenied). NBD_OPT_INFO opens an export and closes it again.
	Open(name string) (Export, error)
}

// Export is one opened export (one per connection).
//
// The server calls Size, Flags and BlockSizes during the handshake, Buffer
// and Start on the connection's reader goroutine, BlockStatus on a goroutine
// of its own (so concurrently with Start), and Close once, after the last
// command has called Done.
type Export interface {
	// Size is the export's size in bytes; it does not change while open.
	Size() uint64
	// Flags says which features the export offers; the server advertises
	// the matching transmission flags and refuses commands the export did
	// not offer with EINVAL.
	Flags() ExportFlags
	// BlockSizes gives the minimum, preferred and maximum block size
	// (NBD_INFO_BLOCK_SIZE); a zero value takes the default (1, 4096, and
	// Config.MaxRequest). The server refuses requests not aligned to min
	// and READ, WRITE and CACHE longer than max with EINVAL.
	BlockSizes() (min, preferred, max uint32)
	// Buffer returns a buffer of n bytes for one command (n may be 0); it
	// may block until one is free, or fail (the command then gets the
	// error). The server owns the buffer until it calls Release, which it
	// does after the command's reply is written.
	Buffer(n int) (Buffer, error)
	// Start starts cmd and returns at once; cmd.Done(err) must be called
	// exactly once, from any goroutine (Start's own included), when the
	// command has completed. For READ the data is in cmd.Buf.Bytes() when
	// Done is called. After Done the Command belongs to the server again:
	// the backend must not touch it.
	Start(cmd *Command)
	// BlockStatus reports the allocation of [off, off+length) as a list of
	// extents that cover at least the first byte and at most the range.
	BlockStatus(off, length uint64) ([]Extent, error)
	// Close releases the export.
	Close() error
}

// Describer is an Export that has a human-readable description, sent as
// NBD_INFO_DESCRIPTION when a client asks for it. It is optional.
type Describer interface {
	Description() string
}

// Buffer is memory that one command reads into or writes from.
type Buffer interface {
	// Bytes is the buffer's memory, at least as long as asked for.
	Bytes() []byte
	// Release gives the buffer back; the server calls it once.
	Release()
}

// ExportFlags are the features an export offers. Their values are the
// transmission flag bits of the protocol.
type ExportFlags uint16

// Export features.
const (
	// ReadOnly refuses WRITE, TRIM and WRITE_ZEROES with EPERM.
	ReadOnly ExportFlags = flagReadOnly
	// CanFlush accepts FLUSH.
	CanFlush ExportFlags = flagSendFlush
	// CanFUA accepts the FUA flag.
	CanFUA ExportFlags = flagSendFUA
	// Rotational hints that the export behaves like a disk that seeks.
	Rotational ExportFlags = flagRotational
	// CanTrim accepts TRIM.
	CanTrim ExportFlags = flagSendTrim
	// CanZero accepts WRITE_ZEROES (with and without NO_HOLE).
	CanZero ExportFlags = flagSendWriteZeroes
	// CanMultiConn promises that FLUSH and FUA on one connection cover
	// writes made through every other connection to the same export.
	CanMultiConn ExportFlags = flagCanMultiConn
	// CanCache accepts CACHE.
	CanCache ExportFlags = flagSendCache
	// CanFastZero accepts the FAST_ZERO flag on WRITE_ZEROES (needs
	// CanZero); the export answers ENOTSUP when zeroing would not be fast.
	CanFastZero ExportFlags = flagSendFastZero

	exportFlagsMask = ReadOnly | CanFlush | CanFUA | Rotational | CanTrim | CanZero | CanMultiConn | CanCache | CanFastZero
)

// Command is one request of the transmission phase, handed to
// Export.Start. Commands are pooled: a backend must not keep a pointer to
// one after calling Done.
type Command struct {
	Type   uint16 // CmdRead, CmdWrite, CmdFlush, CmdTrim, CmdCache, CmdWriteZeroes
	Flags  uint16 // CmdFlag*
	Offset uint64
	Length uint32
	Buf    Buffer          // READ and WRITE only; nil for commands without data
	Done   func(err error) // set by the server; call exactly once

	conn    *conn
	handle  uint64
	df      bool        // READ in one data chunk
	reqOne  bool        // BLOCK_STATUS with one extent
	pending atomic.Bool // between the request and Done
	extents []Extent    // BLOCK_STATUS result
	// scratch for the reply, kept across uses of the pooled command
	hdr   []byte
	spans []span
	iov   [][]byte
	bufs  net.Buffers
}

// Extent is one run of a BLOCK_STATUS reply.
type Extent struct {
	Length uint32
	Flags  uint32 // StateHole | StateZero
}
