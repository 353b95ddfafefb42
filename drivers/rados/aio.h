// Asynchronous reads and writes through librados' C aio calls, completed
// into a queue that one Go goroutine polls. Each call starts the operation
// and returns at once; when the OSD answers, librados' finisher thread
// pushes the operation's tag and return value (bytes read, 0, or a negative
// errno) onto the queue and wakes the poller's futex word. No Go code runs
// on a librados thread.
#ifndef ARCHIPELAGO_RADOS_AIO_H
#define ARCHIPELAGO_RADOS_AIO_H

#include <stddef.h>
#include <stdint.h>
#include <rados/librados.h>

struct archipelago_aio_node;

// archipelago_cq is a completion queue: many librados threads push, one
// poller takes. head is pushed to lock-free; taken belongs to the poller.
struct archipelago_cq {
	struct archipelago_aio_node *head;
	struct archipelago_aio_node *taken;
	// wake, when not NULL, is the poller's futex word: a push swaps it
	// from 1 to 0 and wakes its sleepers (FUTEX_WAKE, not private: the
	// word may live in a mapping shared between processes).
	uint32_t *wake;
	// pushing counts the threads between the start of a push and their
	// last touch of the queue and the word.
	uint32_t pushing;
};

// archipelago_done is one completion taken from a queue.
struct archipelago_done {
	uintptr_t tag;
	int ret;
};

// archipelago_aio_read starts reading len bytes at off of the object named
// by name[0:name_len] into buf. It returns 0 when the operation started
// (its completion is then pushed onto cq exactly once), or a negative
// errno (it never is). buf must stay valid until the completion; name need
// not.
int archipelago_aio_read(rados_ioctx_t io, struct archipelago_cq *cq, const char *name, size_t name_len, char *buf, size_t len, uint64_t off, uintptr_t tag);

// archipelago_aio_write starts writing buf[0:len] at off of the object, as
// archipelago_aio_read starts a read.
int archipelago_aio_write(rados_ioctx_t io, struct archipelago_cq *cq, const char *name, size_t name_len, const char *buf, size_t len, uint64_t off, uintptr_t tag);

// archipelago_cq_node makes the completion of an operation that librados
// does not run asynchronously (NULL when out of memory), and
// archipelago_cq_push pushes it with its return value, from any thread.
struct archipelago_aio_node *archipelago_cq_node(struct archipelago_cq *cq, uintptr_t tag);
void archipelago_cq_push(struct archipelago_aio_node *n, int ret);

// archipelago_cq_take moves up to max completions, oldest first, into out
// and returns how many; only the poller calls it.
int archipelago_cq_take(struct archipelago_cq *cq, struct archipelago_done *out, int max);

#endif
