// Command nbdd is the NBD server of a host: it exports every volume of the
// host to QEMU and other NBD clients, the export name being the volume
// name, over unix sockets and TCP. It is a peer of the segment with a
// dynamic port, a client of vlmcd: each NBD command becomes one volume
// request whose data buffer lives in the segment, so a WRITE's payload is
// read from the socket straight into the buffer vlmcd and the blocker
// use, and a READ is written to the socket straight from it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/archipelago-go/archipelago/kernel-bridge/nbd"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/tools/hostconf"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: nbdd [--socket PATH] [--listen HOST:PORT] [flags]

nbdd serves the host's volumes over NBD (the fixed newstyle protocol with
structured replies, base:allocation block status, TRIM, WRITE_ZEROES and
multi-conn). The export name is the volume name; snapshots are served
read-only. With --exports, only the volumes mapped there (vlmc map) are
served and listed; without, every volume is. Reach a volume with:

  qemu-img info 'nbd+unix:///VOLUME?socket=SOCKET'
  nbdinfo 'nbd+unix:///VOLUME?socket=SOCKET'
  qemu-system-x86_64 -drive file=nbd+unix:///VOLUME?socket=SOCKET,format=raw,if=virtio

It listens on --socket (a unix socket, mode 0660) and on each --listen
address (TCP; loopback unless you mean otherwise: NBD has no
authentication here). Started by systemd with socket activation
(LISTEN_FDS), it serves the sockets it is given instead.

vlmcd must run on --vlmcd-port of the segment. SIGTERM stops accepting,
finishes every command in flight (new ones get ESHUTDOWN) and exits.
`

// listenFlags collects repeated --listen flags.
type listenFlags []string

func (l *listenFlags) String() string     { return fmt.Sprint([]string(*l)) }
func (l *listenFlags) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		cli.Fatal("nbdd", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("nbdd", flag.ContinueOnError)
	cfg := peers.Config{Name: "nbdd"}
	cfg.DefineDynamic(fs)
	socket := fs.String("socket", filepath.Join(hostconf.Default().RunDir, "nbd.sock"), "unix socket `PATH` to listen on (empty: none)")
	var tcp listenFlags
	fs.Var(&tcp, "listen", "TCP `ADDRESS` to listen on, such as 127.0.0.1:10809 (repeatable)")
	vlmcd := fs.Int("vlmcd-port", 3, "port of vlmcd in the segment")
	exports := fs.String("exports", "", "export table: a `DIR` with one file per volume to serve, written by vlmc map (empty: serve every volume)")
	var nc nbd.Config
	fs.IntVar(&nc.MaxConnections, "max-connections", nbd.DefaultMaxConnections, "connections served at once; more are refused")
	fs.IntVar(&nc.MaxInFlight, "max-inflight", nbd.DefaultMaxInFlight, "commands in flight per connection; a client sending more waits")
	fs.DurationVar(&nc.HandshakeTimeout, "handshake-timeout", nbd.DefaultHandshakeTimeout, "time a client has to finish the handshake")
	if err := cfg.Parse(fs, args, usage); err != nil {
		return err
	}
	return peers.RunLoop(cfg, func(p *peers.Peer) (peers.Loop, error) {
		ls, err := listeners(*socket, tcp)
		if err != nil {
			return nil, err
		}
		ports, err := lanePorts(p.Ports()[0])
		if err != nil {
			return nil, err
		}
		vols := newVolumes(ports, *vlmcd, *exports)
		nc.Log = p.Log()
		srv := nbd.NewServer(vols, nc)
		return func(ctx context.Context, _ []*xseg.Port) {
			for _, l := range ls {
				p.Log().WithField("address", l.Addr().String()).Info("listening")
				go func() {
					if err := srv.Serve(l); err != nil && !errors.Is(err, nbd.ErrServerClosed) {
						p.Log().WithError(err).Error("serving stopped")
						p.Stop("listener failed")
					}
				}()
			}
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				p.Log().WithError(err).Warn("clients still connected at exit")
			}
			vols.close()
			for _, port := range ports[1:] {
				port.Release()
			}
			if *socket != "" && !activated() {
				os.Remove(*socket)
			}
		}, nil
	})
}

// lanePorts returns first and more dynamic ports of its segment, one per
// core, for the lanes of volumes.
func lanePorts(first *xseg.Port) ([]*xseg.Port, error) {
	ports := []*xseg.Port{first}
	for len(ports) < runtime.GOMAXPROCS(0) {
		p, err := first.Segment().BindDynamic()
		if err != nil {
			for _, q := range ports[1:] {
				q.Release()
			}
			return nil, fmt.Errorf("reply port: %w", err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// listeners returns the sockets systemd passed (LISTEN_FDS), or else the
// unix socket and TCP addresses asked for.
func listeners(socket string, tcp []string) ([]net.Listener, error) {
	if activated() {
		n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("LISTEN_FDS=%q: not a count of sockets", os.Getenv("LISTEN_FDS"))
		}
		var ls []net.Listener
		for fd := 3; fd < 3+n; fd++ {
			f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd))
			l, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("socket-activated fd %d: %w", fd, err)
			}
			ls = append(ls, l)
		}
		return ls, nil
	}
	var ls []net.Listener
	if socket != "" {
		if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
			return nil, err
		}
		if err := removeStaleSocket(socket); err != nil {
			return nil, err
		}
		l, err := net.Listen("unix", socket)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(socket, 0o660); err != nil {
			l.Close()
			return nil, err
		}
		ls = append(ls, l)
	}
	for _, a := range tcp {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, cli.Usagef("nothing to listen on: give --socket or --listen")
	}
	return ls, nil
}

// activated reports whether systemd passed this process its sockets.
func activated() bool {
	return os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") != ""
}

// removeStaleSocket removes a unix socket left by a dead nbdd, and refuses
// to start beside a live one.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s: another server listens there; stop it or choose another --socket", path)
	}
	return os.Remove(path)
}
