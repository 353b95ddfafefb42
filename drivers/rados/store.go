//go:build ceph

package rados

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/archipelago-go/archipelago/drivers"
)

// DefaultTimeout bounds each librados operation when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxIOBytes is the largest single read or write sent to an OSD; larger
// requests are split. OSDs refuse writes over osd_max_write_size (90 MiB).
const maxIOBytes = 32 << 20

// Config says which cluster, pool and namespace a Store serves.
type Config struct {
	// ConfFile is the ceph.conf to read. Empty means the librados default
	// search ($CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf).
	ConfFile string
	// ClientID is the cephx user without the "client." prefix. Empty means
	// "admin", as for the ceph CLI.
	ClientID string
	// Pool is the RADOS pool; it must exist. A peer that serves data and
	// maps opens one Store per pool.
	Pool string
	// Namespace isolates this Store's objects (and locks) from the rest of
	// the pool. Empty is the pool's default namespace, where the original
	// Archipelago keeps its objects.
	Namespace string
	// Owner names this host in lock descriptions (shown by
	// "rados lock info OBJ RadosLock"), and is the lock owner when a Lock
	// call passes an empty owner. Empty means the host name.
	Owner string
	// Timeout bounds every librados operation, and connecting: a dead
	// cluster then gives errors wrapping syscall.ETIMEDOUT. Zero means
	// DefaultTimeout; a negative value waits forever (librados default).
	Timeout time.Duration
}

// Store is a drivers.Store over one RADOS pool. It holds one cluster
// connection and one I/O context, shared by all goroutines.
type Store struct {
	cfg   Config
	conn  *rados.Conn
	ioctx *rados.IOContext

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
	// background tracks lock-release notifications still in flight, so
	// Close does not destroy the I/O context under them.
	background sync.WaitGroup
	// async tracks Queue operations in flight, for the same reason.
	async sync.WaitGroup
	// watches are the watches of waiting Lock calls; Close removes those
	// left, as librados wants before the I/O context goes.
	watchMu sync.Mutex
	watches map[*rados.Watcher]struct{}
}

var _ drivers.Store = (*Store)(nil)

// Open connects to the cluster and opens cfg.Pool. It fails with an error
// wrapping ErrPoolNotFound when the pool does not exist, and within
// cfg.Timeout when the cluster does not answer.
func Open(cfg Config) (*Store, error) {
	if cfg.Pool == "" {
		return nil, errors.New("rados open: no pool configured")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Owner == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		cfg.Owner = host
	}

	var conn *rados.Conn
	var err error
	if cfg.ClientID != "" {
		conn, err = rados.NewConnWithUser(cfg.ClientID)
	} else {
		conn, err = rados.NewConn()
	}
	if err != nil {
		return nil, fmt.Errorf("rados open: create connection: %w", err)
	}
	if cfg.ConfFile != "" {
		err = conn.ReadConfigFile(cfg.ConfFile)
	} else {
		err = conn.ReadDefaultConfigFile()
	}
	if err != nil {
		conn.Shutdown()
		return nil, fmt.Errorf("rados open: read config %q: %w", cfg.ConfFile, err)
	}
	if cfg.Timeout > 0 {
		secs := strconv.FormatFloat(cfg.Timeout.Seconds(), 'f', -1, 64)
		for _, option := range []string{"rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"} {
			if err := conn.SetConfigOption(option, secs); err != nil {
				conn.Shutdown()
				return nil, fmt.Errorf("rados open: set %s: %w", option, err)
			}
		}
	}
	if err := conn.Connect(); err != nil {
		conn.Shutdown()
		return nil, fmt.Errorf("rados open: connect to cluster (conf %q): %w", cfg.ConfFile, errnoErr(err))
	}
	ioctx, err := conn.OpenIOContext(cfg.Pool)
	if err != nil {
		conn.Shutdown()
		if isErrno(err, syscall.ENOENT) {
			return nil, fmt.Errorf("rados open: pool %q: %w", cfg.Pool, ErrPoolNotFound)
		}
		return nil, fmt.Errorf("rados open: pool %q: %w", cfg.Pool, errnoErr(err))
	}
	ioctx.SetNamespace(cfg.Namespace)
	return &Store{cfg: cfg, conn: conn, ioctx: ioctx, watches: map[*rados.Watcher]struct{}{}}, nil
}

// errnoErr adds the errno to a go-ceph error so errors.Is(err,
// syscall.ETIMEDOUT) and the like work.
func errnoErr(err error) error {
	if code := errno(err); code != 0 {
		return fmt.Errorf("%w (%w)", syscall.Errno(code), err)
	}
	return err
}

// Config returns the configuration the Store was opened with, defaults
// filled in.
func (s *Store) Config() Config { return s.cfg }

// Close waits for calls in progress, asynchronous reads and writes in
// flight (close their Queues first: a queue's operations count as in
// flight until its Poll or Close has run their done) and lock-release
// notifications in flight, then releases the I/O context
// and the connection. Calls made after Close fail with ErrClosed, and so
// does a Lock still waiting. Locks held stay held: they belong to the
// owner, not to the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.background.Wait()
	s.async.Wait()
	s.watchMu.Lock()
	for w := range s.watches {
		_ = w.Delete()
		delete(s.watches, w)
	}
	s.watchMu.Unlock()
	s.ioctx.Destroy()
	s.conn.Shutdown()
	return nil
}

// begin checks that the call may go ahead and holds the Store open until
// the returned function runs.
func (s *Store) begin(ctx context.Context) (end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.mu.RUnlock, nil
}
