package mapserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/xseg"
)

// Options configure a Server.
type Options struct {
	// DataPort is the port of the blocker that stores the volumes' objects
	// (the original's -bp).
	DataPort int
	// MapPort is the port of the blocker that stores maps and locks (the
	// original's -mbp); it may be DataPort.
	MapPort int
	// Owner names this host's lock owner. It is sent with every ACQUIRE
	// and RELEASE as a name payload, and reported in logs. Today's blockers
	// take locks as their own --owner and ignore it: keep the two equal
	// (the defaults are: "<hostname>_<map port>"). Required.
	Owner string
	// KeepLocks leaves the locks of open volumes held when the peer stops
	// (for a restart under running VMs: a restarted mapperd takes them
	// again, being the same owner). By default they are released, as the
	// original did, so that another host can open the volumes.
	KeepLocks bool
	// Log receives the peer's events; nil logs nothing.
	Log *logrus.Entry
}

// Server is the mapperd peer: a peers.Handler that serves volume
// operations on maps kept by two blockers, and an io.Closer. See the
// package doc for the ops it serves.
type Server struct {
	st   *storage
	opts Options
	log  *logrus.Entry

	mu   sync.Mutex
	vols map[string]*volume
}

// New returns a Server that sends its requests to the blockers from a
// dynamic port of seg. The blockers need not run yet: requests to them
// fail (EIO) until they do.
func New(seg *xseg.Segment, opts Options) (*Server, error) {
	if opts.Owner == "" {
		return nil, errors.New("mapserver: lock owner required")
	}
	payload := make([]byte, protocol.NameLen)
	if err := protocol.EncodeName(payload, opts.Owner); err != nil {
		return nil, fmt.Errorf("mapserver: lock owner: %w", err)
	}
	for _, p := range []int{opts.DataPort, opts.MapPort} {
		if p < 0 || p >= int(seg.Geometry().Ports) {
			return nil, fmt.Errorf("mapserver: blocker port %d: %w (the segment has %d)", p, xseg.ErrNoSuchPort, seg.Geometry().Ports)
		}
	}
	client, err := peers.NewClient(seg)
	if err != nil {
		return nil, fmt.Errorf("mapserver: %w", err)
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		log = logrus.NewEntry(l)
	}
	maxList := min(maxListBuffer, seg.Geometry().BufferBytes/4)
	st := &storage{client: client, dataPort: opts.DataPort, mapPort: opts.MapPort, ownerPayload: payload,
		slots: make(chan struct{}, storageInflight), firstList: min(listBuffer, maxList), maxList: maxList}
	return &Server{st: st, opts: opts, log: log, vols: make(map[string]*volume)}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Requests returns how many requests of op the server has sent to the
// blockers (for tests and statistics).
func (s *Server) Requests(op xseg.Op) uint64 {
	if int(op) >= len(s.st.ops) {
		return 0
	}
	return s.st.ops[op].Load()
}

// Close releases the locks of the volumes still open (unless
// Options.KeepLocks) and the server's client port. Call it once no request
// is served any more (the peer runtime does, after the drain).
func (s *Server) Close() error {
	s.mu.Lock()
	var open []*volume
	for _, v := range s.vols {
		if v.locked.Load() {
			open = append(open, v)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, v := range open {
		if s.opts.KeepLocks {
			s.log.WithField("volume", v.name).Info("stopping with the volume open: its lock stays held")
			continue
		}
		v.cached.Store(nil)
		v.locked.Store(false)
		if err := s.st.unlock(v.name, false); err != nil {
			errs = append(errs, err)
		} else {
			s.log.WithField("volume", v.name).Info("closed at stop: lock released")
		}
	}
	errs = append(errs, s.st.client.Close())
	return errors.Join(errs...)
}

// Serve serves one request; see the package doc for the contract.
func (s *Server) Serve(ctx context.Context, r xseg.Request) error {
	op := r.Op()
	if op == xseg.OpPing {
		return nil
	}
	name := r.TargetString()
	err := s.serve(ctx, r, op, name)
	if err == nil {
		return nil
	}
	var locked *LockedError
	if errors.As(err, &locked) {
		// Tell the holder to a client that gave room for it.
		if d := r.Data(); len(d) >= protocol.NameLen && protocol.EncodeName(d, locked.Owner) == nil {
			r.SetServiced(protocol.NameLen)
		}
	}
	return withErrno(fmt.Errorf("%s %q: %w", op, name, err))
}

func (s *Server) serve(ctx context.Context, r xseg.Request, op xseg.Op, name string) error {
	if op == xseg.OpList {
		if err := mapper.CheckPrefix(name); err != nil {
			return err
		}
		peers.HandOff(ctx)
		return s.list(r, name)
	}
	check := mapper.CheckName
	if op == xseg.OpClone {
		check = mapper.ValidateVolumeName
	}
	switch op {
	case xseg.OpMapRead, xseg.OpMapWrite, xseg.OpInfo, xseg.OpOpen, xseg.OpClose, xseg.OpClone,
		xseg.OpSnapshot, xseg.OpDelete, xseg.OpRename, xseg.OpTruncate, xseg.OpHash, xseg.OpUpdate, xseg.OpDiscard:
		if err := check(name); err != nil {
			return err
		}
		if name == "." || name == ".." {
			return fmt.Errorf("%w: volume name %q", mapper.ErrBadName, name)
		}
	default:
		return fmt.Errorf("%w: mapperd does not serve %s", syscall.EOPNOTSUPP, op)
	}
	assumeV0 := r.Flags()&xseg.FlagAssumeV0 != 0
	force := r.Flags()&xseg.FlagForce != 0
	if op == xseg.OpMapRead || op == xseg.OpMapWrite {
		return s.mapIO(ctx, r, op == xseg.OpMapWrite, name, assumeV0)
	}
	// Every other op may wait on the blockers.
	peers.HandOff(ctx)
	switch op {
	case xseg.OpInfo:
		return s.info(r, name, assumeV0)
	case xseg.OpOpen:
		return s.open(name, assumeV0, force)
	case xseg.OpClose:
		return s.close(name, force)
	case xseg.OpClone:
		c, err := protocol.DecodeClone(r.Data())
		if err != nil {
			return err
		}
		return s.clone(name, c, r.Size(), assumeV0)
	case xseg.OpSnapshot:
		snap, err := decodeNewName(r.Data())
		if err != nil {
			return err
		}
		return s.snapshot(name, snap, assumeV0)
	case xseg.OpDelete:
		return s.remove(name, assumeV0)
	case xseg.OpRename:
		to, err := decodeNewName(r.Data())
		if err != nil {
			return err
		}
		return s.rename(name, to, assumeV0)
	case xseg.OpTruncate:
		return s.resize(name, r.Offset(), force, assumeV0)
	case xseg.OpDiscard:
		return s.discard(name, r.Offset(), r.Size(), assumeV0)
	case xseg.OpHash:
		return s.hash(r, name, assumeV0)
	case xseg.OpUpdate:
		return s.update(name, assumeV0)
	}
	return nil
}

// decodeNewName reads the name payload of SNAPSHOT and RENAME and checks
// it as the name of a new map.
func decodeNewName(data []byte) (string, error) {
	name, err := protocol.DecodeName(data)
	if err != nil {
		return "", err
	}
	if err := mapper.ValidateVolumeName(name); err != nil {
		return "", err
	}
	return name, nil
}
