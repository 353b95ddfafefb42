package main

import (
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/archipelago-go/archipelago/bench/latency"
	"github.com/archipelago-go/archipelago/xseg/ring"
)

// The shared-memory file of the ring mode holds a control line and two
// rings, each on its own cache lines:
//
//	0          control: stop flag (u32), set by the client at the end
//	64         request ring: client pushes request indices, server pops
//	64+align   reply ring: server pushes them back, client pops
//
// Both processes map the whole file read-write; either may write any of
// it, and a process that dies leaves it in whatever state it reached.
const (
	cacheLine    = 64
	controlBytes = cacheLine
)

const (
	// spinsPerYield is how many empty polls a side makes before it calls
	// runtime.Gosched and checks whether it should stop: rare enough to
	// cost nothing, often enough (microseconds) to notice a stop at once.
	spinsPerYield = 256
	// checkEvery is how many round trips the client completes between
	// clock readings for the measured window (a power of two).
	checkEvery = 256
	// stallTimeout is how long the client waits for any reply before it
	// gives the server up.
	stallTimeout = 5 * time.Second
)

// shmLayout is where the rings of a given capacity sit in the file.
type shmLayout struct {
	capacity             int
	requestOff, replyOff int
	size                 int
}

func layoutFor(capacity int) shmLayout {
	request := controlBytes
	reply := alignUp(request+ring.Size(capacity), cacheLine)
	return shmLayout{
		capacity:   capacity,
		requestOff: request,
		replyOff:   reply,
		size:       alignUp(reply+ring.Size(capacity), os.Getpagesize()),
	}
}

func alignUp(n, to int) int { return (n + to - 1) / to * to }

// ringCapacity is the smallest ring that holds iodepth values, so that a
// push never finds a ring full.
func ringCapacity(iodepth int) int {
	return max(2, 1<<bits.Len(uint(iodepth-1)))
}

// shmRings is one process's view of the shared file.
type shmRings struct {
	mem            []byte
	stop           *uint32
	request, reply *ring.Ring
}

func (l shmLayout) view(mem []byte, create bool) (*shmRings, error) {
	open := ring.Attach
	if create {
		open = ring.Init
	}
	request, err := open(mem[l.requestOff:l.replyOff], l.capacity)
	if err != nil {
		return nil, fmt.Errorf("request ring: %w", err)
	}
	reply, err := open(mem[l.replyOff:], l.capacity)
	if err != nil {
		return nil, fmt.Errorf("reply ring: %w", err)
	}
	return &shmRings{
		mem:     mem,
		stop:    (*uint32)(unsafe.Pointer(&mem[0])),
		request: request,
		reply:   reply,
	}, nil
}

// runRing measures round trips through two rings in shared memory with a
// child process that echoes them.
func runRing(cfg config, cl *cleaner) (latency.Result, error) {
	layout := layoutFor(ringCapacity(cfg.iodepth))
	f, err := os.CreateTemp(shmDir, "ipc-baseline-*.shm")
	if err != nil {
		return latency.Result{}, fmt.Errorf("create shared-memory file (is %s a mounted tmpfs?): %w", shmDir, err)
	}
	cl.add(func() { os.Remove(f.Name()) })
	defer f.Close()
	if err := f.Truncate(int64(layout.size)); err != nil {
		return latency.Result{}, fmt.Errorf("size %s: %w", f.Name(), err)
	}
	mem, err := mapShared(f, layout.size)
	if err != nil {
		return latency.Result{}, err
	}
	defer unmapShared(mem)
	rings, err := layout.view(mem, true)
	if err != nil {
		return latency.Result{}, err
	}

	server, err := startChild([]string{ringServeCommand, "--capacity", strconv.Itoa(layout.capacity)}, f)
	if err != nil {
		return latency.Result{}, err
	}
	cl.add(server.kill)
	// The server has mapped the file and only its descriptor is needed:
	// remove the name now so that even a SIGKILL leaves nothing behind.
	os.Remove(f.Name())

	m, err := ringLoop(cfg, rings, server)
	atomic.StoreUint32(rings.stop, 1)
	if err != nil {
		return latency.Result{}, err
	}
	if err := server.wait(); err != nil {
		return latency.Result{}, err
	}
	return m.Result(cfg.mode, cfg.iodepth, cfg.sizeBytes, cfg.sampleEvery), nil
}

