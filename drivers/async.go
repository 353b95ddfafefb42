package drivers

import "context"

// AsyncStore is a Store that can also start a read or a write and return
// at once, its result delivered later to a callback: a backend with its own
// asynchronous I/O (librados aio) then keeps many requests in flight
// without an OS thread blocked on each. A blocker serves READ and WRITE
// through it when its store has it; other callers need not care.
type AsyncStore interface {
	Store
	// StartRead starts Read(ctx, name, p, off) and returns without waiting
	// for it. On a nil return, done runs exactly once with Read's result,
	// p filled (zeros past the end of the object, and for a missing one);
	// on an error (an invalid name or range, a closed store, ctx ended)
	// done never runs.
	//
	// done may run before StartRead returns, on any goroutine or on a
	// backend thread that serves other completions: it must not block.
	// p belongs to the store until done runs: the caller must neither read
	// nor write it in between, and it may be memory the Go runtime does
	// not manage (a shared mapping).
	StartRead(ctx context.Context, name string, p []byte, off int64, done func(error)) error
	// StartWrite starts Write(ctx, name, p, off, flags) and returns without
	// waiting for it, with the rules of StartRead; the write is as durable
	// as Write's when done runs. A write of nothing is a flush (Flush when
	// flags ask for one), as in Write.
	StartWrite(ctx context.Context, name string, p []byte, off int64, flags WriteFlags, done func(error)) error
}
