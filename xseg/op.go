package xseg

import "fmt"

// Op is a request's operation. The values are those of the original XSEG
// protocol, so tools and logs speak the same numbers.
type Op uint32

// Operations; DESIGN.md says who serves each.
const (
	OpPing Op = iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpDelete
	OpAcquire
	OpRelease
	OpCopy
	OpClone
	OpCommit
	OpInfo
	OpMapRead
	OpMapWrite
	OpOpen
	OpClose
	OpSnapshot
	OpHash
	OpCreate
	OpRename
	OpFlush
	OpUpdate
	// OpDiscard is ours (the original stops at UPDATE): the whole blocks of
	// [offset, offset+size) of a volume become zero blocks, their space
	// given back (NBD TRIM and WRITE_ZEROES).
	OpDiscard
	// OpList is ours too (the original's vlmc read the map storage
	// directly): a blocker replies object names, mapperd volumes, whose
	// names start with the target, a page at a time (peers/protocol).
	OpList
	opCount
)

var opNames = [...]string{"PING", "READ", "WRITE", "SYNC", "TRUNCATE", "DELETE",
	"ACQUIRE", "RELEASE", "COPY", "CLONE", "COMMIT", "INFO", "MAPR", "MAPW",
	"OPEN", "CLOSE", "SNAPSHOT", "HASH", "CREATE", "RENAME", "FLUSH", "UPDATE", "DISCARD", "LIST"}

func (o Op) String() string {
	if o < opCount {
		return opNames[o]
	}
	return fmt.Sprintf("OP(%d)", uint32(o))
}

// Flags modify a request; the values are those of the original protocol.
type Flags uint32

const (
	// FlagNoSync makes ACQUIRE a try-lock.
	FlagNoSync Flags = 1 << iota
	// FlagFlush makes every earlier acknowledged write durable first.
	FlagFlush
	// FlagFUA makes this write durable before the reply.
	FlagFUA
	// FlagForce breaks a lock or closes a volume whoever holds it.
	FlagForce
	// FlagAssumeV0 tells the mapper that an unsigned map is a v0 hashmap.
	FlagAssumeV0
)
