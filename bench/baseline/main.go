// Command ipc-baseline measures the IPC baselines that the benchmark reports
// beside `xseg-bench ipc` (the XSEG request path between a client process
// and a null peer):
//
//   - unix: requests over a unix stream socket to a child process, the way a
//     socket-based peer protocol would carry them: a 32-byte header plus the
//     payload, answered by a 32-byte reply header.
//   - ring: request indices through two xseg/ring rings in a shared-memory
//     file, to a child that spins on them: the ceiling any XSEG transport
//     built on those rings can reach.
//
// Each run keeps --iodepth requests in flight (a closed loop), and reports
// round trips per second and submit-to-reply latency percentiles.
//
// Usage:
//
//	ipc-baseline unix --iodepth 16 --size 4096 --duration 3s [--json]
//	ipc-baseline ring --iodepth 16 --duration 3s [--json]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/archipelago-go/archipelago/bench/latency"
)

const usageText = `Usage: ipc-baseline <mode> [flags]

Measures the IPC baselines reported beside 'xseg-bench ipc'. Each mode
starts a copy of this program as a null server, keeps --iodepth requests in
flight against it, and prints round trips per second and the p50, p99 and
p99.9 submit-to-reply latency.

Modes:
  unix   requests over a unix stream socket: each a 32-byte header and
         --size payload bytes, answered by a 32-byte reply header
  ring   request indices over two xseg/ring rings in a shared-memory file
         in /dev/shm, both sides busy-polling: the ceiling for XSEG

Run 'ipc-baseline <mode> --help' for the flags of a mode.
`

// config is what one run measures, from the command line.
type config struct {
	mode      string
	iodepth   int
	sizeBytes int
	duration  time.Duration
	warmup    time.Duration
	// sampleEvery is N in "time 1 in N requests"; see sampler.
	sampleEvery int
	json        bool
}

const (
	maxIODepth   = 1 << 16
	maxSizeBytes = 64 << 20
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit status.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usageText)
		return 2
	}
	switch mode := args[0]; mode {
	case "-h", "-help", "--help", "help":
		fmt.Print(usageText)
		return 0
	case unixServeCommand:
		return exitOn(serveUnixMain(args[1:]))
	case ringServeCommand:
		return exitOn(serveRingMain(args[1:]))
	case "unix", "ring":
		cfg, err := parseFlags(mode, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipc-baseline %s: %v (see 'ipc-baseline %s --help')\n", mode, err, mode)
			return 2
		}
		return exitOn(measure(cfg))
	default:
		fmt.Fprintf(os.Stderr, "ipc-baseline: unknown mode %q: use unix or ring (see 'ipc-baseline --help')\n", mode)
		return 2
	}
}

func exitOn(err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipc-baseline: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(mode string, args []string) (config, error) {
	cfg := config{mode: mode}
	fs := flag.NewFlagSet("ipc-baseline "+mode, flag.ContinueOnError)
	// Errors are reported by the caller on one line; --help prints in full.
	fs.SetOutput(io.Discard)
	fs.IntVar(&cfg.iodepth, "iodepth", 16,
		"requests kept in flight: a new one is submitted as soon as a reply arrives")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second,
		"how long to measure, after the warm-up")
	fs.DurationVar(&cfg.warmup, "warmup", 250*time.Millisecond,
		"how long to run before measuring, so that caches, buffers and the scheduler settle")
	fs.BoolVar(&cfg.json, "json", false,
		`print one JSON object {"mode","iodepth","size","duration_s","ops","ops_per_sec","p50_us","p99_us","p999_us"} instead of text`)
	defaultSample := 1
	if mode == "unix" {
		fs.IntVar(&cfg.sizeBytes, "size", 4096,
			"payload bytes per request, sent after the 32-byte header like the data of an XSEG WRITE (0: header only)")
	} else {
		// Here a round trip takes a few hundred nanoseconds and reading the
		// clock tens, so timing every request would slow what we measure.
		defaultSample = 16
	}
	fs.IntVar(&cfg.sampleEvery, "sample", defaultSample,
		"time the latency of 1 in N requests (a clock read costs tens of ns; throughput always counts every request)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Printf("Usage: ipc-baseline %s [flags]\n\nFlags:\n", mode)
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.iodepth < 1 || cfg.iodepth > maxIODepth:
		return cfg, fmt.Errorf("--iodepth %d: must be between 1 and %d", cfg.iodepth, maxIODepth)
	case cfg.sizeBytes < 0 || cfg.sizeBytes > maxSizeBytes:
		return cfg, fmt.Errorf("--size %d: must be between 0 and %d", cfg.sizeBytes, maxSizeBytes)
	case cfg.duration <= 0:
		return cfg, fmt.Errorf("--duration %v: must be positive", cfg.duration)
	case cfg.warmup < 0:
		return cfg, fmt.Errorf("--warmup %v: must not be negative", cfg.warmup)
	case cfg.sampleEvery < 1:
		return cfg, fmt.Errorf("--sample %d: must be at least 1", cfg.sampleEvery)
	}
	return cfg, nil
}

// measure runs one benchmark and prints its result.
func measure(cfg config) error {
	if err := checkPlatform(); err != nil {
		return err
	}
	var cl cleaner
	stopSignals := cl.onSignal()
	defer stopSignals()
	defer cl.run() // before stopSignals, so that no signal finds it half done

	var res latency.Result
	var err error
	switch cfg.mode {
	case "unix":
		res, err = runUnix(cfg, &cl)
	case "ring":
		res, err = runRing(cfg, &cl)
	}
	if err != nil {
		if cl.interrupted.Load() {
			// The failure is the signal handler stopping the server; it
			// is exiting the process with the signal's status.
			select {}
		}
		return fmt.Errorf("%s: %w", cfg.mode, err)
	}
	if cfg.json {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Println(res.Text())
	return nil
}

// cleaner holds what a run must undo however it ends: the child process,
// the socket directory, the shared-memory file. It runs on return and on
// SIGINT or SIGTERM, whichever comes first, and runs each step once.
type cleaner struct {
	mu    sync.Mutex
	steps []func()
	// interrupted is set by the signal handler before it cleans up.
	interrupted atomic.Bool
}

// add registers a step; steps run in reverse order of registration.
func (c *cleaner) add(step func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, step)
}

func (c *cleaner) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.steps) - 1; i >= 0; i-- {
		c.steps[i]()
	}
	c.steps = nil
}

// onSignal makes SIGINT and SIGTERM clean up and exit with status 130 (for
// SIGINT) or 143. The returned function stops watching.
func (c *cleaner) onSignal() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			c.interrupted.Store(true)
			c.run()
			fmt.Fprintf(os.Stderr, "ipc-baseline: %v: stopped, server and temporary files removed\n", sig)
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
