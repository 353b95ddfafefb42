package mapserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Limits of mapperd's own I/O to the blockers.
const (
	// storageInflight bounds mapperd's requests in flight to the blockers,
	// so that a large plan (a 1 TiB map is 64 chunks of 512 KiB) leaves
	// the segment's slots and buffers to the data path.
	storageInflight = 32
	// actionParallel is how many actions of one plan phase, or reads of
	// one map, run at once.
	actionParallel = 8
	// fuaWrites is the most map writes of one phase sent with FlagFUA;
	// a phase with more sends them plain and one FLUSH after.
	fuaWrites = 4
	// resourceWait is how long a request waits for a free slot or buffer
	// space before it fails with ErrNoResources.
	resourceWait = 30 * time.Second
)

// storage sends object requests to the two blockers from a client port
// of its own. Its methods block until the blocker replies: they hand the
// serving goroutine's port leadership off first (peers.HandOff).
type storage struct {
	client   *peers.Client
	dataPort int
	mapPort  int
	// ownerPayload is Options.Owner encoded as a name payload, sent with
	// ACQUIRE and RELEASE (see Options.Owner).
	ownerPayload []byte
	slots        chan struct{}
	// firstList is the buffer of the first page of a LIST (listBuffer;
	// tests make it small), maxList the largest (maxListBuffer); neither
	// more than a quarter of the segment's buffer space.
	firstList, maxList uint64
	// ops counts the requests sent, by op, for tests and the log.
	ops [xseg.OpList + 1]atomic.Uint64
}

// port returns the blocker port of a mapper store.
func (s *storage) port(st mapper.Store) int {
	if st == mapper.MapStore {
		return s.mapPort
	}
	return s.dataPort
}

// request is one request to a blocker.
type request struct {
	op     xseg.Op
	port   int
	target string
	offset uint64
	size   uint64
	flags  xseg.Flags
	// in is copied into the data buffer, which holds max(len(in),
	// dataLen) bytes.
	in      []byte
	dataLen uint64
	// out, if set, receives the data buffer after the reply, failed or
	// not.
	out []byte
	// serviced is the reply's.
	serviced uint64
}

// do sends q and waits for its reply. A failed reply is a *blockerError.
func (s *storage) do(q *request) error {
	s.slots <- struct{}{}
	defer func() { <-s.slots }()
	r, err := s.prepare(q)
	if err != nil {
		return err
	}
	s.ops[min(q.op, xseg.OpList)].Add(1)
	// Draining does not cut accepted work short: no context here.
	rep, err := s.client.Call(context.Background(), r, q.port)
	if err != nil {
		s.client.Put(r)
		if errors.Is(err, xseg.ErrPortNotBound) {
			err = fmt.Errorf("%w: is the blocker running?", err)
		}
		return &blockerError{op: q.op, target: q.target, port: q.port, err: err}
	}
	q.serviced = rep.Serviced()
	if q.out != nil {
		copy(q.out, rep.Data())
	}
	rerr := rep.Err()
	s.client.Put(rep)
	if rerr != nil {
		return &blockerError{op: q.op, target: q.target, port: q.port, err: rerr}
	}
	return nil
}

