// Command mapperd is the mapper peer: it keeps the volumes' maps on a map
// blocker and serves volume operations (create, clone, snapshot, remove,
// rename, resize, open, close, hash, list) and the MAPR/MAPW requests of
// vlmcd.
// Everything but main is peers/mapserver.
package main

import (
	"os"

	"github.com/archipelago-go/archipelago/peers/mapserver"
	"github.com/archipelago-go/archipelago/tools/cli"
)

func main() {
	if err := mapserver.Main(os.Args[1:]); err != nil {
		cli.Fatal("mapperd", err)
	}
}
