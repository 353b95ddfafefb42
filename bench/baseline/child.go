package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Hidden subcommands: the server side of each mode, run in a child process.
const (
	unixServeCommand = "unix-serve"
	ringServeCommand = "ring-serve"
)

// The child finds what the parent hands it at fixed descriptors.
const (
	readyFD = 3 // pipe: the child writes one byte once it serves, then closes it
	firstFD = 4 // then the files passed to startChild, in order
)

const (
	readyTimeout = 10 * time.Second
	exitTimeout  = 5 * time.Second
)

// child is a server process: a re-exec of this binary running a hidden
// serve subcommand. It is killed when this process dies, however it dies.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // the Wait result, valid once exited is closed
}

// startChild starts this binary with args, hands it files from descriptor
// 4 on, and waits until the child reports that it serves.
func startChild(args []string, files ...*os.File) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the server: %w", err)
	}
	readyRead, readyWrite, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create server ready pipe: %w", err)
	}
	defer readyRead.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr // stdout stays clean for --json
	cmd.ExtraFiles = append([]*os.File{readyWrite}, files...)
	cmd.SysProcAttr = childProcAttr()
	err = cmd.Start()
	readyWrite.Close() // the child's copy is the only one left: EOF if it dies
	if err != nil {
		return nil, fmt.Errorf("start server %q: %w", exe, err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()

	if err := readyRead.SetReadDeadline(time.Now().Add(readyTimeout)); err != nil {
		c.kill()
		return nil, fmt.Errorf("wait for server: %w", err)
	}
	var b [1]byte
	if _, err := readyRead.Read(b[:]); err != nil {
		c.kill()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("server did not start within %v", readyTimeout)
		}
		return nil, fmt.Errorf("server exited before serving: %v", c.err)
	}
	return c, nil
}

// alive reports whether the child is still running.
func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// wait waits for the child to exit by itself and kills it if it has not
// within exitTimeout. It returns the child's error if it failed on its own.
func (c *child) wait() error {
	select {
	case <-c.exited:
		if c.err != nil {
			return fmt.Errorf("server: %w", c.err)
		}
		return nil
	case <-time.After(exitTimeout):
		c.kill()
		return fmt.Errorf("server did not exit within %v of the end of the run; killed", exitTimeout)
	}
}

// kill stops the child and waits until it is gone. It is safe to call more
// than once and after the child has exited.
func (c *child) kill() {
	if c.alive() {
		_ = c.cmd.Process.Kill()
	}
	<-c.exited
}

// inheritedFile returns the file the parent handed this child at fd, after
// checking that it is of the expected type (os.ModeNamedPipe for a pipe, 0
// for a regular file): a serve subcommand started by hand must not write
// into whatever the shell left open there.
func inheritedFile(fd uintptr, name string, fileType os.FileMode) (*os.File, error) {
	f := os.NewFile(fd, name)
	if f == nil {
		return nil, errNotStartedByParent
	}
	if info, err := f.Stat(); err != nil || info.Mode().Type() != fileType {
		return nil, errNotStartedByParent
	}
	return f, nil
}

var errNotStartedByParent = errors.New("missing descriptors from the client: serve subcommands are started by 'ipc-baseline unix' and 'ipc-baseline ring', not by hand")

// serverReady tells the parent that the child serves.
func serverReady(ready *os.File) error {
	defer ready.Close()
	if _, err := ready.Write([]byte{1}); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	return nil
}
