package mapserver

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/tools/cli"
)

// Flags are mapperd's own command-line flags.
type Flags struct {
	DataPort  PortFlag
	MapPort   PortFlag
	Owner     string
	KeepLocks bool
}

// PortFlag is a flag.Value for a port number that may be left unset.
type PortFlag struct {
	N     int
	Given bool
}

func (p *PortFlag) String() string {
	if p == nil || !p.Given {
		return ""
	}
	return strconv.Itoa(p.N)
}

// Set parses a port number.
func (p *PortFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("port %q: want a port number", s)
	}
	p.N, p.Given = n, true
	return nil
}

// Define registers --data-port, --map-port, --owner and --keep-locks on fs.
func (f *Flags) Define(fs *flag.FlagSet) {
	fs.Var(&f.DataPort, "data-port", "port `N` of the blocker that stores the volumes' objects (required)")
	fs.Var(&f.MapPort, "map-port", "port `N` of the blocker that stores maps and volume locks (default: --data-port)")
	fs.StringVar(&f.Owner, "owner", "", `lock owner of this host, sent with ACQUIRE/RELEASE; today's blockers lock as their own --owner, keep both equal (default "<hostname>_<map port>", the blocker's default)`)
	fs.BoolVar(&f.KeepLocks, "keep-locks", false, "leave open volumes locked when stopping (a restart under running VMs); by default their locks are released")
}

// Options returns the server options the flags say.
func (f *Flags) Options() (Options, error) {
	if !f.DataPort.Given {
		return Options{}, cli.Usagef("--data-port: required (the port of the data blocker, filed or radosd)")
	}
	mapPort := f.MapPort.N
	if !f.MapPort.Given {
		mapPort = f.DataPort.N
	}
	owner := f.Owner
	if owner == "" {
		owner = blocker.DefaultOwner(mapPort)
	}
	return Options{DataPort: f.DataPort.N, MapPort: mapPort, Owner: owner, KeepLocks: f.KeepLocks}, nil
}

const usage = `Usage: mapperd --port N --data-port N [--map-port N] [flags]

mapperd composes volumes out of objects: it keeps every volume's map (which
object holds each block) on the map blocker, in the map format of Archipelago
0.4 (v0 and v1 maps are read too), and serves on --port:

  CLONE     create a thin volume, or clone a snapshot (payload: parent, size)
  SNAPSHOT  freeze a volume as a read-only snapshot (payload: snapshot name)
  DELETE    remove a volume or snapshot
  RENAME    rename a volume (payload: new name)
  TRUNCATE  resize a volume to offset bytes (shrinking needs FORCE)
  INFO      the volume's size
  OPEN      take the volume's lock and cache its map (FORCE breaks a dead
            host's lock); CLOSE releases it
  MAPR/MAPW map a range of a volume to object segments, for vlmcd; MAPW
            first copies up the blocks shared with snapshots
  HASH      content-address a snapshot: equal blocks stored once
  UPDATE    upgrade a volume's map to the v2 format
  LIST      the volumes (snapshots included) whose names start with the
            target, a page at a time (payload: the name to list after)

Snapshots and clones write maps only, whatever the volume holds. One host at
a time writes a volume: its lock lives on the map blocker ("<volume>_lock"),
and a second host gets EAGAIN with the holder's name. Maps are cached only
while their lock is held (read-only maps always).
`

// Main is mapperd's main: it parses args, then runs the peer until SIGTERM
// or SIGINT. peers/mapperd calls it; the tests run it in a process of its
// own.
func Main(args []string) error {
	fs := flag.NewFlagSet("mapperd", flag.ContinueOnError)
	cfg := peers.Config{Name: "mapperd"}
	cfg.Define(fs)
	var mf Flags
	mf.Define(fs)
	if err := cfg.Parse(fs, args, usage); err != nil {
		return err
	}
	opts, err := mf.Options()
	if err != nil {
		return err
	}
	return peers.Run(cfg, func(p *peers.Peer) (peers.Handler, error) {
		opts.Log = p.Log()
		seg := p.Ports()[0].Segment()
		s, err := New(seg, opts)
		if err != nil {
			return nil, err
		}
		p.Log().WithFields(map[string]any{"data_port": opts.DataPort, "map_port": opts.MapPort, "owner": opts.Owner}).Info("mapper ready")
		return s, nil
	})
}