// prepare gets a slot and fills it, waiting up to resourceWait for a free
// slot or buffer space.
func (s *storage) prepare(q *request) (xseg.Request, error) {
	n := max(uint64(len(q.in)), q.dataLen)
	deadline := time.Now().Add(resourceWait)
	pause := 100 * time.Microsecond
	for {
		r, err := s.client.Get()
		if err == nil {
			err = r.Prepare(q.op, q.target, n)
			if err == nil {
				copy(r.Data(), q.in)
				r.SetOffset(q.offset)
				r.SetSize(q.size)
				r.SetFlags(q.flags)
				r.SetServiced(0)
				return r, nil
			}
			s.client.Put(r)
		}
		if !errors.Is(err, xseg.ErrNoFreeRequests) && !errors.Is(err, xseg.ErrNoBufferSpace) {
			return xseg.Request{}, fmt.Errorf("%s %q: %w", q.op, q.target, err)
		}
		if time.Now().After(deadline) {
			return xseg.Request{}, fmt.Errorf("%s %q: %w: %w", q.op, q.target, ErrNoResources, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// read fills p from object name of the blocker on port at off (zeros for a
// missing object, as blockers read).
func (s *storage) read(port int, name string, off uint64, p []byte) error {
	return s.do(&request{op: xseg.OpRead, port: port, target: name, offset: off, size: uint64(len(p)), dataLen: uint64(len(p)), out: p})
}

// write stores p at off of object name; fua makes it durable first.
func (s *storage) write(port int, name string, off uint64, p []byte, fua bool) error {
	var flags xseg.Flags
	if fua {
		flags = xseg.FlagFUA
	}
	return s.do(&request{op: xseg.OpWrite, port: port, target: name, offset: off, size: uint64(len(p)), in: p, flags: flags})
}

// flush makes every write acknowledged by the blocker on port durable.
func (s *storage) flush(port int) error {
	return s.do(&request{op: xseg.OpFlush, port: port, target: "flush"})
}

// objectSize returns the size of object name (INFO), ErrNotFound-wrapping
// blocker error if it is missing.
func (s *storage) objectSize(port int, name string) (uint64, error) {
	out := make([]byte, protocol.InfoLen)
	if err := s.do(&request{op: xseg.OpInfo, port: port, target: name, dataLen: protocol.InfoLen, out: out}); err != nil {
		return 0, err
	}
	return protocol.DecodeInfo(out)
}

// copyObject replaces object dst of the blocker on port with the first size
// bytes of src. A missing src reads as zeros, as a blocker reads it: dst
// is then created empty (maps of the original Archipelago may name
// objects that were never written).
func (s *storage) copyObject(port int, dst, src string, size uint64) error {
	payload := make([]byte, protocol.NameLen)
	if err := protocol.EncodeName(payload, src); err != nil {
		return err
	}
	err := s.do(&request{op: xseg.OpCopy, port: port, target: dst, size: size, in: payload})
	if errors.Is(err, syscall.ENOENT) {
		return s.create(port, dst, size)
	}
	return err
}

// create makes object name exist with size bytes reading as zeros, durably:
// one zero byte written at size-1 (a sparse object).
func (s *storage) create(port int, name string, size uint64) error {
	if size == 0 {
		size = 1
	}
	return s.write(port, name, size-1, []byte{0}, true)
}

// remove deletes object name; a missing one counts as deleted.
func (s *storage) remove(port int, name string) error {
	err := s.do(&request{op: xseg.OpDelete, port: port, target: name})
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// hash asks the data blocker to content-address object name and returns
// the content's name.
func (s *storage) hash(name string) (string, error) {
	out := make([]byte, protocol.NameLen)
	if err := s.do(&request{op: xseg.OpHash, port: s.dataPort, target: name, dataLen: protocol.NameLen, out: out}); err != nil {
		return "", err
	}
	return protocol.DecodeName(out)
}

// lock takes the lock of volume name on the map blocker (which names it
// "<name>_lock"): a try-lock. A lock held by another owner is a
// *LockedError naming the holder when it can be learnt.
func (s *storage) lock(name string) error {
	out := make([]byte, protocol.NameLen)
	q := &request{op: xseg.OpAcquire, port: s.mapPort, target: name, flags: xseg.FlagNoSync, in: s.ownerPayload, out: out}
	err := s.do(q)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.ETIMEDOUT) {
		return fmt.Errorf("lock volume %q: %w", name, err)
	}
	owner := ""
	if q.serviced == protocol.NameLen {
		owner, _ = protocol.DecodeName(out)
	}
	if owner == "" {
		owner = s.lockHolder(name)
	}
	return &LockedError{Volume: name, Owner: owner}
}

// lockHolder tries to learn who holds the lock of volume name when the
// failed ACQUIRE did not say (our blockers do; a blocker of the original
// protocol replies only EAGAIN). filed keeps a lock as the file
// "<name>_lock" holding its owner, in the data tree where READ reaches it,
// so reading that object tells, unless filed runs with --lock-dir or the
// map blocker is radosd (which reads zeros there): "" then.
//
// Hazard: filed caches open files, so after a lock changed hands twice the
// file it reads may be the unlinked lock of an earlier holder.
func (s *storage) lockHolder(name string) string {
	b := make([]byte, protocol.NameFieldLen)
	if err := s.read(s.mapPort, name+"_lock", 0, b); err != nil {
		return ""
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return ""
		}
	}
	return string(b)
}

// unlock releases the lock of volume name; force breaks it whoever holds
// it. A free lock counts as released; another owner's is ErrNotOwner.
func (s *storage) unlock(name string, force bool) error {
	var flags xseg.Flags
	if force {
		flags = xseg.FlagForce
	}
	err := s.do(&request{op: xseg.OpRelease, port: s.mapPort, target: name, flags: flags, in: s.ownerPayload})
	switch {
	case err == nil, errors.Is(err, syscall.ENOENT):
		return nil
	case errors.Is(err, syscall.EPERM):
		owner := s.lockHolder(name)
		if owner == "" {
			owner = "another host"
		} else {
			owner = fmt.Sprintf("%q", owner)
		}
		return fmt.Errorf("unlock volume %q: %w: held by %s", name, ErrNotOwner, owner)
	}
	return fmt.Errorf("unlock volume %q: %w", name, err)
}

// parallel runs f(0..n-1), at most limit at once, and returns the first
// error; after an error no more calls start.
func parallel(n, limit int, f func(i int) error) error {
	if n == 1 {
		return f(0)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		failed atomic.Bool
	)
	sem := make(chan struct{}, limit)
	for i := range n {
		if failed.Load() {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	return first
}
