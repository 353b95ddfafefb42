package mapper

import (
	"fmt"
	"strings"
)

// Store names the blocker an Action goes to.
type Store uint8

const (
	// MapStore is the map blocker (the original's -mbp port): map headers
	// and map blocks.
	MapStore Store = iota
	// DataStore is the data blocker (-bp): the volumes' objects.
	DataStore
)

func (s Store) String() string {
	if s == MapStore {
		return "map"
	}
	return "data"
}

// Op is what an Action does.
type Op uint8

const (
	// OpWrite writes Data at Offset of Object, creating it if missing. It
	// must be durable before the phase completes.
	OpWrite Op = iota
	// OpCopy replaces Object with the first Size bytes of Source, zeros
	// past Source's end (the blocker's COPY); durable before the phase
	// completes.
	OpCopy
	// OpCreate makes Object exist with Size bytes that read as zeros: the
	// copy-up of a zero block. If Object exists already it may be kept as
	// it is: only an interrupted earlier attempt of the same copy-up can
	// have made it (copy-up names are never reused), and that attempt left
	// zeros. A peer can create it by writing one zero byte at Size-1.
	OpCreate
	// OpDelete deletes Object. An object that does not exist counts as
	// deleted: a plan interrupted and run again meets its own deletions.
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpCopy:
		return "copy"
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Action is one storage operation of a Plan.
type Action struct {
	Op     Op
	Store  Store
	Object string
	Offset uint64 // OpWrite
	Data   []byte // OpWrite
	Source string // OpCopy
	Size   uint64 // OpCopy, OpCreate
}

func (a Action) String() string {
	switch a.Op {
	case OpWrite:
		return fmt.Sprintf("write %s %s @%d +%d", a.Store, a.Object, a.Offset, len(a.Data))
	case OpCopy:
		return fmt.Sprintf("copy %s %s <- %s +%d", a.Store, a.Object, a.Source, a.Size)
	case OpCreate:
		return fmt.Sprintf("create %s %s +%d", a.Store, a.Object, a.Size)
	default:
		return fmt.Sprintf("%s %s %s", a.Op, a.Store, a.Object)
	}
}

// Phase is a set of actions that may run in any order, in parallel.
type Phase struct {
	// Why says in a few words what the phase does, for logs and tests.
	Why     string
	Actions []Action
}

// Plan is the storage I/O that makes an operation durable, in phases: the
// peer runs every action of a phase (in any order, in parallel if it
// likes) and starts the next phase only when all of them succeeded. If it
// stops anywhere (a crash, an I/O error), storage holds a state that loads
// and serves every write acknowledged before the operation began; the
// operation itself must only be acknowledged once the whole plan is done.
// The orders that make this so:
//
//   - a new map (create, clone, rename, upgrade): entries first, header
//     last; until the header is written there is no map (or the old,
//     deleted, one), and a stale or half-written map block is never read;
//   - a copy-up: the object is copied (or created) first, the entry that
//     points at it is written after, so an entry never names an object
//     that was not written;
//   - a snapshot: the source's header with its new epoch first, then the
//     source's entries made read-only, then the snapshot's map; a snapshot
//     only exists once every object it names is read-only in its source;
//   - a removal: objects first, then their entries marked deleted, then the
//     header; a removal cut short is finished by running it again.
//
// Actions hold their data; a plan may be run again from any phase (every
// action is idempotent), which is how a peer finishes an interrupted one.
type Plan struct {
	Phases []Phase
}

func (p *Plan) add(why string, acts []Action) {
	if len(acts) > 0 {
		p.Phases = append(p.Phases, Phase{Why: why, Actions: acts})
	}
}

// Actions returns how many actions the plan holds.
func (p Plan) Actions() int {
	n := 0
	for _, ph := range p.Phases {
		n += len(ph.Actions)
	}
	return n
}

func (p Plan) String() string {
	var b strings.Builder
	for i, ph := range p.Phases {
		fmt.Fprintf(&b, "phase %d: %s\n", i+1, ph.Why)
		for _, a := range ph.Actions {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	return b.String()
}

// headerWrite is the action that writes m's v2 header.
func headerWrite(name string, h Header) Action {
	return Action{Op: OpWrite, Store: MapStore, Object: name, Data: EncodeHeader(h)}
}

// entryWrites returns the writes of entries [first, first+count) of m, one
// per chunk.
func entryWrites(m *Map, first, count uint64) []Action {
	var acts []Action
	for _, c := range Chunks(m.Name, m.BlockSize, first, count) {
		data, err := EncodeEntries(make([]byte, 0, c.Len()), m, c.First, c.Count)
		if err != nil {
			// m was checked by the operation that made it: every name fits.
			panic(fmt.Sprintf("mapper: encoding checked map %q: %v", m.Name, err))
		}
		acts = append(acts, Action{Op: OpWrite, Store: MapStore, Object: c.Object, Offset: c.Offset, Data: data})
	}
	return acts
}

// spanWrites writes the entries of m at the given indices (ascending),
// rewriting, within each map I/O chunk, the span from the first to the last
// of them (the entries between are written with their current value). Only
// for maps nobody else changes meanwhile (the volume is frozen).
func spanWrites(m *Map, indices []uint64) []Action {
	var acts []Action
	perChunk := uint64(min(m.BlockSize, ChunkLen)) / EntryLen
	for i := 0; i < len(indices); {
		first := indices[i]
		last := first
		for i < len(indices) && indices[i]/perChunk == first/perChunk {
			last = indices[i]
			i++
		}
		acts = append(acts, entryWrites(m, first, last-first+1)...)
	}
	return acts
}

// NewMapPlan is the plan that stores m as a new v2 map, or rewrites one:
// all its entries, then its header. Use it for the maps of Create, Clone,
// Upgrade and Hash.
func NewMapPlan(m *Map) Plan {
	var p Plan
	p.add("write the map's entries", entryWrites(m, 0, m.Len()))
	p.add("write the map's header", []Action{headerWrite(m.Name, m.Header)})
	return p
}
