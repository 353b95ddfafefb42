//go:build ceph

#include <errno.h>
#include <new>
#include <rados/librados.hpp>

#include "ops.h"

extern "C" int archipelago_copy_from(rados_ioctx_t io, const char *src, const char *dst, uint64_t size)
{
	try {
		// from_rados_ioctx_t takes a reference on the C context (same
		// pool and namespace); the destructor drops it.
		librados::IoCtx ctx;
		librados::IoCtx::from_rados_ioctx_t(io, ctx);
		librados::ObjectWriteOperation op;
		// Version 0: copy whatever version src has now.
		op.copy_from(src, ctx, 0, 0);
		op.truncate(size);
		return ctx.operate(dst, &op);
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (...) {
		return -EIO;
	}
}

extern "C" int archipelago_zero_object(rados_ioctx_t io, const char *dst, uint64_t size)
{
	rados_write_op_t op = rados_create_write_op();
	if (op == NULL)
		return -ENOMEM;
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rados_write_op_truncate(op, 0);
	rados_write_op_truncate(op, size);
	int ret = rados_write_op_operate2(op, io, dst, NULL, 0);
	rados_release_write_op(op);
	return ret;
}

extern "C" int archipelago_notify(rados_ioctx_t io, const char *oid, uint64_t timeout_ms)
{
	char *reply = NULL;
	size_t reply_len = 0;
	int ret = rados_notify2(io, oid, NULL, 0, timeout_ms, &reply, &reply_len);
	if (reply != NULL)
		rados_buffer_free(reply);
	return ret;
}
