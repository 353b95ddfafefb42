// Command filed is the blocker peer over a directory: it serves object
// requests on XSEG ports from files laid out as the original Archipelago
// filed lays them out, so an existing data directory is served as is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: filed --port N [flags]

filed serves objects (READ, WRITE, FLUSH, DELETE, COPY, INFO, ACQUIRE, RELEASE,
HASH, LIST, PING) from files under --data-dir, laid out as the original Archipelago
filed lays them out: DIR/ab/cd/ef/NAME, where abcdef starts SHA-256(NAME) in
hex; locks are files created with link(2), safe on NFS. An existing filed data
directory is served as it is.

Writes are durable when the request asks (FUA, or a FLUSH after them).

Reads and writes of up to 64 KiB go through an io_uring where the kernel has
one with futex waits (Linux 6.7 and later) and the file system serves them
without blocking when it can (ext4 reads, XFS reads and writes; not tmpfs):
each port submits the requests waiting for it with one system call. Else, or
with --uring=false, each is a pread or pwrite of its own; but pages read or
written 16 times are copied through a shared mapping of their object file,
with no system call at all (not on NFS, nor with --directio).
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
	useRing := fs.Bool("uring", true, "submit small reads and writes in batches through io_uring where the kernel and file system can")
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
	return peers.RunLoop(cfg, func(p *peers.Peer) (peers.Loop, error) {
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
		log := p.Log().WithField("data_dir", store.Dir()).WithField("owner", b.Owner()).
			WithField("directio", opts.DirectIO)
		var loop peers.Loop
		if *useRing {
			if err := store.QueueSupported(); err != nil {
				log = log.WithField("uring", err.Error())
			} else {
				loop = b.Loop(cfg.Inflight, p.Log())
				log = log.WithField("uring", true)
			}
		}
		if loop == nil {
			srv := &peers.Server{Handler: b, Inflight: cfg.Inflight, Log: p.Log()}
			loop = func(ctx context.Context, ports []*xseg.Port) { srv.Serve(ctx, ports...) }
		}
		log.Info("file store open")
		return func(ctx context.Context, ports []*xseg.Port) {
			loop(ctx, ports)
			if err := b.Close(); err != nil {
				p.Log().WithError(err).Error("close the store")
			}
		}, nil
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
