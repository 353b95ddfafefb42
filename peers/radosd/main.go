//go:build ceph

// Command radosd is the blocker peer over RADOS: it serves object requests
// on XSEG ports from one pool (and namespace) of a Ceph cluster, with the
// original radosd's object and lock names, so an existing pool is served
// as is. Build it with: go build -tags 'ceph pacific' ./peers/radosd
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/archipelago-go/archipelago/drivers/rados"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: radosd --port N --pool POOL [flags]

radosd serves objects (READ, WRITE, FLUSH, DELETE, COPY, INFO, ACQUIRE, RELEASE,
HASH, LIST, PING) from a RADOS pool, named as the original Archipelago radosd names
them: an object under its own name, its lock the RADOS exclusive lock
"RadosLock" on "NAME_lock", its hash cached in "NAME_hash". Run one radosd per
pool (data objects and maps may live in separate pools, or namespaces).

RADOS acknowledges a write once every replica has it, so every write is
durable when it is answered. READ and WRITE go through librados' asynchronous
calls: up to --inflight of them per port are librados operations in flight
at once. Every librados call is bounded by --timeout, so an unreachable
cluster gives errors (ETIMEDOUT), not hangs.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		cli.Fatal("radosd", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("radosd", flag.ContinueOnError)
	cfg := peers.Config{Name: "radosd"}
	cfg.Define(fs)
	var bf blocker.Flags
	bf.Define(fs)
	var rc rados.Config
	fs.StringVar(&rc.ConfFile, "conf", "", "ceph.conf to read (default: $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)")
	fs.StringVar(&rc.Pool, "pool", "", "RADOS pool to serve; it must exist (required)")
	fs.StringVar(&rc.ClientID, "cephx-id", "", `cephx user without the "client." prefix (default admin)`)
	fs.StringVar(&rc.Namespace, "namespace", "", "RADOS namespace in the pool (default: the pool's default namespace, where the original keeps its objects)")
	fs.DurationVar(&rc.Timeout, "timeout", rados.DefaultTimeout, "bound on connecting and on every librados operation")
	if err := cfg.Parse(fs, args, usage); err != nil {
		return err
	}
	if rc.Pool == "" {
		return cli.Usagef("--pool: required")
	}
	return peers.RunLoop(cfg, func(p *peers.Peer) (peers.Loop, error) {
		bopts := bf.Options(cfg.Ports[0])
		bopts.SlowIO = true // every call crosses the network
		rc.Owner = bopts.Owner
		start := time.Now()
		store, err := rados.Open(rc)
		if err != nil {
			return nil, err
		}
		b, err := blocker.New(store, bopts)
		if err != nil {
			store.Close()
			return nil, err
		}
		p.Log().WithField("pool", rc.Pool).WithField("namespace", rc.Namespace).WithField("owner", b.Owner()).
			WithField("connect", time.Since(start).Round(time.Millisecond).String()).Info("connected to the cluster")
		// READ and WRITE go through librados aio: requests in flight are
		// librados operations in flight, answered by the port's goroutine
		// as their completions come in. Other requests run on a goroutine
		// each.
		loop := b.Loop(cfg.Inflight, p.Log())
		return func(ctx context.Context, ports []*xseg.Port) {
			loop(ctx, ports)
			if err := b.Close(); err != nil {
				p.Log().WithError(err).Error("close the store")
			}
		}, nil
	})
}
