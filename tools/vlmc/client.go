package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/tools/hostconf"
	"github.com/archipelago-go/archipelago/xseg"
)

// volumes sends volume ops to vlmcd's port of a host, over a dynamic port
// of its segment.
type volumes struct {
	seg     *xseg.Segment
	c       *peers.Client
	dst     int
	timeout time.Duration
}

func dial(h *hostconf.Host, timeout time.Duration) (*volumes, error) {
	v, err := h.Vlmcd()
	if err != nil {
		return nil, err
	}
	seg, err := xseg.Join(h.Segment.Name, h.Segment.Options())
	if err != nil {
		if errors.Is(err, xseg.ErrNotFound) {
			return nil, fmt.Errorf("segment %q not found in %s: start the host first (archipelago start)", h.Segment.Name, h.Segment.Dir)
		}
		return nil, fmt.Errorf("join segment %q: %w", h.Segment.Name, err)
	}
	c, err := peers.NewClient(seg)
	if err != nil {
		seg.Leave()
		return nil, fmt.Errorf("segment %q: %w (no free dynamic port? see xseg report)", h.Segment.Name, err)
	}
	return &volumes{seg: seg, c: c, dst: v.Port(), timeout: timeout}, nil
}

func (v *volumes) Close() {
	v.c.Close()
	v.seg.Leave()
}

// req is one request; data is copied into a buffer of max(len(data),
// size, bufLen) bytes.
type req struct {
	op     xseg.Op
	target string
	offset uint64
	size   uint64
	flags  xseg.Flags
	data   []byte
	bufLen uint64
}

// reply is what came back: fill receives the reply data in place (READ).
type reply struct {
	serviced uint64
	data     []byte
}

// do sends q and waits for its reply; a failed reply becomes an opError.
// into, if set, receives the reply data in place of a copy.
func (v *volumes) do(q req, into []byte) (reply, error) {
	r, err := v.c.Get()
	if err != nil {
		return reply{}, fmt.Errorf("%s %q: no request slot: %w", q.op, q.target, err)
	}
	n := max(uint64(len(q.data)), q.size, q.bufLen)
	if err := r.Prepare(q.op, q.target, n); err != nil {
		v.c.Put(r)
		return reply{}, fmt.Errorf("%s %q: %w", q.op, q.target, err)
	}
	copy(r.Data(), q.data)
	r.SetOffset(q.offset)
	r.SetSize(q.size)
	r.SetFlags(q.flags)
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	rep, err := v.c.Call(ctx, r, v.dst)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return reply{}, fmt.Errorf("%s %q: no reply from vlmcd (port %d) within %v: check archipelago status", q.op, q.target, v.dst, v.timeout)
		}
		v.c.Put(r)
		return reply{}, fmt.Errorf("%s %q: %w", q.op, q.target, err)
	}
	defer v.c.Put(rep)
	out := reply{serviced: rep.Serviced()}
	if into != nil {
		copy(into, rep.Data())
	} else {
		out.data = bytes.Clone(rep.Data())
	}
	if err := rep.Err(); err != nil {
		return out, &opError{op: q.op, target: q.target, err: err, data: out.data, serviced: out.serviced}
	}
	return out, nil
}

// opError is a request failed back, with what the reply said.
type opError struct {
	op       xseg.Op
	target   string
	err      error
	data     []byte
	serviced uint64
}

func (e *opError) Unwrap() error { return e.err }

// Error says, in one line, what went wrong and what to do.
func (e *opError) Error() string {
	t := e.target
	var errno syscall.Errno
	if errors.Is(e.err, xseg.ErrPeerDied) {
		return fmt.Sprintf("%q: a peer died while serving %s: check archipelago status and retry", t, e.op)
	}
	if !errors.As(e.err, &errno) {
		return fmt.Sprintf("%s %q: %v", e.op, t, e.err)
	}
	switch errno {
	case syscall.ENOENT:
		return fmt.Sprintf("%q: no such volume or snapshot (vlmc info NAME checks a name)", t)
	case syscall.EEXIST:
		return fmt.Sprintf("%s %q: a volume of that name already exists: choose another name", e.op, t)
	case syscall.EAGAIN:
		owner := "another host"
		if e.serviced == protocol.NameLen {
			if name, err := protocol.DecodeName(e.data); err == nil && name != "" {
				owner = name
			}
		}
		return fmt.Sprintf("%q: locked by %s: close it there, or if that host is dead, vlmc open --force %s", t, owner, t)
	case syscall.EPERM:
		if e.op == xseg.OpTruncate {
			return fmt.Sprintf("%q: shrinking loses data: add --force to resize it smaller", t)
		}
		return fmt.Sprintf("%q: held by another host: add --force only if that host is dead", t)
	case syscall.EROFS:
		return fmt.Sprintf("%q is a snapshot, read-only: clone it (vlmc clone %s NEWNAME) to get a writable volume", t, t)
	case syscall.EINVAL:
		return fmt.Sprintf("%s %q: invalid name, size or source (names: printable ASCII, no '/', not ending in _lock or _<16 hex>; clones come from snapshots)", e.op, t)
	case syscall.ERANGE:
		return fmt.Sprintf("%q: beyond the end of the volume: resize it first (vlmc resize %s --size S)", t, t)
	case syscall.EFBIG:
		return fmt.Sprintf("%q: too large for one map: choose a smaller size", t)
	case syscall.EOPNOTSUPP:
		return fmt.Sprintf("%s %q: not supported by this host's peers", e.op, t)
	case syscall.ENOMEM, syscall.ENOBUFS:
		return fmt.Sprintf("%s %q: the segment is out of request slots or buffer space: retry, or enlarge SEGMENT_SIZE", e.op, t)
	case syscall.ENOSPC, syscall.EDQUOT:
		return fmt.Sprintf("%s %q: the data store is full: free space on the blocker's storage", e.op, t)
	case syscall.ETIMEDOUT:
		return fmt.Sprintf("%s %q: timed out in the peers: check archipelago status and the peers' logs", e.op, t)
	case syscall.EIO:
		return fmt.Sprintf("%s %q: I/O error in a blocker: see the blocker's log (archipelago status shows it)", e.op, t)
	}
	return fmt.Sprintf("%s %q: %v", e.op, t, errno)
}
