package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/xseg"
)

// Peer is a running peer process: its log, its bound ports, its signal
// handling and its systemd notifications. Start makes one, Serve runs it
// until SIGTERM or SIGINT (or Stop), Close releases everything.
type Peer struct {
	cfg    Config
	log    *logrus.Entry
	output *logOutput
	seg    *xseg.Segment
	ports  []*xseg.Port
	notify *Notifier

	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	signals  chan os.Signal
	quit     chan struct{} // ends the signal goroutine
	pidFile  string        // written by us, removed at Close
	started  bool          // Start succeeded: Close logs the stop
}

// Run is a peer's main: Start, then setup (which builds the handler once
// the ports are bound; a handler that is an io.Closer is closed after the
// drain), then Serve until SIGTERM or SIGINT, then Close. It returns nil
// after a clean drain, so the process exits 0.
func Run(cfg Config, setup func(*Peer) (Handler, error)) error {
	p, err := Start(cfg)
	if err != nil {
		return err
	}
	h, err := setup(p)
	if err != nil {
		p.log.WithError(err).Error("setup failed")
		return errors.Join(err, p.Close())
	}
	err = p.Serve(h)
	return errors.Join(err, p.Close())
}

// Loop is a peer that runs its own event loop on its ports instead of a
// Handler: one that also receives, on the same port, the replies to
// requests it sends on (vlmcd). It serves until ctx ends, then answers
// every request it accepted and returns. Waking its waits when ctx ends
// (xseg.Port.Interrupt) is its own business, since it may still need to
// wait for replies while it drains.
type Loop func(ctx context.Context, ports []*xseg.Port)

// RunLoop is Run for a peer with its own event loop.
func RunLoop(cfg Config, setup func(*Peer) (Loop, error)) error {
	p, err := Start(cfg)
	if err != nil {
		return err
	}
	loop, err := setup(p)
	if err != nil {
		p.log.WithError(err).Error("setup failed")
		return errors.Join(err, p.Close())
	}
	p.run(func(ctx context.Context) { loop(ctx, p.ports) })
	return p.Close()
}

