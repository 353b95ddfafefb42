package peers

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends systemd service notifications (sd_notify(3)) to the
// datagram socket systemd names in $NOTIFY_SOCKET. A path starting with
// '@' is an abstract socket. The zero Notifier, and one made where
// $NOTIFY_SOCKET is unset, sends nothing.
type Notifier struct {
	addr string

	mu   sync.Mutex
	conn *net.UnixConn
}

// NewNotifier returns a Notifier for $NOTIFY_SOCKET.
func NewNotifier() *Notifier { return &Notifier{addr: os.Getenv("NOTIFY_SOCKET")} }

// NewNotifierAt returns a Notifier sending to the socket at addr.
func NewNotifierAt(addr string) *Notifier { return &Notifier{addr: addr} }

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Notify sends one notification, newline-separated VAR=value lines such
// as "READY=1". It does nothing when not Enabled.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		// Go's net package maps a leading '@' to an abstract address.
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
		if err != nil {
			return err
		}
		n.conn = conn
	}
	_, err := n.conn.Write([]byte(state))
	return err
}

// Close closes the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// WatchdogInterval returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, or 0 when systemd asks for no watchdog or asks another
// process ($WATCHDOG_PID).
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// WatchReady reads systemd notifications from sock, the socket a peer was
// given as NOTIFY_SOCKET, and sends nil once a peer says READY=1, or the
// read error (after sock is closed, for one). What a supervisor (the
// archipelago tool, tests) waits on.
func WatchReady(sock *net.UnixConn) <-chan error {
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	return ready
}
