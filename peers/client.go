package peers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/archipelago-go/archipelago/xseg"
)

// Client sends requests to other ports and waits for their replies, for
// peers that are clients too (vlmcd of mapperd and the blockers, mapperd of
// the blockers) and for tools. It binds a dynamic port of its own, so
// replies never mix with the requests a peer serves, and one goroutine
// receives replies on it and hands each to the goroutine that waits for it.
// Its methods are safe for concurrent use.
type Client struct {
	port    *xseg.Port
	mu      sync.Mutex
	waiting map[uint32]chan xseg.Request
	done    chan struct{}
}

// NewClient binds a dynamic port of seg and starts receiving on it.
func NewClient(seg *xseg.Segment) (*Client, error) {
	port, err := seg.BindDynamic()
	if err != nil {
		return nil, fmt.Errorf("client port: %w", err)
	}
	c := &Client{port: port, waiting: make(map[uint32]chan xseg.Request), done: make(chan struct{})}
	go c.receive()
	return c, nil
}

// Port returns the client's port.
func (c *Client) Port() *xseg.Port { return c.port }

// Get takes a request slot for the client to prepare and Call.
func (c *Client) Get() (xseg.Request, error) { return c.port.Get() }

// Put returns a request the client holds.
func (c *Client) Put(r xseg.Request) error { return c.port.Put(r) }

// Call submits r to port dst and waits for its reply, which it returns
// (the same slot; check its Err). If ctx ends first, Call returns ctx's
// error and the reply, when it comes, is put back unread.
func (c *Client) Call(ctx context.Context, r xseg.Request, dst int) (xseg.Request, error) {
	ch := c.Start(r)
	if err := c.port.Submit(r, dst); err != nil {
		c.forget(r.Index())
		return r, err
	}
	return c.Wait(ctx, r.Index(), ch)
}

// Start registers r for a reply before it is submitted elsewhere (Submit
// or Forward through c.Port()); Wait then waits for that reply. Most
// callers use Call.
func (c *Client) Start(r xseg.Request) chan xseg.Request {
	ch := make(chan xseg.Request, 1)
	c.mu.Lock()
	c.waiting[r.Index()] = ch
	c.mu.Unlock()
	return ch
}

// callerSpin is how long a caller receives replies itself before it
// sleeps on its channel. Waking a sleeping goroutine costs tens of
// microseconds on a small VM (an idle vCPU must be woken), far more than
// a blocker's answer from the page cache.
const callerSpin = 50 * time.Microsecond

// Wait waits for the reply Start registered.
func (c *Client) Wait(ctx context.Context, idx uint32, ch chan xseg.Request) (xseg.Request, error) {
	begin := time.Now()
	for i := 0; ; i++ {
		select {
		case rep := <-ch:
			return rep, nil
		default:
		}
		if r, ok := c.port.Receive(); ok {
			c.dispatch(r)
			continue
		}
		if i%16 == 15 && time.Since(begin) > callerSpin {
			break
		}
	}
	select {
	case rep := <-ch:
		return rep, nil
	case <-c.done:
		return xseg.Request{}, xseg.ErrClosed
	case <-ctx.Done():
		c.mu.Lock()
		_, still := c.waiting[idx]
		if still {
			c.waiting[idx] = nil // the receiver puts the reply back
		}
		c.mu.Unlock()
		if !still { // the reply raced the cancel
			c.port.Put(<-ch)
		}
		return xseg.Request{}, ctx.Err()
	}
}

func (c *Client) forget(idx uint32) {
	c.mu.Lock()
	delete(c.waiting, idx)
	c.mu.Unlock()
}

func (c *Client) receive() {
	defer close(c.done)
	for !c.port.Interrupted() {
		c.port.Wait(0)
		for {
			r, ok := c.port.Receive()
			if !ok {
				break
			}
			c.dispatch(r)
		}
	}
}

// dispatch hands a reply to the goroutine waiting for it.
func (c *Client) dispatch(r xseg.Request) {
	c.mu.Lock()
	ch := c.waiting[r.Index()]
	delete(c.waiting, r.Index())
	c.mu.Unlock()
	if ch == nil { // abandoned by its caller, or not ours
		c.port.Put(r)
		return
	}
	ch <- r
}

// Close stops receiving and releases the port; calls still waiting return
// xseg.ErrClosed.
func (c *Client) Close() error {
	c.port.Interrupt()
	<-c.done
	return c.port.Release()
}
