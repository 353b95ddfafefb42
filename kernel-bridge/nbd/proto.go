package nbd

// Wire constants of the NBD protocol (doc/proto.md). Values that a Backend
// sees (command types and flags, block status flags) are exported; the rest
// stay inside the package.

// Magic numbers.
const (
	magicInit         = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt          = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply     = 0x0003e889045565a9
	magicRequest      = 0x25609513
	magicSimpleReply  = 0x67446698
	magicStructReply  = 0x668e33ef
	requestHeaderSize = 28
	simpleReplySize   = 16
	chunkHeaderSize   = 20
	optHeaderSize     = 16 // magic, option, length
)

// Handshake flags (server) and client flags.
const (
	flagFixedNewstyle   = 1 << 0
	flagNoZeroes        = 1 << 1
	clientFixedNewstyle = 1 << 0
	clientNoZeroes      = 1 << 1
)

// Options.
const (
	optExportName      = 1
	optAbort           = 2
	optList            = 3
	optStartTLS        = 5
	optInfo            = 6
	optGo              = 7
	optStructuredReply = 8
	optListMetaContext = 9
	optSetMetaContext  = 10
)

// Option reply types.
const (
	repAck          = 1
	repServer       = 2
	repInfo         = 3
	repMetaContext  = 4
	repErrUnsup     = 1<<31 + 1
	repErrPolicy    = 1<<31 + 2
	repErrInvalid   = 1<<31 + 3
	repErrPlatform  = 1<<31 + 4
	repErrTLSReqd   = 1<<31 + 5
	repErrUnknown   = 1<<31 + 6
	repErrShutdown  = 1<<31 + 7
	repErrBlockSize = 1<<31 + 8
	repErrTooBig    = 1<<31 + 9
)

// Information types of NBD_OPT_INFO and NBD_OPT_GO.
const (
	infoExport      = 0
	infoName        = 1
	infoDescription = 2
	infoBlockSize   = 3
)

// Transmission flags.
const (
	flagHasFlags        = 1 << 0
	flagReadOnly        = 1 << 1
	flagSendFlush       = 1 << 2
	flagSendFUA         = 1 << 3
	flagRotational      = 1 << 4
	flagSendTrim        = 1 << 5
	flagSendWriteZeroes = 1 << 6
	flagSendDF          = 1 << 7
	flagCanMultiConn    = 1 << 8
	flagSendCache       = 1 << 10
	flagSendFastZero    = 1 << 11
)

// Command types (NBD_CMD_*), the Type of a Command.
const (
	CmdRead        uint16 = 0
	CmdWrite       uint16 = 1
	CmdDisc        uint16 = 2
	CmdFlush       uint16 = 3
	CmdTrim        uint16 = 4
	CmdCache       uint16 = 5
	CmdWriteZeroes uint16 = 6
	CmdBlockStatus uint16 = 7
)

// Command flags (NBD_CMD_FLAG_*), the Flags of a Command.
const (
	// CmdFlagFUA asks that the command's writes are durable before the
	// reply (force unit access).
	CmdFlagFUA uint16 = 1 << 0
	// CmdFlagNoHole asks WRITE_ZEROES to leave the range allocated.
	CmdFlagNoHole uint16 = 1 << 1
	// CmdFlagDF asks for a READ reply in one data chunk; the server
	// handles it, a Backend never sees it set.
	CmdFlagDF uint16 = 1 << 2
	// CmdFlagReqOne asks BLOCK_STATUS for a single extent; the server
	// handles it.
	CmdFlagReqOne uint16 = 1 << 3
	// CmdFlagFastZero asks WRITE_ZEROES to fail at once with ENOTSUP
	// unless it is faster than writing zeroes.
	CmdFlagFastZero uint16 = 1 << 4

	knownCmdFlags = CmdFlagFUA | CmdFlagNoHole | CmdFlagDF | CmdFlagReqOne | CmdFlagFastZero
)

// Structured reply chunk types and flags.
const (
	replyFlagDone        = 1 << 0
	replyTypeNone        = 0
	replyTypeOffsetData  = 1
	replyTypeOffsetHole  = 2
	replyTypeBlockStatus = 5
	replyTypeError       = 1<<15 + 1
	replyTypeErrorOffset = 1<<15 + 2
)

// Block status flags of the base:allocation context, the Flags of an Extent.
const (
	// StateHole marks an extent that is not allocated.
	StateHole uint32 = 1 << 0
	// StateZero marks an extent that reads as zeroes.
	StateZero uint32 = 1 << 1
)

// The one metadata context the server knows, and the id it gives it.
const (
	metaBaseAllocation = "base:allocation"
	metaIDAllocation   = 1
)

// NBD error values (the errno field of replies).
const (
	errnoPerm      = 1
	errnoIO        = 5
	errnoNoMem     = 12
	errnoInval     = 22
	errnoNoSpc     = 28
	errnoOverflow  = 75
	errnoNotSup    = 95
	errnoShutdown  = 108
	maxStringBytes = 4096 // longest string the spec allows (names, messages)
)
