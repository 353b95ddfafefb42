//go:build ceph

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aio.h"

// Longest object name, drivers.MaxNameLen; names come from Go without NUL.
#define NAME_MAX_BYTES 256

struct archipelago_aio_node {
	struct archipelago_aio_node *next;
	struct archipelago_cq *cq;
	uintptr_t tag;
	int ret;
};

static void wake(uint32_t *word)
{
	uint32_t sleeping = 1;
	if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == 1 &&
	    __atomic_compare_exchange_n(word, &sleeping, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void push(struct archipelago_aio_node *n)
{
	struct archipelago_cq *cq = n->cq;
	// Once the node is on the stack the poller may take it and close the
	// queue: pushing counts until this thread is done with cq and the
	// word, and the poller's close waits for it to drop to 0.
	__atomic_add_fetch(&cq->pushing, 1, __ATOMIC_SEQ_CST);
	n->next = __atomic_load_n(&cq->head, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&cq->head, &n->next, n, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
	// The push above and the poller's store of 1 in its word are both
	// full barriers: either the poller sees the push, or this sees 1.
	if (cq->wake)
		wake(cq->wake);
	__atomic_sub_fetch(&cq->pushing, 1, __ATOMIC_RELEASE);
}

static void aio_complete(rados_completion_t c, void *arg)
{
	struct archipelago_aio_node *n = arg;
	n->ret = rados_aio_get_return_value(c);
	// librados holds its own reference while it runs this callback.
	rados_aio_release(c);
	push(n);
}

struct archipelago_aio_node *archipelago_cq_node(struct archipelago_cq *cq, uintptr_t tag)
{
	struct archipelago_aio_node *n = malloc(sizeof(*n));
	if (n) {
		n->cq = cq;
		n->tag = tag;
	}
	return n;
}

void archipelago_cq_push(struct archipelago_aio_node *n, int ret)
{
	n->ret = ret;
	push(n);
}

// start makes the node and completion of an operation and copies the name
// with its NUL; on failure nothing is left and the completion never runs.
static int start(struct archipelago_cq *cq, const char *name, size_t name_len, uintptr_t tag,
		 struct archipelago_aio_node **node, rados_completion_t *c, char *oid)
{
	if (name_len == 0 || name_len > NAME_MAX_BYTES)
		return -EINVAL;
	memcpy(oid, name, name_len);
	oid[name_len] = '\0';
	struct archipelago_aio_node *n = archipelago_cq_node(cq, tag);
	if (!n)
		return -ENOMEM;
	int ret = rados_aio_create_completion2(n, aio_complete, c);
	if (ret < 0) {
		free(n);
		return ret;
	}
	*node = n;
	return 0;
}

int archipelago_aio_read(rados_ioctx_t io, struct archipelago_cq *cq, const char *name, size_t name_len, char *buf, size_t len, uint64_t off, uintptr_t tag)
{
	char oid[NAME_MAX_BYTES + 1];
	struct archipelago_aio_node *n;
	rados_completion_t c;
	int ret = start(cq, name, name_len, tag, &n, &c, oid);
	if (ret < 0)
		return ret;
	ret = rados_aio_read(io, oid, c, buf, len, off);
	if (ret < 0) {
		rados_aio_release(c);
		free(n);
	}
	return ret;
}

int archipelago_aio_write(rados_ioctx_t io, struct archipelago_cq *cq, const char *name, size_t name_len, const char *buf, size_t len, uint64_t off, uintptr_t tag)
{
	char oid[NAME_MAX_BYTES + 1];
	struct archipelago_aio_node *n;
	rados_completion_t c;
	int ret = start(cq, name, name_len, tag, &n, &c, oid);
	if (ret < 0)
		return ret;
	ret = rados_aio_write(io, oid, c, buf, len, off);
	if (ret < 0) {
		rados_aio_release(c);
		free(n);
	}
	return ret;
}

int archipelago_cq_take(struct archipelago_cq *cq, struct archipelago_done *out, int max)
{
	int n = 0;
	while (n < max) {
		if (!cq->taken) {
			// The stack is newest first: reverse it.
			struct archipelago_aio_node *l = __atomic_exchange_n(&cq->head, NULL, __ATOMIC_ACQUIRE), *r = NULL;
			if (!l)
				break;
			while (l) {
				struct archipelago_aio_node *next = l->next;
				l->next = r;
				r = l;
				l = next;
			}
			cq->taken = r;
		}
		struct archipelago_aio_node *node = cq->taken;
		cq->taken = node->next;
		out[n].tag = node->tag;
		out[n].ret = node->ret;
		free(node);
		n++;
	}
	return n;
}