// Start sets up logging and signal handling, joins the segment, binds the
// ports (a port of a dead process is taken over; one a live process owns
// fails with an error wrapping xseg.ErrPortBusy) and writes the pid file.
// From here on SIGTERM and SIGINT stop the peer instead of killing it.
func Start(cfg Config) (*Peer, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(os.Args[0])
	}
	logger, output, err := newLogger(cfg.LogFile, logrus.Level(cfg.LogLevel))
	if err != nil {
		return nil, err
	}
	p := &Peer{
		cfg:     cfg,
		log:     logger.WithField("peer", cfg.Name),
		output:  output,
		notify:  NewNotifier(),
		signals: make(chan os.Signal, 4),
		quit:    make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	signal.Notify(p.signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	go p.handleSignals()
	if err := p.bind(); err != nil {
		return nil, p.startFailed(err)
	}
	if cfg.PIDFile != "" {
		if err := writePIDFile(cfg.PIDFile); err != nil {
			return nil, p.startFailed(err)
		}
		p.pidFile = cfg.PIDFile
	}
	p.started = true
	p.log.WithFields(logrus.Fields{"segment": cfg.Segment, "port": cfg.Ports.String(), "pid": os.Getpid()}).Info("bound")
	return p, nil
}

// startFailed undoes a partial start. The error goes to the log file, if
// any; the caller prints it (on stderr it would show twice).
func (p *Peer) startFailed(err error) error {
	if p.cfg.LogFile != "" {
		p.log.WithError(err).Error("start failed")
	}
	return errors.Join(err, p.Close())
}

func (p *Peer) bind() error {
	s, err := xseg.Join(p.cfg.Segment, xseg.Options{Dir: p.cfg.SegmentDir})
	if errors.Is(err, xseg.ErrNotFound) {
		return fmt.Errorf("segment %q not found in %s: create it with: xseg create %s", p.cfg.Segment, p.cfg.SegmentDir, p.cfg.Segment)
	}
	if err != nil {
		return fmt.Errorf("join segment %q: %w", p.cfg.Segment, err)
	}
	p.seg = s
	if p.cfg.Dynamic {
		port, err := s.BindDynamic()
		if err != nil {
			return fmt.Errorf("segment %q: %w", p.cfg.Segment, err)
		}
		p.ports = append(p.ports, port)
		p.cfg.Ports = PortRange{port.Number()}
		return nil
	}
	for _, n := range p.cfg.Ports {
		port, err := s.Bind(n)
		if errors.Is(err, xseg.ErrPortBusy) {
			return fmt.Errorf("segment %q: %w; stop that process or choose another --port", p.cfg.Segment, err)
		}
		if err != nil {
			return fmt.Errorf("segment %q: %w", p.cfg.Segment, err)
		}
		p.ports = append(p.ports, port)
	}
	return nil
}

// Log returns the peer's logger, with the field peer set.
func (p *Peer) Log() *logrus.Entry { return p.log }

// Ports returns the bound ports.
func (p *Peer) Ports() []*xseg.Port { return p.ports }

// Config returns the configuration the peer started with.
func (p *Peer) Config() Config { return p.cfg }

// Context ends when the peer is told to stop; setup code that may wait
// long (connecting to a cluster) should give up then.
func (p *Peer) Context() context.Context { return p.ctx }

// Serve tells systemd the peer is ready, serves the ports with h until
// Stop (SIGTERM, SIGINT), then drains: every accepted request is answered
// before it returns. A handler that is an io.Closer is closed after the
// drain.
func (p *Peer) Serve(h Handler) error {
	srv := &Server{Handler: h, Inflight: p.cfg.Inflight, Log: p.log}
	p.run(func(ctx context.Context) { srv.Serve(ctx, p.ports...) })
	if c, ok := h.(io.Closer); ok {
		if err := c.Close(); err != nil {
			p.log.WithError(err).Error("close handler")
			return fmt.Errorf("close handler: %w", err)
		}
	}
	return nil
}

// run tells systemd the peer is ready, runs serve until it returns (after
// Stop and the drain), and keeps the watchdog fed meanwhile.
func (p *Peer) run(serve func(ctx context.Context)) {
	status := fmt.Sprintf("serving port %s of segment %s", p.cfg.Ports, p.cfg.Segment)
	if p.ctx.Err() == nil {
		p.sendNotify(fmt.Sprintf("READY=1\nSTATUS=%s\nMAINPID=%d", status, os.Getpid()))
	}
	if every := WatchdogInterval(); every > 0 && p.notify.Enabled() {
		stopWatchdog := p.watchdog(every)
		defer stopWatchdog()
	}
	p.log.WithField("inflight", p.cfg.Inflight).Info(status)
	started := time.Now()
	serve(p.ctx)
	p.log.WithField("uptime", time.Since(started).Round(time.Millisecond).String()).Info("drained: every accepted request answered")
}

// Stop makes Serve stop accepting, drain and return; what SIGTERM does.
func (p *Peer) Stop(reason string) {
	p.stopOnce.Do(func() {
		p.log.WithField("reason", reason).Info("draining")
		p.sendNotify("STOPPING=1")
		p.cancel()
	})
}

// Close releases the ports (requests queued and not accepted fail back
// with xseg.ErrPeerDied), leaves the segment, removes the pid file and
// stops signal handling.
func (p *Peer) Close() error {
	p.cancel()
	var errs []error
	for _, port := range p.ports {
		errs = append(errs, port.Release())
	}
	p.ports = nil
	if p.seg != nil {
		errs = append(errs, p.seg.Leave())
		p.seg = nil
	}
	if p.pidFile != "" {
		errs = append(errs, removePIDFile(p.pidFile))
		p.pidFile = ""
	}
	signal.Stop(p.signals)
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.notify.Close()
	err := errors.Join(errs...)
	switch {
	case err != nil:
		p.log.WithError(err).Error("stopped with errors")
	case p.started:
		p.log.Info("stopped")
	}
	p.output.close()
	return err
}

func (p *Peer) sendNotify(state string) {
	if err := p.notify.Notify(state); err != nil {
		p.log.WithError(err).WithField("state", strings.ReplaceAll(state, "\n", " ")).Warn("systemd notification not sent")
	}
}

// watchdog sends WATCHDOG=1 every interval until the returned function
// is called.
func (p *Peer) watchdog(every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.sendNotify("WATCHDOG=1")
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (p *Peer) handleSignals() {
	for {
		select {
		case <-p.quit:
			return
		case sig := <-p.signals:
			name := unix.SignalName(sig.(syscall.Signal))
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT:
				if p.ctx.Err() != nil {
					p.log.WithField("signal", name).Error("second signal while draining: exiting at once")
					os.Exit(1)
				}
				p.Stop(name)
			case syscall.SIGUSR1, syscall.SIGUSR2:
				logger := p.log.Logger
				level := stepLevel(logger.GetLevel(), sig == syscall.SIGUSR1)
				logger.SetLevel(level)
				// Logged at the new level itself, so it always shows.
				p.log.WithField("signal", name).Logf(level, "log level now %s", level)
			case syscall.SIGHUP:
				if p.cfg.LogFile == "" {
					p.log.WithField("signal", name).Debug("no --log-file to reopen")
				} else if err := p.output.reopen(); err != nil {
					p.log.WithError(err).Error("reopen log file")
				} else {
					p.log.WithField("file", p.cfg.LogFile).Info("log file reopened")
				}
			}
		}
	}
}

// writePIDFile writes the process id to path, replacing it atomically.
func writePIDFile(path string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// removePIDFile removes path if it still holds this process's id.
func removePIDFile(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove pid file: %w", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		return nil // another process's now
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pid file: %w", err)
	}
	return nil
}
