// Package peers owns the peer runtime: what every long-running process
// bound to ports of a segment shares. It parses the common flags, logs
// through logrus (fields peer, port, op, target; one event per line),
// binds the ports (refusing ports a live process owns, taking over those of
// a dead one), serves requests through a bounded pool of goroutines, and
// handles signals and systemd:
//
//   - SIGTERM, SIGINT: stop accepting, answer every request already
//     accepted, release the ports, exit 0. Requests still queued and not
//     accepted fail back to their clients with xseg.ErrPeerDied, which
//     tells them the request was not executed. A second signal exits at
//     once.
//   - SIGUSR1 / SIGUSR2: log more / less (trace, debug, info, warning,
//     error).
//   - SIGHUP: reopen the log file (after logrotate moved it).
//   - systemd Type=notify: READY=1 once the ports are bound and served,
//     STOPPING=1 when draining starts, WATCHDOG=1 every WATCHDOG_USEC/2.
//
// A peer is a Handler: Serve performs one request and returns nil or the
// error to fail it with. The runtime calls it from up to Inflight
// goroutines per port and sends the reply.
//
// The blocker peers (filed, radosd) are peers/blocker over a driver; their
// main packages are peers/filed and peers/radosd.
package peers
