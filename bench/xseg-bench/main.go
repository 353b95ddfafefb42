// Command xseg-bench measures XSEG and, through it, the peers: a null peer
// to measure against, and closed-loop load generators that print
// requests/s and latency percentiles, as text or JSON.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/bench/latency"
	"github.com/archipelago-go/archipelago/peers/null"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: xseg-bench MODE [flags]

Modes:
  serve   run the null peer on a port until SIGTERM or SIGINT: it answers
          every request at once, so the load modes measure XSEG itself
  ipc     closed loop against a port: keep --iodepth requests in flight,
          resubmit each as its reply arrives, report requests/s and latency
  object  closed loop of object READs or WRITEs against a blocker port (filed,
          radosd): sequential or random, request and object size, iodepth,
          optional data verification; reports MiB/s besides requests/s
  volume  the object mode against a volume through vlmcd: --port of vlmcd,
          --name VOLUME; the volume's size comes from INFO

Run "xseg-bench MODE --help" for the flags of a mode.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch mode, args := os.Args[1], os.Args[2:]; mode {
	case "serve":
		err = serve(args)
	case "ipc":
		err = ipc(args)
	case "object":
		err = object(args, false)
	case "volume":
		err = object(args, true)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		err = cli.Usagef("unknown mode %q (try xseg-bench --help)", mode)
	}
	if err != nil {
		cli.Fatal("xseg-bench", err)
	}
}

// target is where a mode finds its segment and port.
type target struct {
	segment string
	dir     string
	port    int
}

func (t *target) define(fs *flag.FlagSet, portHelp string) {
	fs.StringVar(&t.segment, "segment", "archipelago", "segment name")
	fs.StringVar(&t.dir, "dir", xseg.DefaultDir, "directory that holds segments")
	fs.IntVar(&t.port, "port", 0, portHelp)
}

// join joins the target's segment and binds a client port there.
func (t *target) join() (*xseg.Segment, *xseg.Port, error) {
	s, err := xseg.Join(t.segment, xseg.Options{Dir: t.dir})
	if err != nil {
		return nil, nil, err
	}
	port, err := s.BindDynamic()
	if err != nil {
		s.Leave()
		return nil, nil, err
	}
	return s, port, nil
}

func parse(fs *flag.FlagSet, args []string) error {
	pos, err := cli.Parse(fs, args)
	if err == nil && len(pos) > 0 {
		err = cli.Usagef("unexpected argument %q", pos[0])
	}
	return err
}

func serve(args []string) error {
	var t target
	var create bool
	fs := flag.NewFlagSet("xseg-bench serve", flag.ContinueOnError)
	t.define(fs, "static port to serve")
	fs.BoolVar(&create, "create", false, "create the segment with default geometry if it does not exist")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts := xseg.Options{Dir: t.dir}
	s, err := xseg.Join(t.segment, opts)
	if errors.Is(err, xseg.ErrNotFound) && create {
		if err = xseg.Create(t.segment, xseg.Geometry{}, opts); err == nil || errors.Is(err, xseg.ErrExists) {
			s, err = xseg.Join(t.segment, opts)
		}
	}
	if err != nil {
		return err
	}
	defer s.Leave()
	p, err := s.Bind(t.port)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; p.Interrupt() }()
	fmt.Fprintf(os.Stderr, "null peer serving port %d of segment %s (pid %d)\n", t.port, t.segment, os.Getpid())
	null.Serve(p)
	return nil
}

// loadConfig is what a closed-loop mode measures.
type loadConfig struct {
	target
	iodepth     int
	size        cli.SizeFlag
	duration    time.Duration
	warmup      time.Duration
	sampleEvery int
	json        bool
}

func (c *loadConfig) define(fs *flag.FlagSet) {
	c.target.define(fs, "port to send requests to")
	fs.IntVar(&c.iodepth, "iodepth", 16, "requests kept in flight")
	fs.Var(&c.size, "size", "data bytes per request (K/M suffixes); 0 sends PING")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "how long to measure, after the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 250*time.Millisecond, "how long to run before measuring")
	fs.IntVar(&c.sampleEvery, "sample", 1, "time the latency of 1 in N requests (throughput counts all)")
	fs.BoolVar(&c.json, "json", false, `print one JSON object {"mode","iodepth","size","ops_per_sec","p50_us","p99_us","p999_us",...}`)
}

func (c *loadConfig) check() error {
	switch {
	case c.iodepth < 1:
		return cli.Usagef("--iodepth %d: must be at least 1", c.iodepth)
	case c.duration <= 0:
		return cli.Usagef("--duration %v: must be positive", c.duration)
	case c.sampleEvery < 1:
		return cli.Usagef("--sample %d: must be at least 1", c.sampleEvery)
	}
	return nil
}

func ipc(args []string) error {
	var c loadConfig
	fs := flag.NewFlagSet("xseg-bench ipc", flag.ContinueOnError)
	c.define(fs)
	// A round trip takes a few hundred ns and a clock read tens here:
	// timing every one would slow what is measured. The ring baseline
	// samples the same way.
	c.sampleEvery = 16
	fs.Lookup("sample").DefValue = "16"
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	s, port, err := c.join()
	if err != nil {
		return err
	}
	defer s.Leave()
	res, err := runIPC(port, c)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(res)
	}
	fmt.Println(res.Text())
	return nil
}

// runIPC keeps c.iodepth PINGs (or WRITEs of --size bytes to a null peer)
// in flight against c.port.
func runIPC(port *xseg.Port, c loadConfig) (latency.Result, error) {
	op := xseg.OpPing
	if c.size.Bytes > 0 {
		op = xseg.OpWrite
	}
	l := closedLoop{
		port: port, dst: c.port, iodepth: c.iodepth,
		meter:  latency.NewMeter(c.warmup, c.duration),
		sample: latency.NewSampler(c.sampleEvery),
		fill: func(r xseg.Request, first bool) error {
			if !first {
				return nil
			}
			r.SetSize(c.size.Bytes)
			return r.Prepare(op, "xseg-bench", c.size.Bytes)
		},
	}
	st, err := l.run()
	if err != nil {
		return latency.Result{}, err
	}
	res := l.meter.Result("ipc", c.iodepth, int(c.size.Bytes), c.sampleEvery)
	res.Errors = st.errors
	if st.firstErr != nil && res.Ops == 0 {
		return res, fmt.Errorf("port %d: %w", c.port, st.firstErr)
	}
	return res, nil
}
