package nbd

import (
	"errors"
	"io/fs"
	"strconv"
	"syscall"
)

var (
	// ErrUnknownExport is wrapped by Backend.Open for a name it does not
	// know; the client gets NBD_REP_ERR_UNKNOWN.
	ErrUnknownExport = errors.New("unknown export")
	// ErrExportDenied is wrapped by Backend.Open when policy forbids the
	// export to this client; the client gets NBD_REP_ERR_POLICY.
	ErrExportDenied = errors.New("export denied")
	// ErrServerClosed is returned by Serve and ServeConn after Shutdown.
	ErrServerClosed = errors.New("nbd: server closed")
	// ErrTooManyConnections is returned by ServeConn when the server
	// already serves Config.MaxConnections connections.
	ErrTooManyConnections = errors.New("nbd: too many connections")
	// ErrProtocol is wrapped by ServeConn's error when the client broke the
	// protocol (bad magic, unknown client flags, an oversized option or
	// payload) and the server dropped it.
	ErrProtocol = errors.New("nbd: protocol violation")
)

// OffsetError is an error of a READ at a given offset inside the request;
// a backend may return one through Done so that a client with structured
// replies learns where the read failed (NBD_REPLY_TYPE_ERROR_OFFSET).
type OffsetError struct {
	Offset uint64 // absolute offset in the export
	Err    error
}

func (e *OffsetError) Error() string {
	return "at offset " + strconv.FormatUint(e.Offset, 10) + ": " + e.Err.Error()
}
func (e *OffsetError) Unwrap() error { return e.Err }

// requestError is an error the server itself answers a request with; its
// values are static so that refusing a request does not allocate.
type requestError struct {
	errno uint32
	msg   string
}

func (e *requestError) Error() string { return e.msg }

var (
	errPastEnd       = &requestError{errnoInval, "request beyond the end of the export"}
	errWritePastEnd  = &requestError{errnoNoSpc, "write beyond the end of the export"}
	errTooLong       = &requestError{errnoInval, "request longer than the maximum block size"}
	errUnaligned     = &requestError{errnoInval, "request not aligned to the minimum block size"}
	errReadOnly      = &requestError{errnoPerm, "export is read-only"}
	errUnknownCmd    = &requestError{errnoInval, "unknown command"}
	errBadFlags      = &requestError{errnoInval, "command flags not valid for this command"}
	errNotAdvertised = &requestError{errnoInval, "command not offered by this export"}
	errNoMetaContext = &requestError{errnoInval, "no metadata context was negotiated"}
	errShutdown      = &requestError{errnoShutdown, "server is shutting down"}
	errShortBuffer   = &requestError{errnoIO, "backend buffer shorter than the request"}
	errBadExtents    = &requestError{errnoIO, "backend reported no usable extent"}
)

// errnoOf maps an error to an NBD error value: the protocol's own values
// pass, a few relatives are folded in, anything else is EIO.
func errnoOf(err error) uint32 {
	if err == nil {
		return 0
	}
	if re, ok := err.(*requestError); ok {
		return re.errno
	}
	var re *requestError
	if errors.As(err, &re) {
		return re.errno
	}
	if errors.Is(err, ErrServerClosed) {
		return errnoShutdown
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case syscall.EPERM, syscall.EACCES, syscall.EROFS:
			return errnoPerm
		case syscall.EIO:
			return errnoIO
		case syscall.ENOMEM:
			return errnoNoMem
		case syscall.EINVAL:
			return errnoInval
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
			return errnoNoSpc
		case syscall.EOVERFLOW:
			return errnoOverflow
		case syscall.ENOTSUP:
			return errnoNotSup
		case syscall.ESHUTDOWN:
			return errnoShutdown
		}
		return errnoIO
	}
	if errors.Is(err, fs.ErrPermission) {
		return errnoPerm
	}
	return errnoIO
}

// optErrorOf maps a Backend error of Open or List to an option reply type.
func optErrorOf(err error) uint32 {
	switch {
	case errors.Is(err, ErrUnknownExport), errors.Is(err, fs.ErrNotExist):
		return repErrUnknown
	case errors.Is(err, ErrExportDenied), errors.Is(err, fs.ErrPermission):
		return repErrPolicy
	case errors.Is(err, ErrServerClosed), errors.Is(err, syscall.ESHUTDOWN):
		return repErrShutdown
	}
	// The spec has no generic failure; "the requested export is not
	// available" is the truthful one, with the error text as its message.
	return repErrUnknown
}
