package blocker

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// Flags are the command-line flags every blocker peer shares.
type Flags struct {
	Owner    string
	LockWait time.Duration
}

// Define registers --owner and --lock-wait on fs.
func (f *Flags) Define(fs *flag.FlagSet) {
	fs.StringVar(&f.Owner, "owner", "", `lock owner this peer takes locks as: unique per host and peer, the same after a restart (default "<hostname>_<port>")`)
	fs.DurationVar(&f.LockWait, "lock-wait", DefaultLockWait, "longest a blocking ACQUIRE waits for a held lock before failing with ETIMEDOUT")
}

// Options returns the Blocker options the flags say, for a peer whose
// first port is port.
func (f *Flags) Options(port int) Options {
	owner := f.Owner
	if owner == "" {
		owner = DefaultOwner(port)
	}
	return Options{Owner: owner, LockWait: f.LockWait}
}

// DefaultOwner returns "<hostname>_<port>", the original filed's and
// radosd's unique string for a peer on this host.
func DefaultOwner(port int) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s_%d", host, port)
}
