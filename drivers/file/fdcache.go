package file

import (
	"container/list"
	"io/fs"
	"sync"
	"sync/atomic"
)

// object is one open object file. Its fd stays valid while refs > 0 or
// while it sits in the cache; it is closed by the release that drops the
// last reference of an object no longer cached.
type object struct {
	name string
	fd   int
	leaf string // directory holding the file, fsynced for a new file

	// Guarded by fdCache.mu.
	refs    int
	cached  bool
	discard bool // deleted or replaced: nothing left worth syncing
	elem    *list.Element

	view view // mapping to read through, if any; unmapped when fd closes

	written    atomic.Uint64 // bumped after every write
	synced     atomic.Uint64 // value of written the last good sync covered
	dirPending atomic.Bool   // the file's directory entry is not durable yet

	syncMu  sync.Mutex
	syncErr error // sticky, see syncObject

	// rmw keeps direct-I/O read-modify-write cycles exclusive with every
	// other write to the file; plain writes only share it.
	rmw sync.RWMutex
}

func (o *object) dirty() bool {
	return o.written.Load() != o.synced.Load() || o.dirPending.Load()
}

// fdCache is an LRU of open object files keyed by object name. It never
// closes a file itself: objects leaving it with no references are handed
// back to the caller, which syncs and closes them outside the lock.
type fdCache struct {
	mu     sync.Mutex
	max    int
	lru    list.List // of *object, most recently used first
	byName map[string]*object
	live   map[*object]struct{} // every open object, cached or not
	epoch  uint64               // bumped by every invalidation
	closed bool
}

func newFDCache(max int) *fdCache {
	return &fdCache{max: max, byName: make(map[string]*object), live: make(map[*object]struct{})}
}

// lookup returns the cached object for name with a reference taken, or
// nil and the epoch to pass to insert after opening the file.
func (c *fdCache) lookup(name string) (*object, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, fs.ErrClosed
	}
	if o := c.byName[name]; o != nil {
		o.refs++
		c.lru.MoveToFront(o.elem)
		return o, 0, nil
	}
	return nil, c.epoch, nil
}

// insert adds o, just opened with one reference, and returns the object
// to use (another goroutine may have cached the name first) and objects to
// release: the loser of that race and the evicted least recently used.
// A file opened before an invalidation (epoch moved) may name an inode that
// was since unlinked or replaced, so it is used once but not cached.
func (c *fdCache) insert(o *object, epoch uint64) (*object, []*object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o.refs = 1
	c.live[o] = struct{}{}
	if other := c.byName[o.name]; other != nil {
		other.refs++
		c.lru.MoveToFront(other.elem)
		if o.dirPending.Swap(false) {
			other.dirPending.Store(true)
		}
		return other, []*object{o}
	}
	if c.closed || epoch != c.epoch {
		return o, nil
	}
	o.cached = true
	o.elem = c.lru.PushFront(o)
	c.byName[o.name] = o
	var retire []*object
	for c.lru.Len() > c.max {
		if v := c.uncache(c.lru.Back().Value.(*object)); v != nil {
			retire = append(retire, v)
		}
	}
	return o, retire
}

// uncache removes o from the cache and, if nobody uses it, returns it with
// a reference taken so the caller's release closes it.
func (c *fdCache) uncache(o *object) *object {
	c.lru.Remove(o.elem)
	delete(c.byName, o.name)
	o.cached, o.elem = false, nil
	if o.refs > 0 {
		return nil
	}
	o.refs = 1
	return o
}

// invalidate drops name from the cache after its file was unlinked or
// replaced, and returns an object to release, if any.
func (c *fdCache) invalidate(name string) *object {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	o := c.byName[name]
	if o == nil {
		return nil
	}
	o.discard = true
	return c.uncache(o)
}

// needsFinalSync reports whether o, about to lose its last reference and
// be closed, still holds writes to sync.
func (c *fdCache) needsFinalSync(o *object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return o.refs == 1 && !o.cached && !o.discard && o.dirty()
}

// unref drops a reference and reports whether the caller must close o.
func (c *fdCache) unref(o *object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	o.refs--
	if o.refs > 0 || o.cached {
		return false
	}
	delete(c.live, o)
	return true
}

// dirtyObjects returns, each with a reference taken, the open objects
// holding writes not yet synced.
func (c *fdCache) dirtyObjects() []*object {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dirty []*object
	for o := range c.live {
		if !o.discard && o.dirty() {
			o.refs++
			dirty = append(dirty, o)
		}
	}
	return dirty
}

// drop empties the cache and returns the objects to release; files in
// use stay open until their last release.
func (c *fdCache) drop() []*object {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	var retire []*object
	for c.lru.Len() > 0 {
		if v := c.uncache(c.lru.Front().Value.(*object)); v != nil {
			retire = append(retire, v)
		}
	}
	return retire
}

// close empties the cache for good and returns the objects to release.
func (c *fdCache) close() []*object {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var retire []*object
	for c.lru.Len() > 0 {
		if v := c.uncache(c.lru.Front().Value.(*object)); v != nil {
			retire = append(retire, v)
		}
	}
	return retire
}
