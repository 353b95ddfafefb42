package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

// chunk is the unit of import and export: the default block size, so a
// chunk touches one object of a default volume.
const chunk = 4 << 20

type commands struct {
	v *volumes
	o *options
}

// result is what a command prints: a line for people, the fields for --json.
type result struct {
	Op       string `json:"op"`
	Volume   string `json:"volume"`
	Snapshot string `json:"snapshot,omitempty"`
	NewName  string `json:"new_name,omitempty"`
	From     string `json:"from,omitempty"`
	Size     uint64 `json:"size_bytes,omitempty"`
	Block    uint64 `json:"block_size_bytes,omitempty"`
	Hash     string `json:"hash,omitempty"`
	File     string `json:"file,omitempty"`
	Written  uint64 `json:"bytes_written,omitempty"`
	Skipped  uint64 `json:"zero_bytes_skipped,omitempty"`
	Forced   bool   `json:"forced,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
	line     string
}

func (r *result) String() string { return r.line }

func nameData(name string) ([]byte, error) {
	b := make([]byte, protocol.NameLen)
	return b, protocol.EncodeName(b, name)
}

func (c *commands) create(name, from string, size uint64) (*result, error) {
	b := make([]byte, protocol.CloneLen)
	if err := protocol.EncodeClone(b, protocol.Clone{Parent: from, Size: size}); err != nil {
		return nil, err
	}
	if _, err := c.v.do(req{op: xseg.OpClone, target: name, data: b}, nil); err != nil {
		return nil, err
	}
	info, err := c.info(name)
	if err != nil {
		return nil, err
	}
	r := &result{Op: "create", Volume: name, From: from, Size: info.Size, Block: info.Block}
	r.line = fmt.Sprintf("created %s: %s", name, cli.FormatSize(info.Size))
	if from != "" {
		r.Op = "clone"
		r.line = fmt.Sprintf("created %s from %s: %s", name, from, cli.FormatSize(info.Size))
	}
	return r, nil
}

func (c *commands) remove(name string) (*result, error) {
	if _, err := c.v.do(req{op: xseg.OpDelete, target: name, bufLen: protocol.NameLen}, nil); err != nil {
		return nil, err
	}
	return &result{Op: "remove", Volume: name, line: "removed " + name}, nil
}

func (c *commands) info(name string) (*result, error) {
	rep, err := c.v.do(req{op: xseg.OpInfo, target: name, bufLen: protocol.VolumeInfoLen}, nil)
	if err != nil {
		return nil, err
	}
	vi, err := protocol.DecodeVolumeInfo(rep.data[:min(uint64(len(rep.data)), rep.serviced)])
	if err != nil {
		return nil, fmt.Errorf("info %q: %w", name, err)
	}
	r := &result{Op: "info", Volume: name, Size: vi.Size, Block: vi.BlockSize, ReadOnly: vi.ReadOnly()}
	r.line = fmt.Sprintf("%s: size %s (%d bytes)", name, cli.FormatSize(vi.Size), vi.Size)
	if vi.BlockSize != 0 {
		r.line += ", block size " + cli.FormatSize(vi.BlockSize)
	}
	if vi.ReadOnly() {
		r.line += ", read-only (a snapshot)"
	}
	return r, nil
}

func (c *commands) resize(name string, size uint64, force bool) (*result, error) {
	var flags xseg.Flags
	if force {
		flags |= xseg.FlagForce
	}
	if _, err := c.v.do(req{op: xseg.OpTruncate, target: name, offset: size, flags: flags, bufLen: protocol.NameLen}, nil); err != nil {
		return nil, err
	}
	return &result{Op: "resize", Volume: name, Size: size, line: fmt.Sprintf("resized %s to %s", name, cli.FormatSize(size))}, nil
}

func (c *commands) snapshot(vol, snap string) (*result, error) {
	b, err := nameData(snap)
	if err != nil {
		return nil, err
	}
	if _, err := c.v.do(req{op: xseg.OpSnapshot, target: vol, data: b}, nil); err != nil {
		return nil, err
	}
	return &result{Op: "snapshot", Volume: vol, Snapshot: snap, line: fmt.Sprintf("snapshot %s of %s", snap, vol)}, nil
}

func (c *commands) rename(name, newName string) (*result, error) {
	b, err := nameData(newName)
	if err != nil {
		return nil, err
	}
	if _, err := c.v.do(req{op: xseg.OpRename, target: name, data: b}, nil); err != nil {
		return nil, err
	}
	return &result{Op: "rename", Volume: name, NewName: newName, line: fmt.Sprintf("renamed %s to %s", name, newName)}, nil
}

func (c *commands) openClose(op, name string, force bool) (*result, error) {
	var flags xseg.Flags
	if force {
		flags |= xseg.FlagForce
	}
	x := xseg.OpOpen
	if op == "close" {
		x = xseg.OpClose
	}
	if _, err := c.v.do(req{op: x, target: name, flags: flags, bufLen: protocol.NameLen}, nil); err != nil {
		return nil, err
	}
	return &result{Op: op, Volume: name, line: map[string]string{"open": "opened ", "close": "closed "}[op] + name}, nil
}

// lockUnlock takes (lock) or releases (unlock) the volume's lock for this
// host. They are OPEN and CLOSE, not the map blocker's ACQUIRE and RELEASE
// the original vlmc sent: mapperd caches a map only while it holds the
// lock, and a lock released behind its back would leave it serving a
// stale cached map. unlock with force breaks whoever's lock it is.
func (c *commands) lockUnlock(op, name string, force bool) (*result, error) {
	x := "open"
	if op == "unlock" {
		x = "close"
	}
	if _, err := c.openClose(x, name, force); err != nil {
		return nil, err
	}
	r := &result{Op: op, Volume: name, Forced: force}
	switch {
	case op == "lock":
		r.line = fmt.Sprintf("locked %s for this host", name)
	case force:
		r.line = fmt.Sprintf("unlocked %s (any host's lock broken)", name)
	default:
		r.line = "unlocked " + name
	}
	return r, nil
}

func (c *commands) hash(snap string) (*result, error) {
	rep, err := c.v.do(req{op: xseg.OpHash, target: snap, bufLen: protocol.NameLen}, nil)
	if err != nil {
		return nil, err
	}
	h, err := protocol.DecodeName(rep.data)
	if err != nil {
		return nil, fmt.Errorf("hash %q: %w", snap, err)
	}
	return &result{Op: "hash", Volume: snap, Hash: h, line: h}, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// importImage writes a raw image into name, chunk by chunk, skipping the
// chunks that are all zeros (a new volume reads zeros there; an existing
// one keeps what it held, as the original's import did not clear either).
func (c *commands) importImage(name, file string) (*result, error) {
	in := os.Stdin
	var fileSize int64 = -1
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			fileSize = st.Size()
		}
	}
	info, err := c.info(name)
	var oe *opError
	switch {
	case errors.As(err, &oe) && errors.Is(oe.err, syscall.ENOENT) && fileSize >= 0:
		if info, err = c.create(name, "", uint64(fileSize)); err != nil {
			return nil, err
		}
	case errors.As(err, &oe) && errors.Is(oe.err, syscall.ENOENT):
		return nil, fmt.Errorf("%q: no such volume: create it first (vlmc create %s --size S) to import from standard input", name, name)
	case err != nil:
		return nil, err
	case fileSize > int64(info.Size):
		return nil, fmt.Errorf("%s is %d bytes, volume %q only %d: resize it first (vlmc resize %s --size %d)", file, fileSize, name, info.Size, name, fileSize)
	}
	p := newProgress("import "+name, fileSize)
	buf := make([]byte, chunk)
	var off, written, skipped uint64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			if off+uint64(n) > info.Size {
				return nil, fmt.Errorf("%s is larger than volume %q (%d bytes): resize it first (vlmc resize %s --size S)", file, name, info.Size, name)
			}
			if allZero(buf[:n]) {
				skipped += uint64(n)
			} else {
				rep, werr := c.v.do(req{op: xseg.OpWrite, target: name, offset: off, size: uint64(n), data: buf[:n]}, nil)
				if werr != nil {
					return nil, werr
				}
				if rep.serviced != uint64(n) {
					return nil, fmt.Errorf("write %q at %d: %d of %d bytes written", name, off, rep.serviced, n)
				}
				written += uint64(n)
			}
			off += uint64(n)
			p.update(int64(off))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	p.done()
	r := &result{Op: "import", Volume: name, File: file, Size: off, Written: written, Skipped: skipped}
	r.line = fmt.Sprintf("imported %d bytes into %s (%d written, %d zero bytes skipped)", off, name, written, skipped)
	return r, nil
}

// exportImage writes the volume's bytes to file: exactly its size. A
// regular file gets holes where the volume reads all-zero chunks.
func (c *commands) exportImage(name, file string) (*result, error) {
	info, err := c.info(name)
	if err != nil {
		return nil, err
	}
	out := os.Stdout
	seekable := false
	if file != "-" {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = f
		st, err := f.Stat()
		seekable = err == nil && st.Mode().IsRegular()
	}
	p := newProgress("export "+name, int64(info.Size))
	buf := make([]byte, chunk)
	var off, skipped uint64
	for off < info.Size {
		n := min(uint64(chunk), info.Size-off)
		rep, err := c.v.do(req{op: xseg.OpRead, target: name, offset: off, size: n}, buf[:n])
		if err != nil {
			return nil, err
		}
		if rep.serviced != n {
			return nil, fmt.Errorf("read %q at %d: %d of %d bytes", name, off, rep.serviced, n)
		}
		if seekable && allZero(buf[:n]) {
			skipped += n
			if _, err := out.Seek(int64(n), io.SeekCurrent); err != nil {
				return nil, err
			}
		} else if _, err := out.Write(buf[:n]); err != nil {
			return nil, err
		}
		off += n
		p.update(int64(off))
	}
	if seekable {
		if err := out.Truncate(int64(info.Size)); err != nil {
			return nil, err
		}
	}
	if file != "-" {
		if err := out.Close(); err != nil {
			return nil, err
		}
	}
	p.done()
	r := &result{Op: "export", Volume: name, File: file, Size: info.Size, Written: info.Size - skipped, Skipped: skipped}
	r.line = fmt.Sprintf("exported %s: %d bytes to %s", name, info.Size, file)
	return r, nil
}

// progress draws a progress line on stderr when stderr is a terminal.
type progress struct {
	what  string
	total int64
	on    bool
	last  int
}

func newProgress(what string, total int64) *progress {
	st, err := os.Stderr.Stat()
	return &progress{what: what, total: total, on: err == nil && st.Mode()&os.ModeCharDevice != 0, last: -1}
}

func (p *progress) update(n int64) {
	if !p.on {
		return
	}
	if p.total <= 0 {
		fmt.Fprintf(os.Stderr, "\r%s: %s", p.what, cli.FormatSize(uint64(n)))
		return
	}
	pct := int(n * 100 / p.total)
	if pct == p.last {
		return
	}
	p.last = pct
	bar := make([]byte, 30)
	for i := range bar {
		bar[i] = ' '
		if i < pct*30/100 {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(os.Stderr, "\r%s [%s] %3d%%", p.what, bar, pct)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(os.Stderr)
	}
}
