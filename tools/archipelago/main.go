// Command archipelago starts, stops and reports a host: its segment and
// the peers (blockers, mapperd, vlmcd, nbdd) a config file describes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/tools/hostconf"
)

const usage = `Usage: archipelago [--config FILE] COMMAND [--json] [--timeout D]

Commands:
  start     create the segment if missing, then start each peer (blockers,
            mapperd, vlmcd, nbdd) in that order, waiting for each to be ready
            (READY=1 on a notification socket); on failure, show the peer's
            log tail and stop what was started
  stop      SIGTERM the peers in reverse order, wait for each to exit (up to
            --timeout, then SIGKILL), destroy the segment
  restart   stop, then start
  status    each peer: role, type, port, pid and whether it is alive (its
            pid file's process is running and owns its port in the
            segment); exits 3 unless every peer is running

The config is the original Archipelago's archipelago.conf (INI); an
existing file works unchanged (see tools/hostconf). Without --config,
/etc/archipelago/archipelago.conf is read if it exists, else the embedded
default host is used: segment "archipelago" in /dev/shm, filed on port 1
(data in /var/lib/archipelago as root, else ~/.local/share/archipelago),
mapperd on port 2, vlmcd on port 3, nbdd on a dynamic port serving NBD
on <run dir>/nbd.sock; pid files and logs in /run/archipelago (root) or
$XDG_RUNTIME_DIR/archipelago.

A role's cpus key (a CPU list: cpus = 2-3,6) starts that peer allowed to
run on those CPUs only, every thread of it: on a hypervisor, keep the
storage peers off the VMs' cores, and a peer and its busiest client off
each other's.

The peer binaries (filed, radosd, mapperd, vlmcd, nbdd) are looked up beside this
binary, then in $PATH.

Flags:
`

func main() {
	fs := flag.NewFlagSet("archipelago", flag.ContinueOnError)
	config := fs.String("config", "", "host config `FILE` (default "+hostconf.DefaultPath+" if it exists, else the embedded default)")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for each peer to be ready, or to exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	args, err := cli.Parse(fs, os.Args[1:])
	if err != nil {
		cli.Fatal("archipelago", err)
	}
	if len(args) != 1 {
		fs.Usage()
		cli.Fatal("archipelago", cli.Usagef("want one command: start, stop, restart or status"))
	}
	h, err := hostconf.Load(*config)
	if err != nil {
		cli.Fatal("archipelago", err)
	}
	m := &manager{host: h, timeout: *timeout, out: os.Stdout}
	switch args[0] {
	case "start":
		err = m.start()
	case "stop":
		err = m.stop()
	case "restart":
		if err = m.stop(); err == nil {
			err = m.start()
		}
	case "status":
		var st []peerStatus
		st, err = m.status()
		if err == nil {
			if *asJSON {
				err = cli.PrintJSON(statusReport{Segment: h.Segment.Name, Config: h.Source, Peers: st})
			} else {
				printStatus(os.Stdout, st)
			}
		}
		if err == nil {
			for _, s := range st {
				if s.State != stateRunning {
					os.Exit(3)
				}
			}
		}
	default:
		err = cli.Usagef("unknown command %q: want start, stop, restart or status", args[0])
	}
	if err != nil {
		if errors.Is(err, cli.ErrUsage) {
			fs.Usage()
		}
		cli.Fatal("archipelago", err)
	}
}
