// Command vlmcd is the volume composer: it serves volume READ, WRITE and
// FLUSH on its port by mapping them to objects through mapperd and sending
// the object I/O to the data blocker, with no copy of the data.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/composer"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: vlmcd --port N --mapper-port M --blocker-port B [flags]

vlmcd serves volumes on its port: READ and WRITE of a volume range become
object I/O on the data blocker (port B), along the volume's map, which it
asks mapperd (port M) for and keeps while the volume is open here. FLUSH is a
barrier over the volume's writes. SNAPSHOT, CLOSE, DELETE, TRUNCATE and RENAME
wait for the volume's I/O to drain, then go to mapperd; other ops go to
mapperd directly. Send every volume op through vlmcd, so its mappings stay
true.

With --data-dir (the directory of the data blocker, a filed on this host),
vlmcd reads and writes objects there itself, in its event loop, instead of
sending object I/O to the blocker: one process less on every request's
path. Copy-ups, maps and locks still go through mapperd and the blocker.
archipelago start passes it when the data blocker is a file_blocker. Reads
(and writes) of up to 64 KiB then go through an io_uring, as in filed, where
the kernel and the file system can (see filed --help).
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		cli.Fatal("vlmcd", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("vlmcd", flag.ContinueOnError)
	cfg := peers.Config{Name: "vlmcd"}
	cfg.Define(fs)
	mapper := fs.Int("mapper-port", 1001, "port of mapperd")
	blocker := fs.Int("blocker-port", 1000, "port of the data blocker (filed or radosd)")
	dataDir := fs.String("data-dir", "", "do object READ and WRITE in this `DIR` (the data blocker's filed directory) instead of through the blocker")
	direct := fs.Bool("directio", false, "with --data-dir: O_DIRECT, as the filed serving it")
	fdcache := fs.Int("fdcache", 0, "with --data-dir: object files kept open (0: the default of filed)")
	if err := cfg.Parse(fs, args, usage); err != nil {
		return err
	}
	if len(cfg.Ports) != 1 {
		return cli.Usagef("vlmcd serves one port, got %d", len(cfg.Ports))
	}
	return peers.RunLoop(cfg, func(p *peers.Peer) (peers.Loop, error) {
		c := composer.New(p.Ports()[0], *mapper, *blocker, p.Log())
		if *dataDir == "" {
			return func(ctx context.Context, _ []*xseg.Port) { c.Serve(ctx) }, nil
		}
		st, err := file.Open(*dataDir, file.Options{DirectIO: *direct, FDCache: *fdcache})
		if err != nil {
			return nil, err
		}
		c.SetData(st)
		log := p.Log().WithField("data_dir", *dataDir).WithField("uring", true)
		if err := st.QueueSupported(); err != nil {
			log = log.WithField("uring", err.Error())
		}
		log.Info("object I/O done here, in the data directory")
		return func(ctx context.Context, _ []*xseg.Port) {
			c.Serve(ctx)
			if err := st.Close(); err != nil {
				p.Log().WithError(err).Error("data directory not synced at exit")
			}
		}, nil
	})
}
