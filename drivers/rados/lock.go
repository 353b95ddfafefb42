//go:build ceph

package rados

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/ceph/go-ceph/rados"

	"github.com/archipelago-go/archipelago/drivers"
)

// Lock names, as the original radosd: the lock on name is the RADOS
// advisory exclusive lock LockName on the object name+LockSuffix, so
// "rados -p POOL lock info VOL_lock RadosLock" shows who holds a volume.
const (
	LockName   = "RadosLock"
	LockSuffix = drivers.LockSuffix
)

const (
	// lockPollMin and lockPollMax bound the back-off between attempts of a
	// waiting Lock. A release notifies waiters, so polling only covers a
	// missed notification (a holder that died, a lease, a watch lost).
	lockPollMin = 10 * time.Millisecond
	lockPollMax = time.Second
	// notifyTimeout bounds how long a release waits for waiters' acks.
	notifyTimeout = 5 * time.Second
)

// Lock takes the named lock for owner (the lock cookie; Config.Owner when
// empty). The owner string is the identity, not the connection: a lock the
// same owner took through another connection (another Store, or this host
// before a restart) counts as held, and Lock succeeds. LockWait watches the
// lock object, retries when the holder releases it, and polls with back-off
// up to a second as a safety net, until ctx ends; the error then wraps both
// ErrLocked and ctx.Err().
func (s *Store) Lock(ctx context.Context, name, owner string, mode drivers.LockMode) error {
	if err := drivers.ValidateName(name); err != nil {
		return err
	}
	owner = s.owner(owner)
	oid := name + LockSuffix
	var wake <-chan struct{}
	stopWatch := func() {}
	defer func() { stopWatch() }()
	poll := lockPollMin
	for {
		holder, err := s.tryLock(ctx, oid, owner)
		if err != nil || holder == "" {
			return err
		}
		if mode != drivers.LockWait {
			return fmt.Errorf("rados lock %q: held by %q: %w", name, holder, drivers.ErrLocked)
		}
		if wake == nil {
			// Watch first, then try again at once: a release between the
			// failed attempt and the watch would otherwise go unseen
			// until the next poll.
			wake, stopWatch = s.watch(oid)
			continue
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("rados lock %q: held by %q: %w: %w", name, holder, drivers.ErrLocked, ctx.Err())
		case <-wake:
			timer.Stop()
		case <-timer.C:
			poll = min(2*poll, lockPollMax)
		}
	}
}

// owner returns the lock owner to use for a call's owner argument.
func (s *Store) owner(owner string) string {
	if owner == "" {
		return s.cfg.Owner
	}
	return owner
}

// tryLock attempts to take the lock; it returns "" when owner holds it,
// else the holder's owner string.
func (s *Store) tryLock(ctx context.Context, oid, owner string) (holder string, err error) {
	end, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()
	// A lock released between the attempt and the listing is tried again.
	for range 3 {
		ret, err := s.ioctx.LockExclusive(oid, LockName, owner, s.cfg.Owner, 0, nil)
		if err != nil {
			return "", wrapErr("lock", oid, err)
		}
		switch syscall.Errno(-ret) {
		case 0, syscall.EEXIST: // taken now, or already ours on this connection
			return "", nil
		case syscall.EBUSY:
		default:
			return "", retErr("lock", oid, ret)
		}
		lockers, err := s.lockers(oid)
		if err != nil {
			return "", err
		}
		if slices.ContainsFunc(lockers, func(l locker) bool { return l.cookie == owner }) {
			return "", nil // ours, through another connection
		}
		if len(lockers) > 0 {
			return lockers[0].cookie, nil
		}
	}
	return "(changing hands)", nil
}

// locker is one holder of a lock: the RADOS client instance and the cookie.
type locker struct {
	client, cookie string
}

// lockers lists the holders of oid's lock; none (and no error) when the lock
// is free or the lock object does not exist.
func (s *Store) lockers(oid string) ([]locker, error) {
	info, err := s.ioctx.ListLockers(oid, LockName)
	if isErrno(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr("list lockers", oid, err)
	}
	var out []locker
	for i := range min(len(info.Clients), len(info.Cookies)) {
		out = append(out, locker{client: info.Clients[i], cookie: info.Cookies[i]})
	}
	return out, nil
}

