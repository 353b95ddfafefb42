package file

import "errors"

// ErrNotSupported is returned by Open when an option needs something the
// kernel or the file system lacks, such as O_DIRECT on a file system that
// refuses it. Wrapped errors satisfy errors.Is.
var ErrNotSupported = errors.New("not supported")
