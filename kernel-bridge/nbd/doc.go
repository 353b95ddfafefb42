// Package nbd owns the NBD protocol as the NetworkBlockDevice project's
// doc/proto.md defines it: the fixed newstyle handshake and its option
// haggling (GO, INFO, EXPORT_NAME, LIST, ABORT, STRUCTURED_REPLY and the
// base:allocation metadata context), the transmission phase with simple and
// structured replies, and a Server that serves connections from
// net.Listeners (unix and TCP) against a Backend.
//
// The package knows nothing of volumes: a Backend opens an Export by name,
// and the server turns each request into a Command that it starts on the
// export. The server reads a WRITE payload straight into the export's Buffer
// and writes a READ reply straight from it, with one writev of header and
// data, from whichever goroutine completes the command. Replies may go out
// of order; many commands are in flight per connection.
//
// What the package does not do: TLS (NBD_OPT_STARTTLS is answered with
// NBD_REP_ERR_UNSUP), extended headers, metadata contexts other than
// base:allocation, and the oldstyle handshake.
package nbd
