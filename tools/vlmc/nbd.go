package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/archipelago-go/archipelago/drivers"
	"github.com/archipelago-go/archipelago/tools/hostconf"
)

// The NBD export table is a directory of nbdd's (hostconf Peer.Exports)
// with one empty file per mapped volume: map writes one, unmap removes it,
// showmapped lists them. nbdd serves (and lists) just those.

// mapped is one exported volume.
type mapped struct {
	Volume string `json:"volume"`
	URI    string `json:"uri"`
	Drive  string `json:"qemu_drive"`
	Socket string `json:"socket"`
}

// nbdURI is the NBD URI of volume on nbdd's unix socket.
func nbdURI(volume, socket string) string {
	u := url.URL{Scheme: "nbd+unix", Path: "/" + volume, RawQuery: "socket=" + socket}
	return u.String()
}

func newMapped(volume, socket string) mapped {
	uri := nbdURI(volume, socket)
	return mapped{Volume: volume, URI: uri, Socket: socket,
		Drive: fmt.Sprintf("file=%s,format=raw,if=virtio,cache=none,aio=threads", uri)}
}

// mapResult prints the URI alone on its first line, then hints.
type mapResult struct {
	mapped
	ReadOnly bool `json:"read_only"`
}

func (m *mapResult) String() string {
	ro := ""
	if m.ReadOnly {
		ro = " (a snapshot: read-only)"
	}
	return fmt.Sprintf(`%s
volume %s is exported by nbdd%s. Use it with:
  qemu-system-x86_64 ... -drive %s
  qemu-img info '%s'
  nbdinfo '%s'
vlmc unmap %s stops exporting it.`, m.URI, m.Volume, ro, m.Drive, m.URI, m.URI, m.Volume)
}

// exportTable returns the host's nbdd and its export table.
func exportTable(h *hostconf.Host) (hostconf.Peer, error) {
	n, err := h.Nbdd()
	if err != nil {
		return n, err
	}
	if n.Exports == "" {
		return n, fmt.Errorf("%s: nbdd has no export table", h.Source)
	}
	return n, nil
}

// nbddListening checks that nbdd accepts connections on its socket.
func nbddListening(socket string) error {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return fmt.Errorf("nbdd is not listening on %s (is the host started? archipelago start): %w", socket, err)
	}
	return c.Close()
}

func (c *commands) mapVolume(h *hostconf.Host, name string) (*mapResult, error) {
	n, err := exportTable(h)
	if err != nil {
		return nil, err
	}
	if err := drivers.ValidateName(name); err != nil {
		return nil, fmt.Errorf("map: %w", err)
	}
	info, err := c.info(name) // the volume must exist
	if err != nil {
		return nil, err
	}
	if err := nbddListening(n.Socket); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.Exports, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(n.Exports, name), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("map %q: %w", name, err)
	}
	f.Close()
	return &mapResult{mapped: newMapped(name, n.Socket), ReadOnly: info.ReadOnly}, nil
}

// unmapResult reports an unmap.
type unmapResult struct {
	Op     string `json:"op"`
	Volume string `json:"volume"`
}

func (u *unmapResult) String() string {
	return "unmapped " + u.Volume + " (connections already open stay until their clients close them)"
}

func unmapVolume(h *hostconf.Host, name string) (*unmapResult, error) {
	n, err := exportTable(h)
	if err != nil {
		return nil, err
	}
	if err := drivers.ValidateName(name); err != nil {
		return nil, fmt.Errorf("unmap: %w", err)
	}
	err = os.Remove(filepath.Join(n.Exports, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("unmap %q: not mapped (vlmc showmapped lists what is)", name)
	}
	if err != nil {
		return nil, err
	}
	return &unmapResult{Op: "unmap", Volume: name}, nil
}

// showmappedResult lists the exported volumes.
type showmappedResult struct {
	Mapped []mapped `json:"mapped"`
}

func (s *showmappedResult) String() string {
	if len(s.Mapped) == 0 {
		return "no volume is mapped (vlmc map VOLUME exports one)"
	}
	var b strings.Builder
	for i, m := range s.Mapped {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s\t%s", m.Volume, m.URI)
	}
	return b.String()
}

func showMapped(h *hostconf.Host) (*showmappedResult, error) {
	n, err := exportTable(h)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(n.Exports)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := &showmappedResult{Mapped: []mapped{}}
	for _, e := range ents {
		if e.Type().IsRegular() {
			out.Mapped = append(out.Mapped, newMapped(e.Name(), n.Socket))
		}
	}
	sort.Slice(out.Mapped, func(i, j int) bool { return out.Mapped[i].Volume < out.Mapped[j].Volume })
	return out, nil
}