// Unlock releases the named lock held by owner (Config.Owner when empty),
// through whichever connection took it. Without force it fails with
// ErrNotOwner when another owner holds the lock; with force it breaks the
// lock of every holder (rados_break_lock works from any client). Both
// return ErrNotFound when the lock is free. Waiters are notified.
func (s *Store) Unlock(ctx context.Context, name, owner string, force bool) error {
	if err := drivers.ValidateName(name); err != nil {
		return err
	}
	owner = s.owner(owner)
	oid := name + LockSuffix
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	if !force {
		ret, err := s.ioctx.Unlock(oid, LockName, owner)
		if err != nil {
			return wrapErr("unlock", oid, err)
		}
		if ret == 0 {
			s.notifyWaiters(oid)
			return nil
		}
		if ret != -int(syscall.ENOENT) {
			return retErr("unlock", oid, ret)
		}
		// Not held by this connection: free, another owner's, or ours
		// through another connection.
	}
	lockers, err := s.lockers(oid)
	if err != nil {
		return err
	}
	if len(lockers) == 0 {
		return fmt.Errorf("rados unlock %q: %w", name, drivers.ErrNotFound)
	}
	broken := 0
	for _, l := range lockers {
		if !force && l.cookie != owner {
			continue
		}
		ret, err := s.ioctx.BreakLock(oid, LockName, l.client, l.cookie)
		if err != nil {
			return wrapErr("break lock", oid, err)
		}
		switch syscall.Errno(-ret) {
		case 0:
			broken++
		case syscall.ENOENT: // released meanwhile
		default:
			return retErr("break lock", oid, ret)
		}
	}
	if broken == 0 {
		if !force {
			return fmt.Errorf("rados unlock %q: held by %q: %w", name, lockers[0].cookie, drivers.ErrNotOwner)
		}
		return fmt.Errorf("rados unlock %q: %w", name, drivers.ErrNotFound)
	}
	s.notifyWaiters(oid)
	return nil
}

// LockOwner returns the owner string of the named lock's holder, or
// ErrNotFound when the lock is free.
func (s *Store) LockOwner(ctx context.Context, name string) (string, error) {
	if err := drivers.ValidateName(name); err != nil {
		return "", err
	}
	end, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()
	lockers, err := s.lockers(name + LockSuffix)
	if err != nil {
		return "", err
	}
	if len(lockers) == 0 {
		return "", fmt.Errorf("rados lock owner %q: %w", name, drivers.ErrNotFound)
	}
	return lockers[0].cookie, nil
}

// notifyWaiters wakes the Lock calls waiting on oid, in the background: a
// waiter that died unacknowledged would hold the release up to
// notifyTimeout. Close waits for it.
func (s *Store) notifyWaiters(oid string) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		_ = s.notify(oid, notifyTimeout) // best effort: waiters also poll
	}()
}

// watch registers a watch on oid and returns a channel that receives a value
// (coalesced) on every notification, and a function that removes the watch.
// When the watch cannot be set up (the lock object vanished, the cluster is
// slow) the channel never fires and the caller relies on polling.
func (s *Store) watch(oid string) (wake <-chan struct{}, stop func()) {
	end, err := s.begin(context.Background())
	if err != nil {
		return make(chan struct{}), func() {}
	}
	w, err := s.ioctx.Watch(oid)
	if err == nil {
		s.watchMu.Lock()
		s.watches[w] = struct{}{}
		s.watchMu.Unlock()
	}
	end()
	if err != nil {
		return make(chan struct{}), func() {}
	}
	signal := make(chan struct{}, 1)
	quit := make(chan struct{})
	// go-ceph delivers notifications and errors on unbuffered channels from
	// librados callback threads: drain both until Delete closes them, or
	// those threads block. Every notification must be acked, or the
	// notifier waits for its timeout.
	go func() {
		events, errs := w.Events(), w.Errors()
		for events != nil || errs != nil {
			select {
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				// Ack needs the I/O context, so not once Close has begun;
				// an unacked notifier only waits for its timeout.
				if s.mu.TryRLock() {
					if !s.closed {
						_ = ev.Ack(nil)
					}
					s.mu.RUnlock()
				}
				select {
				case signal <- struct{}{}:
				default:
				}
			case _, ok := <-errs:
				if !ok {
					errs = nil
				}
			case <-quit: // Delete failed and left the channels open
				return
			}
		}
	}()
	return signal, func() {
		s.unwatch(w)
		close(quit)
	}
}

// unwatch removes a watch unless Close already did (or will: Close removes
// every watch left in s.watches).
func (s *Store) unwatch(w *rados.Watcher) {
	end, err := s.begin(context.Background())
	if err != nil {
		return
	}
	defer end()
	s.watchMu.Lock()
	_, ok := s.watches[w]
	delete(s.watches, w)
	s.watchMu.Unlock()
	if ok {
		_ = w.Delete() // best effort: the cluster drops it after the watch timeout
	}
}
