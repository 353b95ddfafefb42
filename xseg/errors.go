package xseg

import "errors"

var (
	// ErrExists is returned by Create when a segment of that name exists.
	ErrExists = errors.New("segment already exists")
	// ErrNotFound is returned by Join and Destroy when no segment has that name.
	ErrNotFound = errors.New("segment not found")
	// ErrBadName is returned for a segment name that is empty, too long, or
	// holds '/' or characters outside [A-Za-z0-9._-].
	ErrBadName = errors.New("invalid segment name")
	// ErrBadGeometry is returned by Create for a geometry out of bounds.
	ErrBadGeometry = errors.New("invalid segment geometry")
	// ErrCorrupt is returned by Join when the segment file is not an XSEG
	// segment of this layout: wrong magic, failed checksum, inconsistent
	// offsets, or a file shorter or longer than its header says.
	ErrCorrupt = errors.New("segment corrupt or not an XSEG segment")
	// ErrVersion is returned by Join when the segment was created by another
	// layout version; recreate it with this version's tools.
	ErrVersion = errors.New("segment layout version mismatch")
	// ErrGeometryMismatch is returned by Join when the caller asked for a
	// geometry and the segment has another.
	ErrGeometryMismatch = errors.New("segment geometry mismatch")
	// ErrNoSuchPort is returned for a port number outside the segment.
	ErrNoSuchPort = errors.New("no such port")
	// ErrPortBusy is returned by Bind when a live process owns the port.
	ErrPortBusy = errors.New("port bound by a live process")
	// ErrNoFreePort is returned by BindDynamic when every dynamic port is bound.
	ErrNoFreePort = errors.New("no free dynamic port")
	// ErrPortNotBound is returned by Submit when nobody serves the port.
	ErrPortNotBound = errors.New("port not bound")
	// ErrNoFreeRequests is returned by Get when every request slot is in
	// use; retry after replies have been put back.
	ErrNoFreeRequests = errors.New("no free request slots")
	// ErrNoBufferSpace is returned by Prepare when the segment's data
	// buffer space cannot hold the asked size now; retry later or create
	// the segment with more buffer space.
	ErrNoBufferSpace = errors.New("no free data buffer space")
	// ErrTooLarge is returned by Prepare for a data size over the whole
	// buffer space of the segment.
	ErrTooLarge = errors.New("request data larger than the segment's buffer space")
	// ErrTargetTooLong is returned by Prepare for a target over MaxTargetLen.
	ErrTargetTooLong = errors.New("target name too long")
	// ErrPathTooLong is returned by Submit when a request has been
	// resubmitted through more than MaxPath ports.
	ErrPathTooLong = errors.New("request path too long")
	// ErrNotHeld is returned when a request is used by a port that does not
	// hold it (for example submitted twice, or put back after submit).
	ErrNotHeld = errors.New("request not held by this port")
	// ErrPeerDied is the error of a request whose serving peer (or a peer on
	// its return path) died or released its port before replying. The
	// request was not necessarily executed; a client may retry it.
	ErrPeerDied = errors.New("peer died before replying")
	// ErrClosed is returned by operations on a released port or left segment.
	ErrClosed = errors.New("port or segment closed")
)
