// Asynchronous reads and writes through librados' C aio calls. Each starts
// the operation and returns at once; librados later calls the exported Go
// function archipelagoAioDone(tag, ret) from its finisher thread, with the
// operation's return value (bytes read, 0, or a negative errno).
#ifndef ARCHIPELAGO_RADOS_AIO_H
#define ARCHIPELAGO_RADOS_AIO_H

#include <stddef.h>
#include <stdint.h>
#include <rados/librados.h>

// archipelago_aio_read starts reading len bytes at off of the object named
// by name[0:name_len] into buf. It returns 0 when the operation started
// (the callback then runs exactly once), or a negative errno (it never
// runs). buf must stay valid until the callback; name need not.
int archipelago_aio_read(rados_ioctx_t io, const char *name, size_t name_len, char *buf, size_t len, uint64_t off, uintptr_t tag);

// archipelago_aio_write starts writing buf[0:len] at off of the object, as
// archipelago_aio_read starts a read.
int archipelago_aio_write(rados_ioctx_t io, const char *name, size_t name_len, const char *buf, size_t len, uint64_t off, uintptr_t tag);

#endif
