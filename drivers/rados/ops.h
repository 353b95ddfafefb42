// librados calls that go-ceph lacks or wraps badly: a server-side copy (only
// the C++ API has copy_from), an atomic zero-fill, and a notify that frees
// its reply. All are synchronous and return 0 or a negative errno.
#ifndef ARCHIPELAGO_RADOS_OPS_H
#define ARCHIPELAGO_RADOS_OPS_H

#include <stdint.h>
#include <rados/librados.h>

#ifdef __cplusplus
extern "C" {
#endif

// archipelago_copy_from replaces dst with a copy of src made by the OSD
// (copy_from), truncated or zero-extended to size bytes, in one atomic
// operation. -ENOENT if src does not exist.
int archipelago_copy_from(rados_ioctx_t io, const char *src, const char *dst, uint64_t size);

// archipelago_zero_object makes dst exactly size zero bytes, creating it if
// needed, in one atomic operation.
int archipelago_zero_object(rados_ioctx_t io, const char *dst, uint64_t size);

// archipelago_notify sends an empty notification to the watchers of oid and
// waits up to timeout_ms for their acks. go-ceph's NotifyWithTimeout leaks
// the reply buffer.
int archipelago_notify(rados_ioctx_t io, const char *oid, uint64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
