//go:build ceph

#include <errno.h>
#include <string.h>

#include "aio.h"
#include "_cgo_export.h"

// Longest object name, drivers.MaxNameLen; names come from Go without NUL.
#define NAME_MAX_BYTES 256

static void aio_complete(rados_completion_t c, void *arg)
{
	int ret = rados_aio_get_return_value(c);
	// librados holds its own reference while it runs this callback.
	rados_aio_release(c);
	archipelagoAioDone((uintptr_t)arg, ret);
}

// start creates a completion, copies the name with its NUL, and has submit
// start the operation; on failure the completion goes and the callback
// never runs.
static int start(const char *name, size_t name_len, uintptr_t tag, rados_completion_t *c, char *oid)
{
	if (name_len == 0 || name_len > NAME_MAX_BYTES)
		return -EINVAL;
	memcpy(oid, name, name_len);
	oid[name_len] = '\0';
	return rados_aio_create_completion2((void *)tag, aio_complete, c);
}

int archipelago_aio_read(rados_ioctx_t io, const char *name, size_t name_len, char *buf, size_t len, uint64_t off, uintptr_t tag)
{
	char oid[NAME_MAX_BYTES + 1];
	rados_completion_t c;
	int ret = start(name, name_len, tag, &c, oid);
	if (ret < 0)
		return ret;
	ret = rados_aio_read(io, oid, c, buf, len, off);
	if (ret < 0)
		rados_aio_release(c);
	return ret;
}

int archipelago_aio_write(rados_ioctx_t io, const char *name, size_t name_len, const char *buf, size_t len, uint64_t off, uintptr_t tag)
{
	char oid[NAME_MAX_BYTES + 1];
	rados_completion_t c;
	int ret = start(name, name_len, tag, &c, oid);
	if (ret < 0)
		return ret;
	ret = rados_aio_write(io, oid, c, buf, len, off);
	if (ret < 0)
		rados_aio_release(c);
	return ret;
}
