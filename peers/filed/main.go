// Command filed is the blocker peer over a directory: it serves object
// requests on XSEG ports from files laid out as the original Archipelago
// filed lays them out, so an existing data directory is served as is.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/tools/cli"
)

const usage = `Usage: filed --port N [flags]

filed serves objects (READ, WRITE, FLUSH, DELETE, COPY, INFO, ACQUIRE, RELEASE,
HASH, LIST, PING) from files under --data-dir, laid out as the original Archipelago
filed lays them out: DIR/ab/cd/ef/NAME, where abcdef starts SHA-256(NAME) in
hex; locks are files created with link(2), safe on NFS. An existing filed data
directory is served as it is.

Writes are durable when the request asks (FUA, or a FLUSH after them).
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		cli.Fatal("filed", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("filed", flag.ContinueOnError)
	cfg := peers.Config{Name: "filed"}
	cfg.Define(fs)
	var bf blocker.Flags
	bf.Define(fs)
	defaultDir := defaultDataDir()
	var opts file.Options
	dataDir := fs.String("data-dir", defaultDir, "directory that holds the objects (created if it is the default)")
	fs.StringVar(&opts.LockDir, "lock-dir", "", "directory for lock files, flat as DIR/NAME_lock (default: in the data tree, as filed does)")
	fs.IntVar(&opts.FDCache, "fdcache", file.DefaultFDCache, "object files kept open")
	fs.BoolVar(&opts.DirectIO, "directio", false, "open object files with O_DIRECT, bypassing the page cache")
	if err := cfg.Parse(fs, args, usage); err != nil {
		return err
	}
	if *dataDir == defaultDir {
		if err := os.MkdirAll(*dataDir, 0o750); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
	} else if _, err := os.Stat(*dataDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data directory %s does not exist: create it, or pass another --data-dir", *dataDir)
	}
	return peers.Run(cfg, func(p *peers.Peer) (peers.Handler, error) {
		bopts := bf.Options(cfg.Ports[0])
		bopts.SlowIO = opts.DirectIO // no page cache: every read and write waits
		opts.Owner = bopts.Owner
		store, err := file.Open(*dataDir, opts)
		if err != nil {
			return nil, err
		}
		b, err := blocker.New(store, bopts)
		if err != nil {
			store.Close()
			return nil, err
		}
		p.Log().WithField("data_dir", store.Dir()).WithField("owner", b.Owner()).
			WithField("directio", opts.DirectIO).Info("file store open")
		return b, nil
	})
}

// defaultDataDir is /var/lib/archipelago for root, else the user's data
// directory.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/archipelago"
	}
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "archipelago")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "archipelago")
	}
	return "archipelago-data"
}
