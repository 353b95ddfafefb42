package peers

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

// DefaultInflight is how many requests a peer serves at once on each port
// unless Config.Inflight says otherwise.
const DefaultInflight = 64

// Config is what every peer is told on its command line.
type Config struct {
	// Name is the peer's name in logs ("filed"); the binary sets it.
	Name string
	// Segment is the name of the segment to join; it must exist.
	Segment string
	// SegmentDir is the directory that holds segments.
	SegmentDir string
	// Ports are the static ports to bind and serve.
	Ports PortRange
	// Dynamic makes the peer bind one dynamic port instead of Ports: a
	// peer that only sends requests (nbdd). The binary sets it.
	Dynamic bool
	// Inflight is how many requests are served at once on each port.
	Inflight int
	// LogLevel is the initial log level.
	LogLevel LevelFlag
	// LogFile, if set, receives the log (appended); empty logs to stderr.
	LogFile string
	// PIDFile, if set, is written with the process id once the ports are
	// bound, and removed at exit.
	PIDFile string
}

// Define registers the common flags on fs, with their defaults, under the
// names every peer shares.
func (c *Config) Define(fs *flag.FlagSet) {
	c.defineCommon(fs)
	fs.Var(&c.Ports, "port", "static port `N` to serve, or a range N-M (required); a port owned by a live process is refused, a dead one's is taken over")
	fs.IntVar(&c.Inflight, "inflight", DefaultInflight, "requests served concurrently on each port; more wait queued in the segment")
}

// DefineDynamic registers the common flags of a peer that binds a dynamic
// port (Dynamic): those of Define but --port and --inflight.
func (c *Config) DefineDynamic(fs *flag.FlagSet) {
	c.Dynamic, c.Inflight = true, DefaultInflight
	c.defineCommon(fs)
}

func (c *Config) defineCommon(fs *flag.FlagSet) {
	c.LogLevel = LevelFlag(logrus.InfoLevel)
	fs.StringVar(&c.Segment, "segment", "archipelago", "name of the segment to join (create it first with: xseg create NAME)")
	fs.StringVar(&c.SegmentDir, "segment-dir", xseg.DefaultDir, "directory that holds segments")
	fs.Var(&c.LogLevel, "log-level", "log `level`: error, warning, info, debug or trace (SIGUSR1 raises it, SIGUSR2 lowers it)")
	fs.StringVar(&c.LogFile, "log-file", "", "append the log to this file instead of stderr (SIGHUP reopens it)")
	fs.StringVar(&c.PIDFile, "pid-file", "", "write the process id to this file once the ports are bound; removed at exit")
}

// Check reports a configuration that cannot run.
func (c *Config) Check() error {
	switch {
	case c.Segment == "":
		return fmt.Errorf("--segment: empty")
	case c.Dynamic && len(c.Ports) > 0:
		return fmt.Errorf("--port: this peer binds a dynamic port of its own")
	case len(c.Ports) == 0 && !c.Dynamic:
		return fmt.Errorf("--port: required (a static port of the segment, or a range N-M)")
	case c.Inflight < 1:
		return fmt.Errorf("--inflight %d: must be at least 1", c.Inflight)
	}
	return nil
}

// PortRange is a flag.Value for "N" or "N-M" (inclusive).
type PortRange []int

func (r PortRange) String() string {
	switch len(r) {
	case 0:
		return ""
	case 1:
		return strconv.Itoa(r[0])
	}
	return fmt.Sprintf("%d-%d", r[0], r[len(r)-1])
}

// Set parses "N" or "N-M".
func (r *PortRange) Set(s string) error {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := strconv.Atoi(lo)
	last := first
	if err == nil && isRange {
		last, err = strconv.Atoi(hi)
	}
	if err != nil || first < 0 || last < first || last-first >= 1<<16 {
		return fmt.Errorf("port %q: want a port number N or a range N-M with N <= M", s)
	}
	*r = (*r)[:0]
	for p := first; p <= last; p++ {
		*r = append(*r, p)
	}
	return nil
}

// LevelFlag is a flag.Value for a logrus level.
type LevelFlag logrus.Level

func (l LevelFlag) String() string {
	b, _ := logrus.Level(l).MarshalText()
	return string(b)
}

// Set parses a level name.
func (l *LevelFlag) Set(s string) error {
	level, err := logrus.ParseLevel(s)
	if err != nil || level < logrus.ErrorLevel {
		return fmt.Errorf("log level %q: want error, warning, info, debug or trace", s)
	}
	*l = LevelFlag(level)
	return nil
}

// SetUsage makes fs's --help print header, the flags, and what every peer
// does with signals and systemd.
func SetUsage(fs *flag.FlagSet, header string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, header)
		fmt.Fprint(out, "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(out, usageTrailer)
	}
}

const usageTrailer = `
Signals:
  SIGTERM, SIGINT   stop accepting, answer every accepted request, release the
                    ports, exit 0 (requests still queued fail back to their
                    clients as not executed); a second signal exits at once
  SIGUSR1, SIGUSR2  log more / less (error, warning, info, debug, trace)
  SIGHUP            reopen --log-file (after logrotate)

systemd: Type=notify. READY=1 once the ports are bound and served, STOPPING=1
when draining, WATCHDOG=1 every WatchdogSec/2 when WatchdogSec is set.
A port owned by a live process is refused (exit 1); the port of a peer that
died is taken over, its unanswered requests failed back to their clients.
`

// Parse is a peer binary's command line: it sets usage as the --help
// header, parses args with fs (on which Define and the peer's own flags
// are defined), refuses positional arguments and checks c.
func (c *Config) Parse(fs *flag.FlagSet, args []string, usage string) error {
	SetUsage(fs, usage)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("unexpected argument %q", pos[0])
	}
	if err := c.Check(); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}
