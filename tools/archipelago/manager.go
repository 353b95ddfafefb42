package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/tools/hostconf"
	"github.com/archipelago-go/archipelago/xseg"
)

// manager runs the peers of one host.
type manager struct {
	host    *hostconf.Host
	timeout time.Duration
	out     io.Writer
}

// Peer states in status.
const (
	stateRunning  = "running"
	stateStopped  = "not running"
	stateStale    = "stale pid file"
	stateNotOwner = "pid does not own its port"
	stateForeign  = "port owned by another process"
)

type peerStatus struct {
	Role     string `json:"role"`
	Type     string `json:"type"`
	Port     string `json:"port"`
	PID      int    `json:"pid,omitempty"`
	PortPID  uint32 `json:"port_owner_pid,omitempty"`
	Alive    bool   `json:"alive"`
	State    string `json:"state"`
	LogFile  string `json:"log_file"`
	PIDFile  string `json:"pid_file"`
	Segment  bool   `json:"segment_exists"`
	Inflight int    `json:"in_flight"`
}

type statusReport struct {
	Segment string       `json:"segment"`
	Config  string       `json:"config"`
	Peers   []peerStatus `json:"peers"`
}

// readPID returns the pid a pid file holds, 0 if none.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// processAlive reports whether pid runs (a zombie counts as dead: it is
// an exited child its parent has not reaped yet).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// status reports every peer the host runs.
func (m *manager) status() ([]peerStatus, error) {
	h := m.host
	owners := map[int]xseg.PortReport{}
	segExists := false
	opts := h.Segment.Options()
	opts.NoMonitor = true
	if seg, err := xseg.Join(h.Segment.Name, opts); err == nil {
		segExists = true
		for _, p := range seg.Report(true).Ports {
			owners[p.Port] = p
		}
		seg.Leave()
	}
	var out []peerStatus
	for _, p := range h.StartOrder() {
		st := peerStatus{Role: p.Role, Type: p.Type, Port: p.PortArg(), LogFile: p.LogFile, PIDFile: p.PIDFile, Segment: segExists}
		st.PID = readPID(p.PIDFile)
		pr, bound := owners[p.Port()]
		if p.Dynamic() { // its port is whichever the pid owns
			pr, bound = ownedBy(owners, st.PID)
		}
		if bound && pr.State != "free" && pr.Alive {
			st.PortPID = pr.OwnerPID
			st.Inflight = int(pr.InFlight)
		}
		switch {
		case st.PID != 0 && processAlive(st.PID) && st.PortPID == uint32(st.PID):
			st.State, st.Alive = stateRunning, true
		case st.PID != 0 && processAlive(st.PID):
			st.State, st.Alive = stateNotOwner, true
		case st.PortPID != 0:
			st.State = stateForeign
		case st.PID != 0:
			st.State = stateStale
		default:
			st.State = stateStopped
		}
		out = append(out, st)
	}
	return out, nil
}

// ownedBy finds the port that pid owns.
func ownedBy(owners map[int]xseg.PortReport, pid int) (xseg.PortReport, bool) {
	for _, pr := range owners {
		if pid != 0 && pr.OwnerPID == uint32(pid) && pr.State != "free" {
			return pr, true
		}
	}
	return xseg.PortReport{}, false
}

func printStatus(w io.Writer, st []peerStatus) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tTYPE\tPORT\tPID\tSTATE")
	for _, s := range st {
		pid := "-"
		if s.PID != 0 {
			pid = strconv.Itoa(s.PID)
		} else if s.PortPID != 0 {
			pid = fmt.Sprint(s.PortPID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Role, s.Type, s.Port, pid, s.State)
	}
	tw.Flush()
}

// binary finds a peer binary beside this one, else in $PATH.
func binary(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("peer binary %q: not beside archipelago nor in $PATH (make build puts it in bin/)", name)
	}
	return p, nil
}

