package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/bench/latency"
)

// mainEnv makes the test binary behave as ipc-baseline, so that tests can
// run it as a separate process and kill it.
const mainEnv = "IPC_BASELINE_TEST_MAIN"

// TestMain lets the test binary stand in for ipc-baseline: runs re-exec
// os.Executable() to start their server, which here is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Getenv(mainEnv) == "1" ||
		os.Args[1] == unixServeCommand || os.Args[1] == ringServeCommand) {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func shortRun(mode string, iodepth, sizeBytes int) config {
	return config{
		mode: mode, iodepth: iodepth, sizeBytes: sizeBytes,
		duration: 200 * time.Millisecond, warmup: 20 * time.Millisecond, sampleEvery: 1,
	}
}

func checkResult(t *testing.T, cfg config, res latency.Result) {
	t.Helper()
	if res.Ops == 0 || res.OpsPerSec <= 0 {
		t.Fatalf("no round trips: %+v", res)
	}
	if res.DurationSeconds < cfg.duration.Seconds() {
		t.Errorf("measured %.3fs, asked for %v", res.DurationSeconds, cfg.duration)
	}
	if !(0 < res.P50Micros && res.P50Micros <= res.P99Micros && res.P99Micros <= res.P999Micros) {
		t.Errorf("percentiles out of order: p50 %v p99 %v p99.9 %v", res.P50Micros, res.P99Micros, res.P999Micros)
	}
	if want := res.Ops / uint64(cfg.sampleEvery); res.Samples+uint64(cfg.iodepth) < want/2 {
		t.Errorf("%d latencies timed for %d round trips at 1 in %d", res.Samples, res.Ops, cfg.sampleEvery)
	}
	if res.Mode != cfg.mode || res.IODepth != cfg.iodepth || res.SizeBytes != cfg.sizeBytes {
		t.Errorf("result %+v does not describe config %+v", res, cfg)
	}
}

func TestUnix(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, tc := range []struct{ iodepth, sizeBytes int }{
		{1, 0}, {1, 4096}, {8, 0}, {8, 4096}, {3, 3 << 20}, // a payload larger than the buffers
	} {
		cfg := shortRun("unix", tc.iodepth, tc.sizeBytes)
		var cl cleaner
		res, err := runUnix(cfg, &cl)
		cl.run()
		if err != nil {
			t.Fatalf("iodepth %d size %d: %v", tc.iodepth, tc.sizeBytes, err)
		}
		checkResult(t, cfg, res)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left behind in TMPDIR: %v", left)
	}
}

func TestRing(t *testing.T) {
	before := shmFiles(t)
	for _, tc := range []struct{ iodepth, sample int }{{1, 1}, {3, 16}, {64, 16}} {
		cfg := shortRun("ring", tc.iodepth, 0)
		cfg.sampleEvery = tc.sample
		var cl cleaner
		res, err := runRing(cfg, &cl)
		cl.run()
		if err != nil {
			t.Fatalf("iodepth %d: %v", tc.iodepth, err)
		}
		checkResult(t, cfg, res)
	}
	if left := newShmFiles(t, before); len(left) > 0 {
		t.Errorf("left behind in %s: %v", shmDir, left)
	}
}

func TestRingCapacity(t *testing.T) {
	for iodepth, want := range map[int]int{1: 2, 2: 2, 3: 4, 16: 16, 17: 32, 1 << 16: 1 << 16} {
		if got := ringCapacity(iodepth); got != want {
			t.Errorf("ringCapacity(%d) = %d, want %d", iodepth, got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags("unix", []string{"--iodepth", "128", "--size", "0", "--duration", "1s", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.iodepth != 128 || cfg.sizeBytes != 0 || cfg.duration != time.Second || !cfg.json || cfg.sampleEvery != 1 {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg, _ := parseFlags("ring", nil); cfg.sampleEvery != 16 || cfg.sizeBytes != 0 {
		t.Errorf("ring defaults: %+v", cfg)
	}
	for _, args := range [][]string{
		{"--iodepth", "0"}, {"--iodepth", "70000"}, {"--size", "-1"}, {"--duration", "0s"},
		{"--sample", "0"}, {"extra"}, {"--nope"},
	} {
		if _, err := parseFlags("unix", args); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
	if _, err := parseFlags("ring", []string{"--size", "4096"}); err == nil {
		t.Error("ring accepted --size")
	}
	stdout := os.Stdout
	os.Stdout, _ = os.Open(os.DevNull)
	_, err = parseFlags("ring", []string{"--help"})
	os.Stdout = stdout
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
}

// TestServerDiesWithClient runs ipc-baseline as its own process, stops it
// mid-run, and checks that its server is gone and no file is left: on
// SIGINT through its own cleanup, on SIGKILL through Pdeathsig and by
// having removed the files' names early.
func TestServerDiesWithClient(t *testing.T) {
	for _, mode := range []string{"unix", "ring"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
			t.Run(mode+"/"+sig.String(), func(t *testing.T) {
				tmp := t.TempDir()
				before := shmFiles(t)
				cmd := exec.Command(os.Args[0], mode, "--duration", "1m", "--iodepth", "4")
				cmd.Env = append(os.Environ(), mainEnv+"=1", "TMPDIR="+tmp)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				server := waitForChild(t, cmd.Process.Pid)
				time.Sleep(200 * time.Millisecond) // past connect and attach
				if mode == "ring" {
					// The file exists before the server starts; the client
					// removes its name once the server runs. A SIGKILL in
					// between (possible on a loaded machine) leaves it
					// behind: wait for the removal.
					for deadline := time.Now().Add(10 * time.Second); len(newShmFiles(t, before)) > 0 && time.Now().Before(deadline); {
						time.Sleep(10 * time.Millisecond)
					}
				}
				cmd.Process.Signal(sig)
				err := cmd.Wait()
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("client exit: %v", err)
				}
				if sig == syscall.SIGINT && exit.ExitCode() != 130 {
					t.Errorf("client exit after SIGINT: %v, want status 130; stderr: %s", err, stderr.String())
				}
				waitForExit(t, server)
				if left, _ := os.ReadDir(tmp); len(left) > 0 {
					t.Errorf("left behind in TMPDIR: %v", left)
				}
				if left := newShmFiles(t, before); len(left) > 0 {
					t.Errorf("left behind in %s: %v", shmDir, left)
				}
			})
		}
	}
}

func shmFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(shmDir, "ipc-baseline-*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func newShmFiles(t *testing.T, before []string) []string {
	var added []string
	for _, name := range shmFiles(t) {
		if !slices.Contains(before, name) {
			added = append(added, name)
		}
	}
	return added
}

// waitForChild returns the pid of a child process of parent.
func waitForChild(t *testing.T, parent int) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if ppid, state := procStat(pid); ppid == parent && state != "Z" {
				return pid
			}
		}
	}
	t.Fatalf("process %d started no server", parent)
	return 0
}

// waitForExit waits until pid is gone or a zombie (an init that does not
// reap, as in some containers, leaves zombies behind).
func waitForExit(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, state := procStat(pid); state == "" || state == "Z" {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("server %d outlived its client", pid)
}

// procStat returns the parent pid and state letter of pid, or 0 and "" if
// there is no such process.
func procStat(pid int) (ppid int, state string) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ""
	}
	// The command name may hold spaces; the fields after it do not.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0]
}
