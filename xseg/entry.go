package xseg

import (
	"sync/atomic"
	"unsafe"
)

// portEntry is a port as it lives in the segment. Every process that joins
// reads and writes it concurrently, so each field is atomic or written only
// by the port's owner; the layout is part of LayoutVersion.
type portEntry struct {
	// owner is generation<<32 | pid; pid 0 means free. The generation
	// grows at every bind and every recovery, so a request that recorded
	// an older one knows its port has changed hands.
	owner atomic.Uint64
	// start is the owner's process start time (clock ticks after boot), so
	// a recycled pid is not taken for the owner.
	start atomic.Uint64
	state atomic.Uint32 // portFree, portBound, portRecovering
	ready atomic.Uint32 // rings laid out (done at first bind)
	_     [64 - 24]byte

	// sleeping is the futex word: 1 while the owner sleeps in Wait.
	sleeping atomic.Uint32
	_        [64 - 4]byte

	// submitted is written by submitters, the rest by the owner: separate
	// cache lines keep them from bouncing between cores.
	submitted atomic.Uint64
	_         [64 - 8]byte
	served    atomic.Uint64
	failed    atomic.Uint64
	wakeups   atomic.Uint64
	replies   atomic.Uint64
	_         [64 - 32]byte
}

const portEntrySize = 256

const (
	portFree uint32 = iota
	portBound
	portRecovering
)

// hop is one entry of a request's return path.
type hop struct{ port, gen uint32 }

// slot is a request as it lives in the segment. Its plain fields are
// written by the one port that holds it and handed over by the ring push
// that moves it to the next port (a release) and the pop there (an acquire).
type slot struct {
	state  atomic.Uint32 // slotFree ... slotReplied
	holder atomic.Uint32 // port responsible for it in that state
	gen    uint32        // generation of holder when it took the slot
	op     uint32
	flags  uint32
	status uint32 // statusNone, statusServed, statusFailed
	code   uint32 // failure code: an errno, or codePeerDied
	tlen   uint32 // target length
	offset uint64
	size   uint64
	served uint64 // bytes serviced
	bufOff uint64 // buffer offset from the start of buffer space
	bufLen uint64 // buffer capacity; 0 = none
	dlen   uint64 // data length asked by Prepare
	priv   uint64 // the submitter's own word
	src    uint32 // the port that got the slot
	dst    uint32 // the port it was last submitted or forwarded to
	npath  uint32
	parent uint32 // 1 + index of the request whose buffer this one borrows; 0: none
	path   [MaxPath]hop
	// children counts requests borrowing this one's buffer that are not
	// yet put back; orphan is set when this request must fail back (its
	// server died) as soon as children reaches 0, and not before, since a
	// child's server may still write into the buffer.
	children atomic.Uint32
	orphan   atomic.Uint32 // 0, orphanWaiting, orphanDone
	_        [256 - 240]byte
	target   [MaxTargetLen]byte
}

const slotSize = 512

const (
	slotFree    uint32 = iota
	slotHeld           // by holder, who prepares it or has received its reply
	slotQueued         // in holder's request ring
	slotServing        // accepted by holder
	slotReplied        // in holder's reply ring
)

var slotStateNames = [...]string{"free", "held", "queued", "serving", "replied"}

const (
	statusNone uint32 = iota
	statusServed
	statusFailed
)

const (
	orphanWaiting uint32 = 1 + iota
	orphanDone
)

// codePeerDied is outside the errno range so it cannot be confused with one.
const codePeerDied = 1 << 16

// The layouts above are part of the segment format.
var (
	_ [portEntrySize - unsafe.Sizeof(portEntry{})]byte
	_ [unsafe.Sizeof(portEntry{}) - portEntrySize]byte
	_ [slotSize - unsafe.Sizeof(slot{})]byte
	_ [unsafe.Sizeof(slot{}) - slotSize]byte
	_ [232 - unsafe.Offsetof(slot{}.path) - unsafe.Sizeof(slot{}.path)]byte
)