// start creates the segment if missing and starts every peer in order.
func (m *manager) start() error {
	h := m.host
	st, err := m.status()
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Alive || s.PortPID != 0 {
			return fmt.Errorf("%s is already running (pid %d): archipelago stop first, or archipelago status", s.Role, max(s.PID, int(s.PortPID)))
		}
	}
	for _, dir := range []string{h.RunDir, h.LogDir, h.Segment.Dir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
	}
	peers := h.StartOrder()
	bins := map[string]string{}
	for _, p := range peers {
		if bins[p.Binary()], err = binary(p.Binary()); err != nil {
			return err
		}
		if p.DataDir != "" {
			if err := os.MkdirAll(p.DataDir, 0o750); err != nil {
				return fmt.Errorf("[%s] data directory: %w", p.Role, err)
			}
		}
		if p.LockDir != "" {
			if err := os.MkdirAll(p.LockDir, 0o750); err != nil {
				return fmt.Errorf("[%s] lock directory: %w", p.Role, err)
			}
		}
		for _, f := range []string{p.LogFile, p.PIDFile} {
			if err := os.MkdirAll(filepath.Dir(f), 0o750); err != nil {
				return err
			}
		}
	}
	created := false
	switch err := xseg.Create(h.Segment.Name, h.Segment.Geometry, h.Segment.Options()); {
	case err == nil:
		created = true
		fmt.Fprintf(m.out, "segment %s created in %s\n", h.Segment.Name, h.Segment.Dir)
	case errors.Is(err, xseg.ErrExists):
		fmt.Fprintf(m.out, "segment %s exists in %s: reused\n", h.Segment.Name, h.Segment.Dir)
	default:
		return fmt.Errorf("create segment %q: %w", h.Segment.Name, err)
	}
	var started []hostconf.Peer
	for _, p := range peers {
		pid, err := m.startPeer(bins[p.Binary()], p)
		if err != nil {
			for i := len(started) - 1; i >= 0; i-- {
				m.stopPeer(started[i])
			}
			if created {
				xseg.Destroy(h.Segment.Name, h.Segment.Options())
			}
			return err
		}
		started = append(started, p)
		fmt.Fprintf(m.out, "%s started: %s port %s, pid %d\n", p.Role, p.Binary(), p.PortArg(), pid)
	}
	return nil
}

// startPeer runs one peer detached (its own session, output to its log)
// and waits for its READY=1.
func (m *manager) startPeer(bin string, p hostconf.Peer) (int, error) {
	sockDir, err := os.MkdirTemp("", "archipelago-notify")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(sockDir)
	sockPath := filepath.Join(sockDir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		return 0, err
	}
	defer sock.Close()
	logf, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return 0, fmt.Errorf("[%s] log file: %w", p.Role, err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(bin, m.host.Args(p)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startOn(cmd, p.CPUs); err != nil {
		return 0, fmt.Errorf("[%s] start %s: %w", p.Role, bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := peers.WatchReady(sock)
	fail := func(what string) (int, error) {
		return 0, fmt.Errorf("%s (%s, pid %d) %s; last lines of %s:\n%s", p.Role, p.Binary(), cmd.Process.Pid, what, p.LogFile, logTail(p.LogFile, logStart, 15))
	}
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			return 0, err
		}
		return cmd.Process.Pid, nil
	case err := <-exited:
		return fail(fmt.Sprintf("exited before it was ready (%v)", err))
	case <-time.After(m.timeout):
		cmd.Process.Kill()
		<-exited
		return fail(fmt.Sprintf("was not ready within %v: killed", m.timeout))
	}
}

// startOn starts cmd allowed to run on cpus only (every CPU when empty).
// The child inherits the affinity of the thread that forks it, before it
// runs anything: this thread is pinned for the fork, then set back.
func startOn(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("read this thread's CPUs: %w", err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("cpus %v: %w (none of them online or allowed here?)", cpus, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = fmt.Errorf("set this thread's CPUs back: %w", rerr)
	}
	return err
}

// logTail returns the last n lines written to path from offset on.
func logTail(path string, from int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	if from >= 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stop stops the peers in reverse order and destroys the segment.
func (m *manager) stop() error {
	h := m.host
	peers := h.StartOrder()
	var errs []error
	for i := len(peers) - 1; i >= 0; i-- {
		if err := m.stopPeer(peers[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	switch err := xseg.Destroy(h.Segment.Name, h.Segment.Options()); {
	case err == nil:
		fmt.Fprintf(m.out, "segment %s destroyed\n", h.Segment.Name)
	case errors.Is(err, xseg.ErrNotFound):
	default:
		return fmt.Errorf("destroy segment %q: %w", h.Segment.Name, err)
	}
	return nil
}

// stopPeer sends SIGTERM to the peer (the pid of its pid file, else its
// port's owner) and waits for it to exit; SIGKILL after the timeout.
func (m *manager) stopPeer(p hostconf.Peer) error {
	pid := readPID(p.PIDFile)
	if !processAlive(pid) {
		pid = 0
		opts := m.host.Segment.Options()
		opts.NoMonitor = true
		if seg, err := xseg.Join(m.host.Segment.Name, opts); err == nil {
			for _, r := range seg.Report(true).Ports {
				if r.Port == p.Port() && r.State != "free" && r.Alive {
					pid = int(r.OwnerPID)
				}
			}
			seg.Leave()
		}
	}
	if pid == 0 {
		fmt.Fprintf(m.out, "%s: not running\n", p.Role)
		os.Remove(p.PIDFile)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s (pid %d): %w", p.Role, pid, err)
	}
	deadline := time.Now().Add(m.timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			fmt.Fprintf(m.out, "%s (pid %d): no exit %v after SIGTERM: killed\n", p.Role, pid, m.timeout)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(m.out, "%s stopped (pid %d)\n", p.Role, pid)
	return nil
}