// ringLoop keeps cfg.iodepth request indices in flight and returns the
// measurements. It spins on the reply ring from a single goroutine.
func ringLoop(cfg config, rings *shmRings, server *child) (*latency.Meter, error) {
	m := latency.NewMeter(cfg.warmup, cfg.duration)
	timed := latency.NewSampler(cfg.sampleEvery)
	// submittedNs[i] is when request i was pushed, if it is timed, else 0.
	submittedNs := make([]int64, cfg.iodepth)
	now := m.Now()
	for i := range cfg.iodepth {
		if timed.Next() {
			submittedNs[i] = now
		}
		if !rings.request.Push(uint32(i)) {
			return nil, errors.New("request ring full at start") // capacity ≥ iodepth
		}
	}
	lastReplyNs := now
	idle := 0
	for {
		index, ok := rings.reply.Pop()
		if !ok {
			if idle++; idle < spinsPerYield {
				continue
			}
			idle = 0
			now := m.Now()
			if now-lastReplyNs > int64(stallTimeout) {
				if !server.alive() {
					return nil, fmt.Errorf("server exited during the run: %v", server.wait())
				}
				return nil, fmt.Errorf("no reply from server for %v", stallTimeout)
			}
			runtime.Gosched()
			continue
		}
		idle = 0
		if index >= uint32(cfg.iodepth) {
			return nil, fmt.Errorf("bad reply from server: index %d, iodepth %d", index, cfg.iodepth)
		}
		m.Done(1)
		now := int64(0) // read the clock only when needed
		if submitted := submittedNs[index]; submitted != 0 {
			now = m.Now()
			m.Record(submitted, now)
		}
		if m.Ops()&(checkEvery-1) == 0 {
			if now == 0 {
				now = m.Now()
			}
			lastReplyNs = now
			if !m.Tick(now) {
				return m, nil
			}
		}
		submittedNs[index] = 0
		if timed.Next() {
			if now == 0 {
				now = m.Now()
			}
			submittedNs[index] = now
		}
		for !rings.request.Push(index) {
			runtime.Gosched() // unreachable while capacity ≥ iodepth
		}
	}
}

// serveRingMain is the child side of the ring mode: it maps the file at
// descriptor 4, then moves every index from the request ring to the reply
// ring until the client sets the stop flag.
func serveRingMain(args []string) error {
	fs := flag.NewFlagSet(ringServeCommand, flag.ContinueOnError)
	capacity := fs.Int("capacity", 0, "cells per ring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ready, err := inheritedFile(readyFD, "ready", os.ModeNamedPipe)
	if err != nil {
		return fmt.Errorf("ring server: %w", err)
	}
	f, err := inheritedFile(firstFD, "shm", 0)
	if err != nil {
		return fmt.Errorf("ring server: %w", err)
	}
	layout := layoutFor(*capacity)
	mem, err := mapShared(f, layout.size)
	f.Close()
	if err != nil {
		return fmt.Errorf("ring server: %w", err)
	}
	defer unmapShared(mem)
	rings, err := layout.view(mem, false)
	if err != nil {
		return fmt.Errorf("ring server: %w", err)
	}
	if err := serverReady(ready); err != nil {
		return fmt.Errorf("ring server: %w", err)
	}
	serveRing(rings)
	return nil
}

func serveRing(rings *shmRings) {
	idle := 0
	for {
		index, ok := rings.request.Pop()
		if !ok {
			if idle++; idle < spinsPerYield {
				continue
			}
			idle = 0
			if atomic.LoadUint32(rings.stop) != 0 {
				return
			}
			runtime.Gosched()
			continue
		}
		idle = 0
		for !rings.reply.Push(index) {
			runtime.Gosched() // unreachable while capacity ≥ iodepth
		}
	}
}
